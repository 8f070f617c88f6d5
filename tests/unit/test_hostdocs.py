"""Documents from a host are checked against docs/CONTRACT.md (orchestrator/contract/hostdocs.py),
and a bad one makes its job `unknown`, never a traceback (orchestrator/runs/state.py)."""

import pytest

from orchestrator import backends
from orchestrator.contract import hostdocs
from orchestrator.contract.hostdocs import BadDocument
from orchestrator.runs.state import rows_from_remote

GOOD_STATUS = {
    "state": "running",
    "pid": 12,
    "exit_code": None,
    "created": 1.0,
    "started": 2.0,
    "ended": None,
    "gpu": "0",
    "reason": "",
}


@pytest.mark.parametrize(
    "doc, words",
    [
        ([1, 2], "expected a JSON object, got [1, 2]"),
        ("done", "expected a JSON object"),
        ({}, "no 'state'"),
        ({"state": ["done"]}, "'state' must be one of"),
        ({"state": "exploded"}, "'state' must be one of"),
        (
            {"state": "running", "started": "abc"},
            "'started' must be a time (seconds since 1970, 0 to 1e+11) or null, got 'abc'",
        ),
        ({"state": "running", "started": float("nan")}, "'started' must be a time"),
        ({"state": "running", "started": 1e300}, "'started' must be a time"),
        ({"state": "running", "started": -1.0}, "'started' must be a time"),
        ({"state": "running", "started": 10**400}, "'started' must be a time"),
        ({"state": "failed", "exit_code": 10**400}, "'exit_code' must be an integer (64-bit) or null"),
        ({"state": "failed", "requeues": 2**63}, "'requeues' must be an integer >= 0 (64-bit) or null"),
        ({"state": "running", "pid": "1; rm -rf ~"}, "'pid' must be an integer"),
        ({"state": "running", "pid": True}, "'pid' must be an integer"),
        ({"state": "failed", "exit_code": "x"}, "'exit_code' must be an integer"),
        ({"state": "failed", "reason": ["x"]}, "'reason' must be a string"),
        ({"state": "failed", "reason": "x" * 5000}, "at most 4096"),
    ],
)
def test_bad_status_documents_are_named(doc, words):
    with pytest.raises(BadDocument) as info:
        hostdocs.check_status(doc)
    assert words in str(info.value)


def test_good_documents_pass_and_extra_keys_are_allowed():
    assert hostdocs.check_status(dict(GOOD_STATUS, future_key=[1])) is not None
    assert hostdocs.check_progress({"t": 1.0, "phase": "train", "step": 4, "total": 10, "loss": None})
    with pytest.raises(BadDocument, match="'step' must be an integer"):
        hostdocs.check_progress({"phase": "train", "step": "4"})
    with pytest.raises(BadDocument, match="expected a JSON object, got 5"):
        hostdocs.check_progress(5)


def test_a_bad_document_makes_its_job_unknown_not_the_reply_a_crash():
    reply = hostdocs.check_status_reply(
        {
            "exists": True,
            "now": 10.0,
            "jobs": [
                {"name": "a", "status": {"state": "done", "started": "abc"}, "alive": False},
                {"name": "b", "status": dict(GOOD_STATUS), "progress": "loss", "alive": True},
                {
                    "name": "c",
                    "status": dict(GOOD_STATUS),
                    "progress": {"phase": "train", "step": 3, "total": 9},
                    "alive": True,
                },
            ],
        }
    )
    rows = {r.name: r for r in rows_from_remote(reply, [{"name": n, "gpu": ""} for n in "abc"], backends.get("tmux"))}
    assert rows["a"].state == "unknown" and rows["a"].reason.startswith("bad status.json: 'started'")
    assert rows["b"].state == "unknown" and rows["b"].reason.startswith("bad progress.jsonl: expected a JSON object")
    assert rows["c"].state == "running" and rows["c"].step == 3


@pytest.mark.parametrize(
    "doc, words",
    [
        ([1], "expected a JSON object"),
        ({"exists": True, "jobs": "x"}, "'jobs' must be a list"),
        ({"exists": True, "jobs": [{"name": 5}]}, "jobs[0]: 'name' must be a string"),
        ({"exists": "yes", "jobs": []}, "'exists' must be true or false"),
    ],
)
def test_a_bad_host_helper_reply_is_named(doc, words):
    with pytest.raises(BadDocument) as info:
        hostdocs.check_status_reply(doc)
    assert words in str(info.value)
    with pytest.raises(BadDocument, match="'started' must be true or false"):
        hostdocs.check_launch_reply({"jobs": [{"name": "a", "started": "yes", "error": ""}]})
    with pytest.raises(BadDocument, match="no 'changed'"):
        hostdocs.check_cancel_reply({"jobs": [{"name": "a", "state": "done"}]})


def test_read_local_refuses_links_and_big_files(tmp_path):
    target = tmp_path / "real.json"
    target.write_text('{"state": "done"}')
    link = tmp_path / "status.json"
    link.symlink_to(target)
    with pytest.raises(BadDocument, match="not a regular file"):
        hostdocs.read_local(link, hostdocs.check_status)
    big = tmp_path / "big.json"
    big.write_bytes(b" " * (hostdocs.MAX_DOC_BYTES + 1))
    with pytest.raises(BadDocument, match="more than"):
        hostdocs.read_local(big, hostdocs.check_status)
    assert hostdocs.read_local(tmp_path / "absent.json", hostdocs.check_status) is None


def test_a_json_object_from_host_text_is_that_or_none_whatever_the_text():
    from orchestrator.contract.hostdocs import parse_json_object

    assert parse_json_object('{"a": 1}') == {"a": 1}
    assert parse_json_object('{"a": ' + "[" * 30 + "]" * 30 + "}") is not None
    deep = '{"a": ' + "[" * 600 + "]" * 600 + "}"  # json reads it; saving the facts would not
    for text in ("[1]", "not json", "", "[" * 100_000, '{"a": ' * 100_000, "1e999999", deep):
        assert parse_json_object(text) is None


@pytest.mark.parametrize("value", [10**400, 1e300, -1e300, float("inf"), float("nan")])
def test_numbers_no_real_value_nears_are_refused_before_any_arithmetic(value):
    """10**400 is valid JSON: it once reached math.isfinite (OverflowError), float() and
    sums of times (inf) in the status table, a traceback each."""
    with pytest.raises(hostdocs.BadDocument, match="'loss' must be a number"):
        hostdocs.check_progress({"loss": value})
    with pytest.raises(hostdocs.BadDocument, match="'now' must be a time"):
        hostdocs.check_status_reply({"exists": True, "now": value, "jobs": []})


GOOD_MANIFEST = {"files": {}, "n_test": 3, "classes": ["0", "1"], "train_texts": None, "val_loss": None}
GOOD_JOB = {"name": "a", "alive": False, "manifest": True, "log_bytes": 0, "owner": None, "requeues": None}


@pytest.mark.parametrize("key", ["files", "n_test", "classes"])
def test_null_for_a_manifest_field_that_may_not_be_null_is_named(key):
    """`{"files": null}` once passed the check (null taken for every field) and crashed
    check_manifest itself (AttributeError on None.items()); n_test and classes reached
    the evaluation as None."""
    assert hostdocs.check_manifest(dict(GOOD_MANIFEST)) is not None  # nulls where allowed pass
    with pytest.raises(BadDocument, match=f"'{key}' must be .*, got null$"):
        hostdocs.check_manifest({**GOOD_MANIFEST, key: None})


@pytest.mark.parametrize("key", ["name", "alive", "manifest", "log_bytes"])
def test_null_for_a_status_reply_field_that_may_not_be_null_is_named(key):
    reply = {"exists": True, "now": 1.0, "jobs": [dict(GOOD_JOB)]}
    assert hostdocs.check_status_reply(reply)["jobs"][0]["name"] == "a"
    with pytest.raises(BadDocument, match=rf"^jobs\[0\]: '{key}' must be .*, got null$"):
        hostdocs.check_status_reply({**reply, "jobs": [{**GOOD_JOB, key: None}]})


@pytest.mark.parametrize("key", ["run_dir", "exists", "now"])
def test_null_for_a_status_reply_key_is_named(key):
    reply = {"run_dir": "/w/runs/r1", "exists": True, "now": 1.0, "jobs": []}
    with pytest.raises(BadDocument, match=f"'{key}' must be .*, got null$"):
        hostdocs.check_status_reply({**reply, key: None})


@pytest.mark.parametrize(
    "check, job",
    [
        (hostdocs.check_launch_reply, {"name": "a", "started": True, "error": ""}),
        (hostdocs.check_cancel_reply, {"name": "a", "state": "done", "changed": False}),
    ],
)
def test_null_in_a_launch_or_cancel_reply_is_named(check, job):
    assert check({"jobs": [job]})
    for key in job:
        with pytest.raises(BadDocument, match=rf"^jobs\[0\]: '{key}' must be .*, got null$"):
            check({"jobs": [{**job, key: None}]})


def test_null_for_a_file_size_in_a_manifest_is_named():
    files = {"scores.jsonl": {"size": None, "sha256": "0" * 64}}
    with pytest.raises(BadDocument, match="'size' must be an integer >= 0 .*, got null$"):
        hostdocs.check_manifest({**GOOD_MANIFEST, "files": files})
