"""A study file edited after its runs were launched, on the real loopback sshd: a changed
member setting is refused by `study run` naming the change (not "launched already"),
`study status` and `study report` name every difference, an added ensemble reaches the
report without new runs, and an added member is launched alone."""

import json

import pytest
from studycases import run_done, wait_ended, write_study

SHARED = {"train.steps": 5, "eval.bootstrap": 100}
MEMBERS = {"a": {"model.kind": "ar"}, "b": {"model.kind": "ar", "train.lr": 0.001}}


@pytest.mark.slow
def test_an_edited_study_file_is_named_and_an_added_ensemble_is_reported(ssh_project):
    p = ssh_project
    run_done(p, "ed", MEMBERS, [0], SHARED)

    # A launched member's setting changed: the launch says what changed and what to do.
    write_study(p, "ed", {**MEMBERS, "b": {"model.kind": "ar", "train.lr": 0.002}}, [0], SHARED)
    refused = p.orch("study", "run", "ed")
    said = " ".join(refused.stderr.split())
    assert refused.returncode == 8, refused.stderr
    assert "member b: train.lr 0.001 -> 0.002 would change launched run ed-b-s0" in said, said
    assert "launched already" not in said and "give the new version another name" in said
    status = p.orch("study", "status", "ed", check=True)
    said = " ".join(status.stderr.split())
    assert "differs from what study ed recorded" in said and "member b: train.lr 0.001 -> 0.002" in said, said

    # Put back, with an ensemble added: no new runs; the report includes it, `study run` records it.
    write_study(p, "ed", MEMBERS, [0], SHARED, {"ab": ["a", "b"]})
    status = p.orch("study", "status", "ed", check=True)
    assert "added ensemble ab (a + b): no new runs" in " ".join(status.stderr.split()), status.stderr
    p.orch("study", "fetch", "ed", check=True, timeout=600)
    report = p.orch("study", "report", "ed", check=True, timeout=600)
    assert "added ensemble ab (a + b): this report follows the study file" in " ".join(report.stderr.split())
    table = json.loads((p.root / "runs" / "studies" / "ed" / "table.json").read_text())
    assert [r["name"] for r in table["rows"]] == ["a", "b", "ab"]
    recorded = p.orch("study", "run", "ed", check=True)
    assert recorded.stdout.strip() == "ed" and "added ensemble ab (a + b): recorded" in recorded.stderr
    assert json.loads((p.root / "runs" / "studies" / "ed" / "study.json").read_text())["ensembles"] == {
        "ab": ["a", "b"]
    }
    status = p.orch("study", "status", "ed", check=True)
    assert "differs" not in status.stderr, status.stderr  # the record is the file now
    again = p.orch("study", "run", "ed")
    assert again.returncode == 8 and "launched already" in again.stderr

    # An added member or seed is runs to launch: said by status, launched alone by `study run`.
    write_study(p, "ed", {**MEMBERS, "c": {"model.kind": "ar"}}, [0, 1], SHARED, {"ab": ["a", "b"]})
    status = " ".join(p.orch("study", "status", "ed", check=True).stderr.split())
    assert "added member c: not launched: `orch study run ed` launches it" in status, status
    assert "added seed 1: not launched" in status
    launched = p.orch("study", "run", "ed", check=True)
    new = ["ed-a-s1", "ed-b-s1", "ed-c-s0", "ed-c-s1"]
    assert sorted(line.split()[1] for line in launched.stderr.splitlines() if line.startswith("launched ")) == new
    assert "added member c: launched now" in launched.stderr and "added seed 1: launched now" in launched.stderr
    ended = wait_ended(p, "ed")
    assert all(ended[run]["state"] == "done" for run in new), ended
