"""`orch fetch-results` without Typer (issue 15): which command lines take the quick path,
and that it loads neither Typer nor pydantic.  The fetch itself, end to end through the
real sshd, is tests/integration/test_run_lifecycle.py::test_run_status_logs_fetch."""

import json

import pytest

from orchestrator.commands import quickfetch

try:
    from .test_quickstatus import _modules_after, _project
except ImportError:  # run as a top-level module (pytest's rootdir-relative import)
    from test_quickstatus import _modules_after, _project

PLAIN = {"run_id": None, "no_eval": False, "partial": False, "full_logs": False, "trust": False, "quiet": False}


@pytest.mark.parametrize(
    "argv, parsed",
    [
        (["fetch-results"], {}),
        (["fetch-results", "r1"], {"run_id": "r1"}),
        (["fetch-results", "r1", "--no-eval"], {"run_id": "r1", "no_eval": True}),
        (["-q", "fetch-results", "--partial", "r1"], {"run_id": "r1", "partial": True, "quiet": True}),
        (
            ["fetch-results", "--full-logs", "--trust-new-host-key", "r1", "--quiet"],
            {"run_id": "r1", "full_logs": True, "trust": True, "quiet": True},
        ),
    ],
)
def test_plain_fetch_command_lines_take_the_quick_path(argv, parsed):
    assert quickfetch.parse(argv) == {**PLAIN, **parsed}


@pytest.mark.parametrize(
    "argv",
    [
        ["fetch-results", "--help"],
        ["fetch-results", "r1", "r2"],  # Typer says "unexpected extra argument"
        ["fetch-results", "--bogus"],
        ["fetch-results", "--", "r1"],
        ["status", "r1"],
        ["study", "fetch", "s1"],
        ["--version", "fetch-results"],
    ],
)
def test_anything_else_goes_to_typer(argv):
    assert quickfetch.parse(argv) is None


def test_orch_fetch_results_loads_no_typer_or_pydantic(tmp_path):
    """The quick path's refusal is the Typer path's (one message, the same exit code), and it
    gets there without Typer, Click or pydantic."""
    project = _project(tmp_path / "p")
    (project.runs / "r0").mkdir()  # a run, but not the one asked for
    out = tmp_path / "modules.json"
    proc = _modules_after(["orch", "fetch-results", "nosuch"], project.root, out)
    assert proc.returncode == 8, proc.stderr  # RUN_STATE
    assert proc.stderr.startswith("error: no run named 'nosuch'") and "Traceback" not in proc.stderr
    assert "hint: `orch runs` lists them" in proc.stderr
    tops = {n.split(".")[0] for n in json.loads(out.read_text())}
    assert not tops & {"typer", "click", "pydantic"}, sorted(tops & {"typer", "click", "pydantic"})


def test_a_fetch_below_min_accuracy_exits_1(project, monkeypatch, capsys):
    """As `orch eval` and `run --wait` do (README's exit table: 1), once the evaluation is
    shown and written: the results stay fetched."""
    from contextlib import contextmanager

    from orchestrator.errors import ExitCode, OrchError
    from orchestrator.runs import fetch, restore
    from orchestrator.transport import connect

    run_dir = project.runs / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "local.json").write_text(json.dumps({"host": "local", "workdir": "w", "code_hash": "c"}))
    (run_dir / "run.yaml").write_text("experiment: x\njobs: []\n")

    @contextmanager
    def no_host(*args):
        yield None

    monkeypatch.setattr(connect, "open_transport", no_host)
    monkeypatch.setattr(restore, "restore_for_fetch", lambda *a: None)
    monkeypatch.setattr(
        fetch, "fetch", lambda *a, **k: {"rows": [], "complete": True, "cut": {}, "kept": {}, "changed": {}}
    )
    metrics = {"run_id": "r1", "accuracy": 0.5, "min_accuracy": 0.9, "meets_min_accuracy": False}
    monkeypatch.setattr(quickfetch, "evaluate_dir", lambda run_dir, as_result: metrics)
    monkeypatch.chdir(project.root)
    monkeypatch.delenv("ORCH_PROJECT", raising=False)
    with pytest.raises(OrchError) as caught:
        quickfetch.fetch_results("r1", partial=False, no_eval=False, full_logs=False, trust=False)
    assert caught.value.code == ExitCode.FAILED
    assert "accuracy 50.00% is below eval.min_accuracy 90.00%" in caught.value.message
    assert "accuracy 50.0" in capsys.readouterr().err  # the evaluation was said first


class _NoHosts:
    """`study fetch`'s Hosts when no host is reached: every lookup gives None."""

    def __init__(self, *a):
        pass

    def __enter__(self):
        return lambda name: None

    def __exit__(self, *a):
        return False


def _no_hosts_study_st(monkeypatch, project):
    """`orch study fetch st` with study st recorded, no host reached and no folder to restore,
    run from PROJECT's root: what the command says is collected in the list returned."""
    from orchestrator import output
    from orchestrator.commands import study as command
    from orchestrator.runs import restore

    monkeypatch.setattr(command, "Hosts", _NoHosts)
    monkeypatch.setattr(command, "_recorded", lambda project, name: {"name": "st"})
    monkeypatch.setattr(restore, "restore_missing", lambda *a: [])
    said = []
    monkeypatch.setattr(output, "say", lambda text, markup=True: said.append(text))
    monkeypatch.chdir(project.root)
    monkeypatch.delenv("ORCH_PROJECT", raising=False)
    return said


def _study_fetch_refused():
    """`orch study fetch st`, which must end in an OrchError: that error."""
    from orchestrator.commands import study as command
    from orchestrator.errors import OrchError

    with pytest.raises(OrchError) as caught:
        command.fetch_cmd("st", trust_new_host_key=False, quiet=False)
    return caught.value


def test_a_study_fetch_says_which_runs_are_below_their_min_accuracy_and_exits_1(project, monkeypatch):
    """Each run is fetched and evaluated all the same; the command ends with exit 1, as a
    run's own fetch does."""
    from orchestrator.errors import ExitCode
    from orchestrator.results import evaluate
    from orchestrator.runs import fetch
    from orchestrator.runs import study as studies
    from orchestrator.runs.study_status import RunView

    for run_id in ("st-a-s0", "st-b-s0"):
        (project.runs / run_id).mkdir(parents=True)
        (project.runs / run_id / "local.json").write_text(json.dumps({"host": "h"}))

    views = [RunView("a", 0, "st-a-s0", "done"), RunView("b", 0, "st-b-s0", "done")]
    monkeypatch.setattr(studies, "status", lambda *a: views)
    monkeypatch.setattr(fetch, "fetch", lambda *a, **k: {"kept": {}, "changed": {}})
    accuracy = {"st-a-s0": 0.95, "st-b-s0": 0.5}
    monkeypatch.setattr(
        evaluate,
        "evaluate_run",
        lambda run_dir: {
            "accuracy": accuracy[run_dir.name],
            "min_accuracy": 0.9,
            "meets_min_accuracy": accuracy[run_dir.name] >= 0.9,
        },
    )
    said = _no_hosts_study_st(monkeypatch, project)
    refused = _study_fetch_refused()
    assert refused.code == ExitCode.FAILED
    assert refused.message == "1 runs of st are below their eval.min_accuracy: st-b-s0"
    assert "st-b-s0: accuracy 50.00% is below its eval.min_accuracy 90.00%" in said
    assert "2 of 2 runs of st fetched" in said


def test_ctrl_c_before_the_fetch_says_what_was_done_and_what_to_run(project, monkeypatch, capsys):
    """It said only "interrupted"."""
    from orchestrator.runs import restore

    def ctrl_c(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(restore, "restore_for_fetch", ctrl_c)
    monkeypatch.chdir(project.root)
    monkeypatch.delenv("ORCH_PROJECT", raising=False)
    assert quickfetch.main(["fetch-results", "r1"]) == 130
    err = capsys.readouterr().err
    assert "interrupted before anything was fetched of r1: its folder here is as it was" in err
    assert "hint: `orch fetch-results r1` fetches it" in err


def test_a_study_fetch_with_nothing_left_to_fetch_keeps_the_verdict(project, monkeypatch):
    """A second `study fetch` fetches nothing: the runs below their eval.min_accuracy (their
    metrics.json says so) still make it exit 1, so a script gating on it gets one answer.
    A damaged metrics.json says nothing: that run is evaluated again (here, it meets its
    min_accuracy); runs with a readable one are not."""
    from orchestrator.errors import ExitCode
    from orchestrator.results import evaluate
    from orchestrator.runs import study as studies
    from orchestrator.runs.study_status import RunView

    gates = {"st-a-s0": True, "st-b-s0": False, "st-c-s0": None}  # None: metrics.json damaged
    for run_id, meets in gates.items():
        (project.runs / run_id).mkdir(parents=True)
        (project.runs / run_id / "local.json").write_text(json.dumps({"host": "h"}))
        metrics = {"accuracy": 0.5, "min_accuracy": 0.9, "meets_min_accuracy": meets}
        (project.runs / run_id / "metrics.json").write_text("{broken" if meets is None else json.dumps(metrics))

    views = [RunView(m, 0, f"st-{m}-s0", "fetched") for m in "abc"]
    monkeypatch.setattr(studies, "status", lambda *a: views)
    evaluated = []
    monkeypatch.setattr(
        evaluate, "evaluate_run", lambda run_dir: evaluated.append(run_dir.name) or {"meets_min_accuracy": True}
    )
    said = _no_hosts_study_st(monkeypatch, project)
    refused = _study_fetch_refused()
    assert refused.code == ExitCode.FAILED
    assert refused.message == "1 runs of st are below their eval.min_accuracy: st-b-s0"
    assert evaluated == ["st-c-s0"] and "evaluated st-c-s0" in said
    assert "3 of 3 runs of st fetched" in said


def test_a_study_fetch_evaluates_a_run_whose_evaluation_failed_before(project, monkeypatch):
    """The first fetch fetched the run (its record says so) but its evaluation failed, so no
    metrics.json: the second fetch exited 0, taking the missing verdict for a pass.  Now each
    later fetch evaluates it again: failing, a problem (exit 8); below its gate, exit 1."""
    from orchestrator.errors import ExitCode, OrchError
    from orchestrator.results import evaluate
    from orchestrator.runs import fetch
    from orchestrator.runs import study as studies
    from orchestrator.runs.study_status import RunView

    run_id = "st-a-s0"
    (project.runs / run_id).mkdir(parents=True)
    (project.runs / run_id / "local.json").write_text(json.dumps({"host": "h"}))
    views = [RunView("a", 0, run_id, "done")]
    monkeypatch.setattr(studies, "status", lambda *a: views)
    fetches = []
    monkeypatch.setattr(fetch, "fetch", lambda *a, **k: fetches.append(a[2]) or {"kept": {}, "changed": {}})

    def no_space(run_dir):
        raise OrchError("evaluation failed: no space left on this disk", ExitCode.RUN_STATE)

    monkeypatch.setattr(evaluate, "evaluate_run", no_space)
    said = _no_hosts_study_st(monkeypatch, project)
    for attempt in range(2):  # the first fetch, then one that finds the run fetched (its record says so)
        refused = _study_fetch_refused()
        assert refused.code == ExitCode.RUN_STATE, attempt
        assert "1 runs could not be fetched and evaluated: st-a-s0: evaluation failed" in refused.message
        views[:] = [RunView("a", 0, run_id, "fetched")]
    assert fetches == [run_id]  # fetched once; evaluated on every fetch
    assert f"{run_id}: fetched before, but no evaluation of it is here: evaluating it" in said

    def below(run_dir):
        metrics = {"accuracy": 0.5, "min_accuracy": 0.9, "meets_min_accuracy": False}
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
        return metrics

    monkeypatch.setattr(evaluate, "evaluate_run", below)
    for _ in range(2):  # evaluated on the first; its metrics.json gives the same verdict after
        refused = _study_fetch_refused()
        assert refused.code == ExitCode.FAILED
        assert refused.message == "1 runs of st are below their eval.min_accuracy: st-a-s0"
