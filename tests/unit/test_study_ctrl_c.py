"""Ctrl-C in `orch study run` / `study resume`: the whole command stops (exit 130), says
what was launched, and a run whose launch was interrupted after it was recorded is named in
the study, so that status and resume see it as launched (tests/integration/test_interruptions.py
does it through the real sshd)."""

import json
import shutil

import pytest
from studyfiles import write_study

from orchestrator.config import studies
from orchestrator.contract import records
from orchestrator.errors import ExitCode, OrchError
from orchestrator.runs import launch as runner
from orchestrator.runs import study as running
from orchestrator.runs.study_status import RunView


@pytest.fixture
def project(project):
    write_study(project, {"base": "smoke", "seeds": [0, 1, 2, 3], "members": {"a": {}}})
    return project


def fake_launcher(project, interrupt_at, recorded, raw=False):
    """runner.launch that launches until run INTERRUPT_AT, where Ctrl-C lands: after the
    run was recorded locally (RECORDED) or before; as launch() words it, or RAW."""

    def launch(_project, _transport, exp, run_id):
        run_dir = project.run_dir(run_id)
        run_dir.mkdir(parents=True)
        if run_id != interrupt_at or recorded:
            records.save_record(run_dir, {"run_id": run_id, "host": "h", "workdir": "/w", "code_hash": "c"})
        if run_id == interrupt_at:
            if raw:
                raise KeyboardInterrupt
            if not recorded:
                shutil.rmtree(run_dir)
            raise OrchError(f"interrupted while launching {run_id}", ExitCode.INTERRUPTED)
        return runner.Launched(run_id, "h", [{"name": "class-0"}], "c", 0)

    return launch


@pytest.mark.parametrize("recorded", [True, False])
def test_ctrl_c_stops_the_study_launch_and_says_what_was_launched(project, monkeypatch, recorded):
    study = studies.load(project, "st")
    monkeypatch.setattr(runner, "launch", fake_launcher(project, "st-a-s1", recorded))
    said = []
    with pytest.raises(OrchError) as caught:
        running.launch_runs(project, None, study, study.runs, said.append)
    exc = caught.value
    assert exc.code == ExitCode.INTERRUPTED
    assert exc.message.startswith("interrupted: study st: launched st-a-s0")
    untouched = "st-a-s2, st-a-s3" if recorded else "st-a-s1, st-a-s2, st-a-s3"  # nothing of it recorded
    assert f"not launched: {untouched}" in exc.message and "study resume st" in exc.hint
    assert ("st-a-s1 may be partly launched" in exc.message) == recorded
    assert said == [said[0]] and said[0].startswith("launched st-a-s0")  # nothing after the Ctrl-C
    assert not project.run_dir("st-a-s2").exists()
    for run_id in ["st-a-s0"] + (["st-a-s1"] if recorded else []):
        assert records.load_record(project.run_dir(run_id))["study"] == {
            "name": "st",
            "member": "a",
            "seed": int(run_id[-1]),
        }
    assert project.run_dir("st-a-s1").exists() == recorded


def test_a_ctrl_c_between_launches_is_the_same_message(project, monkeypatch):
    study = studies.load(project, "st")
    monkeypatch.setattr(runner, "launch", fake_launcher(project, "st-a-s2", True, raw=True))
    with pytest.raises(OrchError) as caught:
        running.launch_runs(project, None, study, study.runs, lambda _: None)
    assert caught.value.code == ExitCode.INTERRUPTED
    assert "launched st-a-s0, st-a-s1; st-a-s2 may be partly launched" in caught.value.message
    assert "not launched: st-a-s3" in caught.value.message


def test_ctrl_c_stops_a_study_resume(project, monkeypatch):
    study = studies.load(project, "st")
    running.save_record(project, study)
    record = running.load_record(project, "st")
    monkeypatch.setattr(runner, "launch", fake_launcher(project, "st-a-s2", True))
    resumed_ids = []

    def resume(_project, _transport, run_id):
        resumed_ids.append(run_id)
        return ["class-0"]

    monkeypatch.setattr(runner, "resume", resume)
    records.save_record(
        project.run_dir("st-a-s0"), {"run_id": "st-a-s0", "host": "h", "workdir": "/w", "code_hash": "c"}
    )
    todo = [RunView("a", 0, "st-a-s0", "failed")] + [RunView("a", s, f"st-a-s{s}", "not launched") for s in (1, 2, 3)]
    with pytest.raises(OrchError) as caught:
        running.resume_runs(project, lambda host: None, record, study, todo, lambda _: None)
    exc = caught.value
    assert exc.code == ExitCode.INTERRUPTED
    assert exc.message == (
        "interrupted: study st: resumed st-a-s0, st-a-s1; st-a-s2 may be partly launched "
        "(its launch was interrupted); not resumed: st-a-s3"
    )
    assert resumed_ids == ["st-a-s0"]
    assert not project.run_dir("st-a-s3").exists()
    assert json.loads((project.run_dir("st-a-s2") / "local.json").read_text())["study"]["name"] == "st"
