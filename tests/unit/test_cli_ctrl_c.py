"""Ctrl-C at any point of `orch`'s start-up, or in a command before it acts: one line, exit
130, never a traceback (the real SIGINT through the real CLI: tests/integration/test_interruptions.py)."""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import timing

REPO = Path(__file__).resolve().parents[2]

# `python -m orchestrator.cli ARGS`, with Ctrl-C landing where PATCH puts it.
WRAPPER = """
import runpy, sys
{patch}
sys.argv = ["orch", *{args!r}]
runpy.run_module("orchestrator.cli", run_name="__main__", alter_sys=True)
"""

ON_IMPORT = """
class CtrlC:
    def find_spec(self, name, path=None, target=None):
        if name == {module!r}:
            raise KeyboardInterrupt
sys.meta_path.insert(0, CtrlC())
"""


def orch_interrupted(patch: str, *args: str) -> subprocess.CompletedProcess:
    code = textwrap.dedent(WRAPPER).format(patch=textwrap.dedent(patch), args=list(args))
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=timing.scaled(60)
    )


@pytest.mark.parametrize(
    "module, args, line",
    [
        ("typer", ["run", "smoke"], "interrupted while orch was starting: nothing was launched"),
        ("typer", ["study", "run", "st"], "interrupted while orch was starting: nothing was launched"),
        ("typer", ["-q", "cancel", "r"], "interrupted while orch was starting: nothing was done"),
        ("orchestrator.commands", ["run", "smoke"], "interrupted while orch was starting: nothing was done"),
        ("orchestrator.commands.runs", ["run", "smoke"], "interrupted while orch was starting: nothing was launched"),
        (
            "orchestrator.commands.quickfetch",
            ["fetch-results", "r"],
            "interrupted while orch was starting: nothing was done",
        ),
    ],
)
def test_ctrl_c_while_orch_starts_is_one_line_and_130(module, args, line):
    proc = orch_interrupted(ON_IMPORT.format(module=module), *args)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == line + "\n" and proc.stdout == ""


def test_ctrl_c_in_orch_run_before_it_launches_says_nothing_was_launched():
    patch = """
    from orchestrator.config import project
    def find(*a, **k):
        raise KeyboardInterrupt
    project.Project.find = staticmethod(find)
    """
    proc = orch_interrupted(patch, "run", "smoke", "--name", "x")
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == "interrupted: nothing was launched\n"


def test_ctrl_c_in_another_command_is_still_said():
    # Typer turns a KeyboardInterrupt it sees into a silent exit 130: orch says it.
    patch = """
    from orchestrator.config import project
    def find(*a, **k):
        raise KeyboardInterrupt
    project.Project.find = staticmethod(find)
    """
    proc = orch_interrupted(patch, "cancel", "x")
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == "interrupted\n"
