"""Bootstrap's GPU steps as Slurm batch jobs, through the real sshd and a real Slurm (slurmbed.py).

A full `orch bootstrap` needs the internet (Miniconda, PyPI); what is Slurm's in it is the
step runner following a step that SlurmSteps submits, so these tests drive that (Runner +
the host's backend) over the loopback login node with trivial step commands, the real
bootstrap/run_step.sh and the real lock, and the probe that finds a live step to reattach.
"""

import json
import time
from types import SimpleNamespace

import pytest
import timing
from slurmcases import slurm_project
from test_bootstrap import _host_python_bin, needs_torch

from orchestrator import backends
from orchestrator.backends.slurm_facts import JOBS
from orchestrator.config.hosts import resolve_host
from orchestrator.config.project import Project
from orchestrator.errors import OrchError
from orchestrator.provision import probe, scripts
from orchestrator.provision.plan import SCRIPTS, Layout, Step
from orchestrator.provision.progress import Progress
from orchestrator.provision.steps import Runner
from orchestrator.transport.connect import open_transport

pytestmark = pytest.mark.integration


@pytest.fixture
def p(cluster, login, tmp_path, monkeypatch):
    tools = tmp_path / "modules-bin"  # a stand-in `module` on the login node's PATH (exported to the job)
    tools.mkdir()
    (tools / "module").write_text('#!/bin/sh\necho "module $* (stand-in)"\n')
    (tools / "module").chmod(0o755)
    for project in slurm_project(cluster, login, tmp_path, slurm={"modules": ["cuda/test"]}, extra_path=[str(tools)]):
        monkeypatch.setenv("ORCH_SSH_CONFIG", project.env["ORCH_SSH_CONFIG"])  # in-process transports too
        yield project


class Notes(Progress):
    def __init__(self):
        self.notes = []

    def note(self, text):
        self.notes.append(text)


def _runner(p, transport, progress):
    cfg = resolve_host(Project(p.root), "cluster")
    layout = Layout(str(p.remote_root), "default")
    detached = backends.for_host(cfg).detached_steps(transport, layout)
    runner = Runner(transport, SimpleNamespace(layout=layout), "cluster", progress, detached=detached)
    runner.upload_scripts(scripts.read_scripts(SCRIPTS, p.root))
    return runner, detached, layout


def test_a_gpu_step_runs_as_a_slurm_job_and_is_followed_to_its_result(p):
    progress = Notes()
    with open_transport(Project(p.root), "cluster") as transport:
        runner, jobs, layout = _runner(p, transport, progress)
        runner.lock.acquire()
        try:
            step = Step(
                "verify",
                "verify",
                argv=["sh", "-c", 'echo "built on $(hostname) job=$SLURM_JOB_ID gpu=$CUDA_VISIBLE_DEVICES"'],
                fingerprint="f1",
                timeout_s=timing.scaled(120),
            )
            rc, log = runner.run_step(step)  # attached in the plan; a Slurm job here
        finally:
            runner.lock.release()
    job_id = jobs.job_ids["verify"]
    assert rc == 0, log
    assert f"job={job_id} gpu=0" in log, log  # ran under Slurm, with the GPU Slurm gave it
    info = dict(
        kv.split("=", 1) for kv in p.cluster.cmd("scontrol", "show", "job", "-o", job_id).stdout.split() if "=" in kv
    )
    assert info["JobName"] == "orch-bootstrap-verify" and info["Partition"] == p.cluster.partition
    assert info["WorkDir"] == layout.root and "gpu:1" in info.get("TresPerNode", "")
    assert any(n.startswith(f"step verify: Slurm job {job_id}: ") for n in progress.notes), progress.notes
    logs = p.remote_root / "bootstrap" / "logs"
    assert "module load cuda/test (stand-in)" in (logs / "verify.slurm.out").read_text()
    assert '"rc": 0' in (logs / "verify.result").read_text()
    assert not (p.remote_root / "bootstrap" / "lock").exists(), "the lock is released"


def test_a_live_step_job_is_found_by_the_probe_and_scancel_is_recorded(p):
    with open_transport(Project(p.root), "cluster") as transport:
        runner, jobs, layout = _runner(p, transport, Progress())
        step = Step("verify", "verify", argv=["sleep", "300"], fingerprint="f1")
        jobs.launch(step, runner._runner_argv(step, tee=False), "cluster")
        lock = SimpleNamespace(POLL_SNIPPET="", poll_args=lambda: [])
        deadline = time.time() + timing.scaled(60)
        while not jobs.poll(step, 0, lock)[0].get("started"):  # run_step.sh has begun in the job
            assert time.time() < deadline, "the step's job did not start"
            time.sleep(0.3)
        facts = probe.run_probe(transport, [], project_root=p.root)
        assert facts.cluster[JOBS] == ["orch-bootstrap-verify"], "a re-run of bootstrap would reattach to it"
        transport.run(jobs.stop_hint(step), timeout=30)  # the hint the user is given, run as given
        deadline = time.time() + timing.scaled(60)
        while True:
            info, _ = jobs.poll(step, 0, lock)
            if info.get("result") and not info.get("alive"):
                break
            assert time.time() < deadline, f"scancel left no result: {info}"
            time.sleep(0.3)
        assert info["result"]["rc"] == 143  # run_step.sh got the TERM (the batch script exec'd it)
        assert probe.run_probe(transport, [], project_root=p.root).cluster[JOBS] == []


def test_a_refused_submission_is_one_error(p):
    p.write_host("cluster", scheduler="slurm", slurm={"partition": p.cluster.partition, "gres": "gpu:5"})
    with open_transport(Project(p.root), "cluster") as transport:
        runner, _, _ = _runner(p, transport, Progress())
        with pytest.raises(OrchError) as err:
            runner.run_step(Step("verify", "verify", argv=["true"], fingerprint="f1"))
    assert "could not submit step verify to Slurm on cluster" in err.value.message
    assert "Requested node configuration is not available" in err.value.message


@needs_torch
def test_orch_bootstrap_on_a_slurm_host_runs_verify_as_a_job(p, tmp_path):
    """The real CLI: the `venv` env (preinstalled torch, packages already there: no internet)
    installs from the login node, its packages step detached in tmux there, verify as a Slurm job.
    The preinstalled torch is a CPU build and the partition has GPUs: verify fails saying so,
    and what fixes it (another env: bootstrapping this one again reinstalls nothing)."""
    p.write_host(
        "cluster",
        scheduler="slurm",
        extra_path=[_host_python_bin(tmp_path)],
        slurm={"partition": p.cluster.partition, "gres": "gpu:1"},
    )
    proc = p.orch("bootstrap", "cluster", "--env", "venv", timeout=timing.scaled(300))
    out = proc.stderr
    assert proc.returncode == 7, proc.stdout + out
    assert "is a CPU build (no CUDA) but this host has GPUs" in out, out  # the plan's warning
    assert "detached in tmux session orch-bootstrap-packages" in out, out
    assert "detached in Slurm job orch-bootstrap-verify (id " in out, out
    assert "step verify: Slurm job " in out, out
    assert "bootstrap step verify failed on cluster" in out and "`orch bootstrap cluster --env default`" in out, out
    assert "bootstrap of cluster complete" not in out, out
    verify = json.loads((p.remote_root / "bootstrap" / "verify.json").read_text())
    assert not verify["ok"] and "is a CPU build (no CUDA)" in verify["cuda_error"], verify
    assert verify["checks"]["bf16_matmul"]["status"] == "ok"
    job_id = (p.remote_root / "bootstrap" / "logs" / "verify.jobid").read_text().strip()
    assert p.cluster.cmd("squeue", "-h", "-t", "all", "-j", job_id, "-o", "%j").stdout.strip() in (
        "orch-bootstrap-verify",
        "",  # (already forgotten by Slurm on a slow machine)
    )


def test_the_dry_run_plans_a_cuda_torch_for_gpus_of_a_type_orch_does_not_know(p):
    """The bed's gres is `gpu:fake:2`: GPUs whose compute capability orch cannot know.  The
    jobs still get GPUs, so torch: auto is a CUDA build (a CPU one would train on the CPU);
    only flash-attn, which needs the capability, is skipped."""
    proc = p.orch("bootstrap", "cluster", "--dry-run", timeout=timing.scaled(120))
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "torch==2.11.* (cu126)" in out and "(cpu)" not in out, out
    assert "no known compute capability: cu126 is assumed to fit them" in out, out
    assert "GPU types from sinfo (fake sm_?)" in out, out
    assert "install the NVIDIA driver" not in out, out  # a login node has none: no warning to install one
    assert "--expect-cuda" in out, out
