"""`orch logs` of a job without a log says why: an sbatch-refused job showed only `error: no
log yet for class-0` (exit 8).  On the built-in `local` transport against a real snapshot copy."""

import json
import shutil
import sys
from pathlib import Path

import pytest

from orchestrator import backends
from orchestrator.commands.runs import _show_tail
from orchestrator.config.hosts import HostConfig
from orchestrator.errors import ExitCode, OrchError
from orchestrator.transport.base import LocalTransport

REPO = Path(__file__).resolve().parents[2]


def test_a_job_that_ended_before_it_wrote_a_log_says_its_recorded_reason(tmp_path):
    workdir = tmp_path / "w"
    shutil.copytree(REPO / "remote", workdir / "code" / "h" / "remote", ignore=shutil.ignore_patterns("__pycache__"))
    job = workdir / "runs" / "r1" / "jobs" / "class-0"
    job.mkdir(parents=True)
    refused = "sbatch refused it: Batch job submission failed: Requested node configuration is not available"
    (job / "status.json").write_text(json.dumps({"state": "failed", "ended": 1.0, "reason": refused}))
    transport = LocalTransport(HostConfig(name="local", workdir=str(workdir), python=sys.executable))
    record = {"host": "local", "workdir": str(workdir), "code_hash": "h"}
    with pytest.raises(OrchError) as err:
        _show_tail(transport, tmp_path / "r1", record, "class-0", ["class-0"], 5, backends.get("tmux"))
    assert err.value.code == ExitCode.RUN_STATE
    assert err.value.message == f"no log yet for class-0: class-0 failed before it wrote one: {refused}"
