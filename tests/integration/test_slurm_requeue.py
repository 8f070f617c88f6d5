"""Slurm's stops and reruns end to end (requeue, time limit) and `orch smoke` through Slurm:
the tests of `scheduler: slurm` hosts that train for minutes, in their own file (and so their
own one-node cluster) to run beside test_slurm.py in another pytest worker.
"""

import json
import time

import pytest
import timing
from slurmcases import LONG, slurm_project, status, wait

pytestmark = pytest.mark.integration


@pytest.fixture
def p(cluster, login, tmp_path):
    yield from slurm_project(cluster, login, tmp_path)


@pytest.mark.slow
def test_smoke_through_slurm_and_the_step_that_fails(p):
    # The bed's GPUs are fake: jobs given one run on the CPU, which a smoke check must not pass...
    proc = p.orch("smoke", "cluster", "--json", "--set", "train.steps=10")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    steps = {s["name"]: s for s in json.loads(proc.stdout)["steps"]}
    run = steps["smoke run (through the host's job backend)"]
    assert run["status"] == "failed" and run["detail"].startswith("jobs given a GPU ran on the CPU: class-0 (GPU "), run
    assert "`orch bootstrap cluster`" in run["detail"]
    kernels = steps["GPU kernels (bf16 matmul, SDPA, flash-attn)"]
    assert kernels["status"] == "skipped" and "ran on the Slurm login node" in kernels["detail"], kernels
    assert steps["fetch + evaluate"]["status"] == "skipped" and steps["cleanup"]["status"] == "passed"
    # ...unless the run asks for the CPU.
    proc = p.orch("smoke", "cluster", "--json", "--set", "train.device=cpu")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    steps = {s["name"]: s for s in json.loads(proc.stdout)["steps"]}
    assert steps["smoke run (through the host's job backend)"]["status"] == "passed"
    assert steps["smoke run (through the host's job backend)"]["detail"].endswith("(on cpu)")
    assert steps["fetch + evaluate"]["status"] == "passed" and steps["cleanup"]["status"] == "passed"
    # Jobs that stay in the queue past the timeout: the failing step says so, with Slurm's reason.
    p.write_host(
        "cluster",
        scheduler="slurm",
        slurm={"partition": p.cluster.partition, "gres": "gpu:1", "extra_args": ["--begin=now+1hour"]},
    )
    proc = p.orch("smoke", "cluster", "--json", "--timeout", "5", "--set", "train.steps=10")
    assert proc.returncode == 1
    steps = {s["name"]: s for s in json.loads(proc.stdout)["steps"]}
    run = steps["smoke run (through the host's job backend)"]
    assert run["status"] == "failed" and "pending (PENDING: BeginTime)" in run["detail"], run
    assert steps["cleanup"]["status"] == "passed"
    p.write_host("cluster", scheduler="slurm", slurm={"partition": "nosuch"})
    proc = p.orch("smoke", "cluster", "--json")
    steps = {s["name"]: s for s in json.loads(proc.stdout)["steps"]}
    assert proc.returncode == 1 and steps["probe"]["status"] == "failed" and "nosuch" in steps["probe"]["detail"]


@pytest.mark.slow
def test_requeue_resumes_from_checkpoint_with_equal_scores(p):
    steps = ["--set", "train.steps=150", "--set", "train.log_every=5", "--set", 'data.classes=["0","1"]']
    p.orch("run", "smoke", "--host", "cluster", "--name", "plain", *steps, check=True)
    p.orch("run", "smoke", "--host", "cluster", "--name", "again", *steps, check=True)
    jobs = wait(p, "again", lambda j: (j["class-0"]["step"] or 0) >= 20, "class-0 training", timeout=300)
    job_id = jobs["class-0"]["backend"]["job_id"]
    p.cluster.cmd("scontrol", "requeue", job_id)
    deadline = time.time() + timing.scaled(60)
    while p.cluster.job_state(job_id) != "PENDING" and time.time() < deadline:
        time.sleep(0.2)
    mid = status(p, "again")["jobs"][0]
    assert mid["state"] in ("waiting", "running"), mid  # never an end: Slurm runs it again
    # While it waits in the queue its clock stands still: the time it ran, not the hold.
    held = wait(p, "again", lambda j: j["class-0"]["state"] == "waiting", "class-0 waiting")["class-0"]
    ran = held["elapsed_s"]
    assert held["requeues"] == 1, held  # Slurm's requeue counts while it holds the job, not once it reruns
    time.sleep(1.5)
    assert status(p, "again")["jobs"][0]["elapsed_s"] == ran
    p.cluster.release(job_id)  # Slurm holds a requeued job ~2 min (BeginTime)
    jobs = wait(p, "again", lambda j: all(x["state"] == "done" for x in j.values()), "done", timeout=300)
    last = json.loads((p.remote_job("again", "class-0") / "status.json").read_text())
    assert abs(jobs["class-0"]["elapsed_s"] - (ran + last["ended"] - last["started"])) < 1  # both attempts
    wait(p, "plain", lambda j: all(x["state"] == "done" for x in j.values()), "done", timeout=300)
    assert jobs["class-0"]["requeues"] == 1 and jobs["class-1"]["requeues"] == 0
    assert jobs["class-0"]["backend"]["job_id"] == job_id  # the same Slurm job, run again
    log = (p.remote_job("again", "class-0") / "log.txt").read_text()
    assert "checkpoint saved" in log and "resuming from" in log
    for job in ("class-0", "class-1"):
        assert (p.remote_job("again", job) / "scores.jsonl").read_bytes() == (
            p.remote_job("plain", job) / "scores.jsonl"
        ).read_bytes()
    manifest = json.loads((p.remote_job("again", "class-0") / "manifest.json").read_text())
    assert manifest["slurm"]["requeues"] == 1


@pytest.mark.slow
def test_time_limit_checkpoints_requeues_then_fails_after_max_requeues(p):
    p.write_host(
        "cluster",
        scheduler="slurm",
        slurm={"partition": p.cluster.partition, "gres": "gpu:1", "time": "2", "warn_before": 60, "max_requeues": 1},
    )
    # Slurm's signal timing is coarse (tens of seconds): a minute leaves time to start training.
    p.orch("run", "smoke", "--host", "cluster", "--name", "tl", *LONG, "--set", 'data.classes=["0","1"]', check=True)
    jobs = wait(p, "tl", lambda j: "requeued (1)" in (j["class-0"]["reason"] or ""), "a requeue", timeout=240)
    assert jobs["class-0"]["requeues"] == 1, jobs["class-0"]  # the reason's count is the column's
    job_id = jobs["class-0"]["backend"]["job_id"]
    deadline = time.time() + timing.scaled(60)
    while p.cluster.job_state(job_id) != "PENDING" and time.time() < deadline:
        time.sleep(0.2)
    p.cluster.release(job_id)
    jobs = wait(p, "tl", lambda j: j["class-0"]["state"] == "failed", "failed", timeout=300)
    assert (
        f"warning (slurm.warn_before before slurm.time) again after 1 requeue of Slurm job {job_id},"
        in jobs["class-0"]["reason"]
    ), jobs["class-0"]
    assert jobs["class-0"]["requeues"] == 1
    log = (p.remote_job("tl", "class-0") / "log.txt").read_text()
    first, _, second = log.partition("[orch] stopped by signal 10")
    assert second.count("start:") == 1, log  # run once again, then never more
    # On a slow machine the first warning can come before training begins (nothing to save);
    # resuming itself is test_requeue_resumes_from_checkpoint_with_equal_scores's to check.
    if "checkpoint saved" in first:
        assert "resuming from" in second, log
    assert "checkpoint saved" in second or "train step" not in second, log
    # --resume submits it again: a new Slurm job, whose own restart count starts at 0, while the
    # job's count of requeues carries on.
    p.orch("run", "smoke", "--resume", "tl", check=True)
    jobs = wait(p, "tl", lambda j: j["class-0"]["state"] == "running", "class-0 running again", timeout=120)
    assert jobs["class-0"]["backend"]["job_id"] != job_id and jobs["class-0"]["requeues"] == 1, jobs["class-0"]
