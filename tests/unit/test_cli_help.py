"""Every command answers --help, as a user would call it (a fresh process each)."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timing

from orchestrator.cli import COMMAND_MODULES

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", sorted(COMMAND_MODULES) + ["hosts list", "hosts check", "hosts show"])
def test_help(command):
    proc = subprocess.run([sys.executable, "-m", "orchestrator.cli", *command.split(), "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=timing.scaled(60))
    assert proc.returncode == 0, proc.stderr
    assert f"orch {command}" in " ".join(proc.stdout.split())


def test_unknown_command_and_option_are_usage_errors():
    for argv in (["nosuch"], ["status", "--bogus"]):
        proc = subprocess.run([sys.executable, "-m", "orchestrator.cli", *argv], cwd=REPO, capture_output=True,
                              text=True, timeout=timing.scaled(60))
        assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("command", sorted(COMMAND_MODULES) + ["hosts check"])
def test_help_shows_metavars_not_python_types(command):
    proc = subprocess.run([sys.executable, "-m", "orchestrator.cli", *command.split(), "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=timing.scaled(60), env={**os.environ, "COLUMNS": "200"})
    assert proc.returncode == 0, proc.stderr
    for python_type in ("<bool>", "<str>", "<int>", "<float>", "<list", "<path>", "[[", "...."):
        assert python_type not in proc.stdout, (python_type, proc.stdout)
    usage = next(line for line in proc.stdout.splitlines() if "Usage:" in line)
    assert "{" not in usage, usage  # EXPERIMENT, not Typer's {EXPERIMENT}
    assert "--quiet" in proc.stdout or command in ("hosts", "data")  # groups: their commands take it


def test_root_help_lists_the_exit_codes():
    from orchestrator.errors import ExitCode

    proc = subprocess.run([sys.executable, "-m", "orchestrator.cli", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=timing.scaled(60), env={**os.environ, "COLUMNS": "400"})
    text = " ".join(proc.stdout.split())
    assert "Exit codes: 0 success;" in text
    for code in ExitCode:
        assert f"{int(code)} " in text
    assert "--quiet" in text and "stdout" in text and "stderr" in text


def test_readme_exit_code_table_matches_the_code():
    import re

    from orchestrator.errors import exit_code_table

    readme = (REPO / "README.md").read_text()
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", readme, flags=re.M)
    assert [(int(c), m.replace("`", "")) for c, m in rows] == [(int(c), m) for c, m in exit_code_table()]
