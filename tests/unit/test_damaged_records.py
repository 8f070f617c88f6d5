"""A run's own records damaged here (a truncated runs/RUN/local.json or run.yaml: a full
disk, a copy stopped halfway): every command says the same thing, with one exit code (8,
the run's state: README's table), the parser's words and how to get the file back."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from orchestrator import cli
from orchestrator.errors import ExitCode, OrchError

try:  # the synthetic run builder lives with the evaluation tests
    from .test_evaluate import make_run
except ImportError:
    from test_evaluate import make_run

COMMANDS = [
    ["status", "r1"],
    ["logs", "r1"],
    ["cancel", "r1"],
    ["fetch-results", "r1"],
    ["eval", "r1", "--no-plots"],
    ["compare", "r1", "r2"],
]


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "remote").mkdir()
    monkeypatch.setenv("ORCH_PROJECT", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    for run_id in ("r1", "r2"):
        make_run(tmp_path, run_id)
    return tmp_path


def refusal(args) -> OrchError:
    result = CliRunner().invoke(cli.app, args)
    assert isinstance(result.exception, OrchError), (args, result.output, result.exception)
    return result.exception


def _truncate(path) -> str:
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    return text


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
def test_a_truncated_local_json_is_one_refusal_everywhere(project, args):
    local = project / "runs" / "r1" / "local.json"
    assert json.loads(_truncate(local))  # it was a whole record
    err = refusal(args)
    assert err.code == ExitCode.RUN_STATE, err.message
    assert f"{local} is damaged: not valid JSON (" in err.message
    assert "line 1 column" in err.message  # the parser's own words: where it stopped
    assert "restore it from a backup" in err.hint and "launch the run again" in err.hint


def test_a_study_runs_damaged_local_json_says_the_fetch_writes_it_again(project):
    study = project / "runs" / "studies" / "st"
    study.mkdir(parents=True)
    (study / "study.json").write_text(json.dumps({"runs": [{"run_id": "r1", "launched": {"host": "h"}}]}))
    local = project / "runs" / "r1" / "local.json"
    _truncate(local)
    err = refusal(["status", "r1"])
    assert err.code == ExitCode.RUN_STATE
    assert f"mv {local} {local}.damaged" in err.hint and "`orch fetch-results r1`" in err.hint
    assert "orch study fetch st" in err.hint


def test_a_missing_local_json_is_said_as_missing(project):
    local = project / "runs" / "r1" / "local.json"
    local.unlink()
    err = refusal(["cancel", "r1"])
    assert err.code == ExitCode.RUN_STATE and err.message == f"{local} is missing: not a run launched by orch"


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: a[0])
def test_a_truncated_run_yaml_says_how_to_get_it_back(project, args):
    run_dir = project / "runs" / "r1"
    record = json.loads((run_dir / "local.json").read_text())
    record.update({"host": "box", "workdir": "/w", "code_hash": "c", "config_sha256": "ab" * 32})
    (run_dir / "local.json").write_text(json.dumps(record))
    text = (run_dir / "run.yaml").read_text()
    (run_dir / "run.yaml").write_text(text[: text.index("jobs:")])  # still YAML: the jobs come last
    err = refusal(args)
    assert err.code == ExitCode.RUN_STATE, err.message
    assert f"{run_dir / 'run.yaml'} is not a run record (no jobs): cut short or edited" in err.message
    assert f"host box keeps the file orch wrote at launch: copy /w/runs/r1/run.yaml from it to {run_dir}" in err.hint
    assert "ab" * 32 in err.hint


def test_a_study_runs_truncated_run_yaml_says_the_fetch_restores_it(project):
    study = project / "runs" / "studies" / "st"
    study.mkdir(parents=True)
    (study / "study.json").write_text(json.dumps({"runs": [{"run_id": "r1", "launched": {"host": "h"}}]}))
    run_dir = project / "runs" / "r1"
    record = json.loads((run_dir / "local.json").read_text())
    (run_dir / "local.json").write_text(json.dumps({**record, "host": "h", "workdir": "/w", "code_hash": "c"}))
    (run_dir / "run.yaml").write_text("experiment: {name: x\n")  # not YAML at all
    err = refusal(["status", "r1"])
    assert err.code == ExitCode.RUN_STATE and "is unreadable" in err.message
    assert f"mv {run_dir}/run.yaml {run_dir}/run.yaml.damaged" in err.hint
    assert "`orch fetch-results r1` restores both" in err.hint


def _listed(name):
    result = CliRunner().invoke(cli.app, ["runs", "--json"])
    assert result.exit_code == 0, result.output
    return next(it for it in json.loads(result.output) if it["run"] == name)


@pytest.mark.parametrize("damage", ["metrics", "scores size", "scores bytes", "manifest"])
def test_orch_runs_flags_a_damaged_local_copy(project, damage):
    """`orch runs` listed such a run as `fetched, -` or `fetched 99.17%` while `orch eval`
    refused it; a size check, and a hash of a file changed after metrics.json, flag it."""
    import os

    assert CliRunner().invoke(cli.app, ["eval", "r1", "--no-plots"]).exit_code == 0
    run_dir = project / "runs" / "r1"
    before = _listed("r1")
    assert "damaged" not in before["state"], before
    assert before["accuracy"] is not None and before["damaged"] == []
    job = sorted((run_dir / "jobs").glob("*/scores.jsonl"))[-1].parent
    scores = job / "scores.jsonl"
    if damage == "metrics":
        _truncate(run_dir / "metrics.json")
        said = f"{run_dir / 'metrics.json'} is damaged: `orch eval r1` writes it again"
    elif damage == "scores size":
        _truncate(scores)
        said = f"{scores} has {scores.stat().st_size} bytes, its manifest says"
    elif damage == "scores bytes":
        data = bytearray(scores.read_bytes())
        data[-3] = ord("7") if data[-3] != ord("7") else ord("8")
        scores.write_bytes(bytes(data))
        later = (run_dir / "metrics.json").stat().st_mtime + 5
        os.utime(scores, (later, later))
        said = f"{scores} is not what its manifest's sha256 says (changed after metrics.json)"
    else:
        _truncate(job / "manifest.json")
        said = f"{job / 'manifest.json'} is damaged: `orch fetch-results r1` fetches a verified copy again"
    after = _listed("r1")
    assert after["state"].endswith(", damaged here") and after["accuracy"] is None, after
    assert any(line.startswith(said) for line in after["damaged"]), after["damaged"]
    assert said.split(":")[0] in " ".join(after["notes"])


@pytest.mark.parametrize("how", ["touched", "cp -r"])
def test_orch_runs_does_not_flag_new_times_on_the_fetched_content(project, how):
    """A folder copied with `cp -r` (or a backup put back) has new mtimes on every file:
    `orch runs` said `damaged here` (scores newer than metrics.json) and advised fetching a
    copy again, which fetch-results refuses for a copy.  The content is checked instead."""
    import os
    import shutil

    assert CliRunner().invoke(cli.app, ["eval", "r1", "--no-plots"]).exit_code == 0
    run_dir = project / "runs" / "r1"
    if how == "touched":
        later = (run_dir / "metrics.json").stat().st_mtime + 5
        for scores in (run_dir / "jobs").glob("*/scores.jsonl"):
            os.utime(scores, (later, later))
        name = "r1"
    else:
        shutil.copytree(run_dir, project / "runs" / "r1-copy", copy_function=shutil.copyfile)  # new times, as cp -r
        later = (run_dir / "metrics.json").stat().st_mtime + 5
        for scores in (project / "runs" / "r1-copy" / "jobs").glob("*/scores.jsonl"):
            os.utime(scores, (later, later))  # however fast the copy was: scores newer than metrics.json
        name = "r1-copy"
    after = _listed(name)
    assert "damaged" not in after["state"] and after["damaged"] == [], after
    assert after["accuracy"] is not None
    if how == "cp -r":
        assert after["state"].endswith("(a copy of run r1)"), after
        # a copy whose scores really are damaged is told to copy them again, not to fetch
        scores = sorted((project / "runs" / "r1-copy" / "jobs").glob("*/scores.jsonl"))[-1]
        data = bytearray(scores.read_bytes())
        data[-3] = ord("7") if data[-3] != ord("7") else ord("8")
        scores.write_bytes(bytes(data))
        os.utime(scores, (later, later))
        damaged = _listed(name)["damaged"]
        assert any("copy it again from run r1's folder" in d for d in damaged), damaged
        assert not any("fetch-results r1-copy" in d for d in damaged), damaged
