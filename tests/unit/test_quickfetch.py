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
