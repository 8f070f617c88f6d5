"""`orch` as a user calls it, in a fresh process: for tests of what the command line prints
and how it exits (help texts, usage errors, error messages)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import timing

REPO = Path(__file__).resolve().parents[1]


def orch_cli(*argv: str, **env: str) -> subprocess.CompletedProcess:
    """`python -m orchestrator.cli ARGV...` from the repository, its output captured as text;
    ENV: variables set on top of this process's environment."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *argv],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timing.scaled(60),
        env={**os.environ, **env} if env else None,
    )
