"""Every command answers --help, as a user would call it (a fresh process each)."""
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.cli import COMMAND_MODULES

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("command", sorted(COMMAND_MODULES) + ["hosts list", "hosts check", "hosts show"])
def test_help(command):
    proc = subprocess.run([sys.executable, "-m", "orchestrator.cli", *command.split(), "--help"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f"orch {command}" in " ".join(proc.stdout.split())


def test_unknown_command_and_option_are_usage_errors():
    for argv in (["nosuch"], ["status", "--bogus"]):
        proc = subprocess.run([sys.executable, "-m", "orchestrator.cli", *argv], cwd=REPO, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
