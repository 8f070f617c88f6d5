"""remote/wrapper.py records how its payload ended: exit 0 is `done`, any other exit code is
`failed` with that code and the payload's last error line as the reason (exit 1 included:
a Python traceback ends with it).  The real wrapper process around a one-line payload."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import timing

REPO = Path(__file__).resolve().parents[2]


def _wrap(job_dir: Path, script: str) -> int:
    proc = subprocess.run(
        [sys.executable, "-m", "remote.wrapper", "--job-dir", str(job_dir), "--", "sh", "-c", script],
        env=dict(os.environ, PYTHONPATH=str(REPO)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        timeout=timing.scaled(60),
    )
    return proc.returncode


@pytest.mark.parametrize("code", [1, 2, 3, 137])
def test_a_payload_that_exits_non_zero_is_recorded_failed_with_its_code(tmp_path, code):
    job = tmp_path / "job"
    assert _wrap(job, f"echo working; echo 'error: it broke' >&2; exit {code}") == code
    status = json.loads((job / "status.json").read_text())
    assert status["state"] == "failed", status
    assert status["exit_code"] == code
    assert status["reason"].endswith(f"exit code {code}: error: it broke"), status["reason"]
    assert isinstance(status["ended"], float) and status["ended"] >= status["started"]
    assert f"exit {code}" in (job / "log.txt").read_text()


def test_a_payload_that_exits_0_is_recorded_done(tmp_path):
    job = tmp_path / "job"
    assert _wrap(job, "echo fine") == 0
    status = json.loads((job / "status.json").read_text())
    assert (status["state"], status["exit_code"], status["reason"]) == ("done", 0, "")
