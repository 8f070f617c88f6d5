"""One vocabulary of job and run states: the controller's run and command code compares a
state with remote/jobstate.py's constants (and runs/state.py's run-level EMPTY, MIXED),
never with a string literal, so a word changed or added in one place is changed everywhere.

Read from the source: every comparison whose one side names a state (``r.state``,
``run_state(rows)``, ``states``) and whose other side holds one of those words as a literal.

And the run-level words: a run with a lost job ended failed, in `orch status`, `orch runs`,
`orch run --wait` and `orch status --watch`'s exit code.
"""

import ast
import contextlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator import cli
from orchestrator.commands import runs as runs_cmd
from orchestrator.config.project import Project
from orchestrator.errors import ExitCode, OrchError
from orchestrator.runs import hostops
from orchestrator.runs.state import EMPTY, MIXED, StatusRow, listed_state, run_state, shown_state
from remote.jobstate import CANCELLED, DONE, FAILED, LOST, NO_RESULTS, RUNNING, SHOWN, UNKNOWN
from tests.unit.evalruns import make_run

REPO = Path(__file__).resolve().parents[2]
WORDS = set(SHOWN) | {EMPTY, MIXED}
# Where job and run states are read; provision/ has its own step states (todo, done, ...).
PACKAGES = ("orchestrator/runs", "orchestrator/commands")


def _literals(node):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.Set, ast.List)):
        return [w for e in node.elts for w in _literals(e)]
    if isinstance(node, ast.BinOp):
        return _literals(node.left) + _literals(node.right)
    return []


def _literal_state_compares():
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Compare):
                    continue
                sides = [node.left, *node.comparators]
                if not any("state" in ast.unparse(s) for s in sides):
                    continue
                if any(w in WORDS for s in sides for w in _literals(s)):
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}: {ast.unparse(node)}")
    return found


def test_states_are_compared_with_the_constants():
    assert _literal_state_compares() == []


def test_the_states_without_results_are_one_named_tuple():
    # study status's reason and study report's missing runs read the same set
    assert set(NO_RESULTS) == {FAILED, LOST, CANCELLED, UNKNOWN}


# -- a run's state from its jobs' -------------------------------------------------------------


def _rows(*states):
    return [StatusRow(name=f"j{i}", state=s, gpu="") for i, s in enumerate(states)]


@pytest.mark.parametrize(
    "states, run",
    [
        ((DONE, LOST), FAILED),  # a lost job has no results: the run did not succeed
        ((LOST,), FAILED),
        ((LOST, LOST), FAILED),
        ((CANCELLED, LOST), FAILED),
        ((DONE, FAILED), FAILED),
        ((DONE, CANCELLED), CANCELLED),
        ((DONE, DONE), DONE),
        ((DONE, LOST, RUNNING), RUNNING),  # not ended yet
    ],
)
def test_a_run_with_a_lost_job_ended_failed(states, run):
    rows = _rows(*states)
    assert run_state(rows) == run
    assert shown_state(rows) == run
    assert listed_state("launched", rows) == run  # `orch runs`, from the states status saw
    assert listed_state(None, rows) == run


def _lost_reply(run_id="r1"):
    """class-0 done; class-1's wrapper gone without an end record (nobody holds its lock)."""
    return {
        "exists": True,
        "now": 100.0,
        "jobs": [
            {"name": "c0", "alive": False, "status": {"state": "done", "exit_code": 0, "ended": 50.0}},
            {"name": "c1", "alive": False, "status": {"state": "running", "started": 10.0}},
        ],
    }


@pytest.fixture
def lost_run(tmp_path, monkeypatch):
    (tmp_path / "configs").mkdir()
    monkeypatch.setenv("ORCH_PROJECT", str(tmp_path))
    monkeypatch.setenv("COLUMNS", "200")
    make_run(tmp_path, "r1", local_extra={"workdir": "/w", "code_hash": "abc123"})
    monkeypatch.setattr(hostops, "remote_status", lambda *a: _lost_reply())
    monkeypatch.setattr(runs_cmd, "open_transport", lambda *a: contextlib.nullcontext(None))
    return tmp_path


def test_run_wait_ends_a_run_with_a_lost_job_failed(lost_run):
    """`orch run --wait` (runs.py _wait_fetch): the watch ends and names the run failed, exit 8,
    and fetches nothing."""
    with pytest.raises(OrchError) as err:
        runs_cmd._wait_fetch(Project(lost_run), None, "r1", "exp")
    assert err.value.code == ExitCode.RUN_STATE
    assert err.value.message.startswith("run r1 ended failed: c1 lost ("), err.value.message
    assert "orch run exp --resume r1" in err.value.hint


def test_status_watch_exits_8_on_a_run_with_a_lost_job(lost_run):
    """README: `status --watch` exits 8 if the run ends failed, lost or cancelled."""
    result = CliRunner().invoke(cli.app, ["status", "r1", "--watch"])
    assert result.exit_code == int(ExitCode.RUN_STATE), (result.output, result.exception)
    assert "c0 done, c1 lost" in result.output
