"""What both Slurm test files share: a project whose host `cluster` is the login node of
the one-node test cluster (conftest.py's `cluster` and `login`), and status helpers."""

import json
import os
import time

import timing
from conftest import make_project, stop_project

FAST = ["--set", "train.steps=20", "--set", "train.log_every=5"]
LONG = ["--set", "train.steps=100000", "--set", "train.log_every=5"]


def slurm_project(cluster, login, tmp_path, slurm=None, **host):
    """The body of each Slurm test file's `p` fixture (a generator: `yield from` it).
    SLURM: more `slurm:` keys; HOST: more host config keys."""
    project = make_project(tmp_path / "project", tmp_path / "hostwork", login)
    slurm = {"partition": cluster.partition, "gres": "gpu:1", **(slurm or {})}
    project.write_host("cluster", scheduler="slurm", slurm=slurm, **host)
    project.cluster = cluster
    try:
        yield project
    finally:  # pass or fail: no job of the test stays queued or running
        cluster.cmd("scancel", "--quiet", "--user", str(os.getuid()), check=False)
        cluster.wait_idle(30)
        stop_project(project)


def status(p, run_id):
    return json.loads(p.orch("status", run_id, "--json", check=True).stdout)


def wait(p, run_id, pred, what, timeout=180):
    deadline = time.time() + timing.scaled(timeout)
    last = None
    while time.time() < deadline:
        last = status(p, run_id)
        if pred({j["name"]: j for j in last["jobs"]}):
            return {j["name"]: j for j in last["jobs"]}
        time.sleep(0.5)
    raise AssertionError(f"{run_id}: no {what} in time; last status: {last}")


def slurm_job(p, job_id) -> dict:
    out = p.cluster.cmd("scontrol", "show", "job", "-o", str(job_id)).stdout
    return dict(kv.split("=", 1) for kv in out.split() if "=" in kv)
