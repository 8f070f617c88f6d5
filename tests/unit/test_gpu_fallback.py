"""A job given a GPU that torch cannot use runs on the CPU (remote/train.py) and says so:
`orch status` (the progress line's `device`), the host documents' checks, and `orch smoke`
(its run step fails; on a Slurm host its kernel step says it ran on the login node)."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from orchestrator import backends
from orchestrator.commands.statustable import render
from orchestrator.contract.hostdocs import BadDocument, check_manifest, check_progress
from orchestrator.errors import OrchError
from orchestrator.runs import smoke
from orchestrator.runs.state import job_row


def _raw(name, gpu, device, state="done"):
    return {
        "name": name,
        "status": {"state": state, "gpu": gpu, "started": 1.0, "ended": 2.0, "exit_code": 0},
        "progress": {"phase": "score", "step": 4, "total": 4, **({"device": device} if device else {})},
        "alive": False,
        "manifest": True,
    }


def test_status_shows_a_gpu_job_that_runs_on_the_cpu_and_says_how_to_fix_it():
    rows = [
        job_row(_raw("class-0", "0", "cpu"), 3.0, "", backends.get("tmux")),
        job_row(_raw("class-1", "1", "cuda"), 3.0, "", backends.get("tmux")),
        job_row(_raw("cpu-host", "", "cpu"), 3.0, "", backends.get("tmux")),  # no GPU given: nothing to say
        job_row(
            _raw("old", "2", None), 3.0, "", backends.get("tmux")
        ),  # progress lines from before `device`: nothing known
    ]
    assert [r.gpu_unused for r in rows] == [True, False, False, False]
    assert rows[0].to_dict()["device"] == "cpu"  # (status --json)
    lines = render("r1", "cluster", rows, backends.get("slurm")).splitlines()
    assert lines[3].split()[:5] == ["class-0", "-", "0", "(ran", "on"]
    assert "(ran on CPU)" not in " ".join(lines[4:7])
    assert lines[-1].startswith("class-0: given a GPU but running on the CPU")
    assert "train.device: cpu" in lines[-1] and "`orch bootstrap cluster` installs a CUDA build of torch" in lines[-1]
    plain = render("r1", "cluster", rows[1:], backends.get("slurm"))
    assert "running on the CPU" not in plain


def test_the_host_documents_carry_the_device_and_its_note():
    assert check_progress({"phase": "train", "device": "cpu"})["device"] == "cpu"
    with pytest.raises(BadDocument):
        check_progress({"phase": "train", "device": 0})
    doc = {"files": {}, "device": "cpu", "device_note": "given GPU 0 but torch is a CPU build"}
    assert check_manifest(doc)["device_note"].startswith("given GPU 0")
    with pytest.raises(BadDocument):
        check_manifest({**doc, "device_note": ["x"]})


def test_the_smoke_run_fails_when_jobs_given_a_gpu_ran_on_the_cpu():
    rows = [
        job_row(_raw("class-0", "0", "cpu"), 3.0, "", backends.get("tmux")),
        job_row(_raw("class-1", "0", "cpu"), 3.0, "", backends.get("tmux")),
    ]
    with pytest.raises(OrchError) as err:
        smoke.check_gpus_used(rows, "cluster", "smoke-check-1")
    said = str(err.value)
    assert said.startswith("jobs given a GPU ran on the CPU: class-0 (GPU 0), class-1 (GPU 0)")
    assert "`orch logs smoke-check-1 class-0` says why" in said and "`orch bootstrap cluster`" in said
    smoke.check_gpus_used(
        [job_row(_raw("class-0", "0", "cuda"), 3.0, "", backends.get("tmux"))], "cluster", "smoke-check-1"
    )
    smoke.check_gpus_used([job_row(_raw("class-0", "", "cpu"), 3.0, "", backends.get("tmux"))], "box", "smoke-check-1")


class _Transport:
    def __init__(self, scheduler):
        self.host = SimpleNamespace(name="cluster", scheduler=scheduler, python_or_default="python3")

    def run(self, command, check=True, timeout=None):
        report = {"cuda_available": False, "checks": {"bf16_matmul": {"status": "ok"}}}
        return SimpleNamespace(rc=0, stdout=json.dumps(report) + "\n", stderr="")


@pytest.mark.parametrize("scheduler", ["slurm", "tmux"])
def test_the_kernel_step_says_where_it_ran(scheduler):
    ctx = smoke.SmokeContext(
        project=None, transport=_Transport(scheduler), experiment="smoke", overrides=[], timeout=1, workdir="/w"
    )
    with pytest.raises(smoke.Skip) as skip:
        smoke.step_kernels(ctx)
    said = str(skip.value)
    if scheduler == "slurm":
        assert said.startswith("ran on the Slurm login node, which has no CUDA GPU")
        assert "the smoke run checks that the jobs use their GPUs" in said
    else:
        assert said.startswith("no CUDA GPU:") and "login node" not in said


def test_the_smoke_fix_for_a_preinstalled_cpu_torch_is_another_env(tmp_path):
    """Bootstrapping an env whose torch is the host's preinstalled CPU build again changes
    nothing: the fix smoke names is an env orch installs torch into."""
    from orchestrator.config.project import Project

    repo = Path(__file__).resolve().parents[2]
    project = Project.__new__(Project)
    project.root = repo
    venv = SimpleNamespace(name="cluster", python_or_default="/w/envs/venv/bin/python")
    assert "`orch bootstrap cluster --env default`" in smoke.torch_fix(project, venv)
    default = SimpleNamespace(name="cluster", python_or_default="/w/envs/default/bin/python")
    assert smoke.torch_fix(project, default).startswith("`orch bootstrap cluster --force torch`")
    rows = [job_row(_raw("class-0", "0", "cpu"), 3.0, "0", backends.get("tmux"))]
    with pytest.raises(OrchError) as err:
        smoke.check_gpus_used(rows, "cluster", "smoke-check-1", smoke.torch_fix(project, venv))
    assert "Fix: env venv uses the host's preinstalled torch" in err.value.message
