"""What a host says, as orch quotes or keeps it: a bounded tail with its controls escaped
(a host may print megabytes on one line, or escape sequences), strict JSON only, and a
cancel reply's states kept only for the run's own jobs."""

import json
import re

import pytest
from hostfixtures import run_probe_locally

from orchestrator.contract import records
from orchestrator.contract.hostdocs import parse_json_object
from orchestrator.provision import probe
from orchestrator.provision.plan import Layout, Step
from orchestrator.provision.steps import failure
from orchestrator.runs import hostops
from orchestrator.runs.state import StatusRow, unanswered
from orchestrator.terminal import last_lines
from orchestrator.transport.base import Result, _failed

FLOOD = "E" * (15 << 20)  # one stderr line of 15 MB
ESCAPES = "\x1b]0;OWNED\x07\x1b[2J\x1b]52;c;ZXZpbA==\x07"


def acting(text: str) -> list:
    """Characters a terminal acts on (all controls but newline and tab)."""
    return re.findall(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", text)


def test_last_lines_keeps_a_bounded_escaped_tail():
    assert last_lines("a\n\nb\n  \nc\n", 2) == ["b", "c"]
    assert last_lines(f"first\n{ESCAPES}\n") == ["first", "\\x1b]0;OWNED\\x07\\x1b[2J\\x1b]52;c;ZXZpbA==\\x07"]
    got = last_lines("start\n" + FLOOD + "\nthe end\n", 5, 100)
    assert got[-1] == "the end" and got[0].startswith("...E") and sum(map(len, got)) <= 3 + 100
    assert last_lines("") == [] and last_lines("\n\n") == []


def test_a_failed_command_quotes_a_bounded_tail_of_what_the_host_printed():
    err = _failed("mkdir -p x", Result("", FLOOD + "\n" + ESCAPES + "\n", 1), "nigel")
    assert len(err.message) < 2000 and "\\x1b]52;c;" in err.message and not acting(err.message)
    err = hostops.helper_failed("nigel", 1, FLOOD + "\n")
    assert len(err.message) < 2000 and err.message.startswith("host helper failed on nigel (exit 1): ...EEE")
    gone = hostops.helper_failed("nigel", 66, f"orch-no-snapshot /w/code/{ESCAPES}\n")
    assert "/w/code/\\x1b]0;OWNED" in gone.message and not acting(gone.message)


def test_a_failed_bootstrap_step_quotes_a_bounded_tail_of_its_log():
    step = Step(name="conda", title="conda")
    log = "[orch] started\nreal line\n" + FLOOD + ESCAPES + "\n[notice] pip upgrade\n"
    err = failure(step, 1, log, Layout("/w", "default"), "nigel")
    assert len(err.message) < 6000 and "[notice]" not in err.message and not acting(err.message)
    assert err.message.endswith("\\x1b]52;c;ZXZpbA==\\x07") and "    ...EEE" in err.message


def test_what_an_unreachable_scheduler_said_is_one_escaped_line():
    """`orch status` and `orch study status` print it as a bare `note:` line on stderr."""
    row = StatusRow(name="class-0", state="running", backend={"unreachable": f"slurmctld down{ESCAPES}\nfake row"})
    note = unanswered([row])
    assert note.startswith("slurmctld down\\x1b]0;OWNED\\x07") and "\\nfake row" in note
    assert not acting(note) and "\n" not in note


def test_numbers_json_cannot_hold_are_refused_in_host_documents():
    for text in ('{"ended": 1e400}', '{"a": NaN}', '{"a": [-Infinity]}', '{"a": {"b": Infinity}}'):
        assert parse_json_object(text) is None, text
    assert parse_json_object('{"ended": 1.5e9, "n": 10000000000000000000000}') == {"ended": 1.5e9, "n": 10**22}


def test_every_host_reply_and_document_is_read_strict(tmp_path):
    """hostdocs.loads' promise: a status-all reply with NaN where no check looks (a status
    key of the host's own) is refused, as is a fetched document with one."""
    from orchestrator.contract.hostdocs import BadDocument, read_local
    from orchestrator.errors import OrchError

    job = {"name": "c0", "status": {"state": "done", "mine": "NaN"}, "alive": False, "manifest": True, "log_bytes": 1}
    reply = json.dumps({"replies": [{"run_dir": "x", "exists": True, "now": 1764150020.0, "jobs": [job]}]})
    assert isinstance(hostops._status_all_replies("h", "0", reply, 1)[0], dict)  # a string "NaN" is fine
    (got,) = hostops._status_all_replies("h", "0", reply.replace('"NaN"', "NaN"), 1)
    assert isinstance(got, OrchError) and "printed no status-all reply orch can use" in got.message
    (tmp_path / "status.json").write_text('{"state": "done", "mine": NaN}')
    with pytest.raises(BadDocument, match="not valid JSON"):
        read_local(tmp_path / "status.json", lambda doc: doc)


def test_probe_facts_from_a_host_with_non_finite_numbers_are_strict_json(tmp_path):
    """A host's step result, state and verify documents with 1e400 or NaN: left out, so the
    facts orch saves (and prints with --json) are JSON other readers accept."""
    work = tmp_path / "w"
    logs = work / "bootstrap" / "logs"
    logs.mkdir(parents=True)
    (logs / "conda.result").write_text('{"step": "conda", "rc": 0, "fingerprint": "x", "started": 1, "ended": 1e400}')
    (logs / "env.result").write_text('{"step": "env", "rc": 0, "fingerprint": "y", "started": 1, "ended": 2}')
    (work / "bootstrap" / "state.json").write_text('{"steps": {"a": NaN}}')
    (work / "bootstrap" / "verify.json").write_text('{"ok": true, "took": Infinity}')
    facts = probe.parse_probe(run_probe_locally(str(work), []), str(work))
    assert list(facts.results) == ["env"] and facts.state == {} and facts.verify is None
    path = probe.save_facts(tmp_path, "nigel", facts)

    def refuse(name):
        raise ValueError(name)

    json.loads(path.read_text(), parse_constant=refuse)  # strict: no NaN or Infinity in it


def test_a_cancel_reply_is_kept_only_for_the_runs_jobs_in_the_contracts_states(tmp_path):
    run_dir = tmp_path / "r1"
    run_dir.mkdir()
    jobs = [{"name": "class-0", "gpu": ""}, {"name": "class-1", "gpu": ""}]
    record = {"run_id": "r1", "host": "nigel", "workdir": "/w", "code_hash": "abc", "planned_jobs": jobs}
    records.save_record(run_dir, record)
    reply = {
        "jobs": [
            {"name": "class-0", "state": "running", "changed": True},
            {"name": "class-1", "state": f"done{ESCAPES}", "changed": False},
            {"name": "../../evil", "state": "done", "changed": False},
            {"name": "x" * 4000, "state": "cancelled", "changed": True},
        ]
    }
    hostops.note_cancel(run_dir, record, reply)
    assert records.load_record(run_dir)["job_states"] == {"class-0": "cancelled"}
    reply["jobs"][1]["state"] = "done"
    hostops.note_cancel(run_dir, record, reply)
    assert records.load_record(run_dir)["job_states"] == {"class-0": "cancelled", "class-1": "done"}
