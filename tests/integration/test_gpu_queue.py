"""Two runs on one tmux host with one GPU take turns on it (issue 14, item 3): the wrappers
queue in the workdir's host-wide line for GPU 0, `orch status` shows a waiting job's
place, and no two payloads ever hold the GPU at once.  Real sshd, tmux and CLI."""

import json
import os
import time

import pytest
import timing

from remote import gpuqueue

pytestmark = pytest.mark.integration

FAST = ["--set", "train.steps=10", "--set", "train.log_every=5"]
JOBS = ["class-0", "class-1"]


def _status(p, run_id):
    proc = p.orch("status", run_id, "--json", check=True)
    return {j["name"]: j for j in json.loads(proc.stdout)["jobs"]}


def _until(p, what, check, timeout=180):
    """Poll `orch status` of both runs until ``check(a_jobs, b_jobs)`` holds."""
    deadline = time.time() + timing.scaled(timeout)
    while True:
        a, b = _status(p, "a"), _status(p, "b")
        if check(a, b):
            return
        assert time.time() < deadline, f"timed out waiting for {what}; last: a={a} b={b}"
        time.sleep(0.2)


def test_two_runs_take_turns_on_one_gpu(ssh_project):
    p = ssh_project
    p.write_host(gpus=["0"])  # CUDA_VISIBLE_DEVICES=0 on this CPU machine: harmless
    p.env["COLUMNS"] = "400"  # the status table's state cell holds the whole reason on one line
    # Something outside orch has GPU 0 while both runs launch: every job must queue, and each
    # one's place is certain (the line's own lock, taken as a wrapper takes it).
    outside = gpuqueue.Line(str(p.remote_root / "gpu-queue"), "0").try_take(
        {"pid": os.getpid(), "run": "outside", "job": "test"}
    )
    assert outside is not None
    try:
        p.orch("run", "smoke", "--host", "testhost", "--name", "a", *FAST, check=True)
        p.orch("run", "smoke", "--host", "testhost", "--name", "b", *FAST, check=True)
        first = "waiting for GPU 0: 2nd in line (behind run outside job test)"
        second = "waiting for GPU 0: 3rd in line (behind run outside job test and 1 more)"
        _until(
            p,
            "both runs' first jobs to queue",
            lambda a, b: a["class-0"]["reason"] == first and b["class-0"]["reason"] == second,
        )
        a, b = _status(p, "a"), _status(p, "b")
        assert {j["state"] for j in [*a.values(), *b.values()]} == {"waiting"}
        # Each run's second job waits for its first (`after`), not yet in the GPU's line, and says so.
        behind = "waiting for job class-0 to end"
        assert a["class-1"]["reason"] == behind and b["class-1"]["reason"] == behind
        table = p.orch("status", "b", check=True).stdout
        assert f"waiting ({second})" in table, table
    finally:
        os.close(outside)
        released = time.time()

    # Run a's first job has the GPU now; run b's waits behind it, and says so.
    reasons = []
    deadline = time.time() + timing.scaled(180)
    while True:
        job = _status(p, "b")["class-0"]
        if job["state"] != "waiting":
            break
        reasons.append(job["reason"])
        assert time.time() < deadline, f"b/class-0 still waiting: {reasons[-5:]}"
    assert "waiting for GPU 0: 2nd in line (behind run a job class-0)" in reasons, reasons
    jobs = p.wait_state("a", timeout=600) + p.wait_state("b", timeout=600)
    assert [j["state"] for j in jobs] == ["done"] * 4, jobs

    # The GPU was never held by two payloads at once, nor while the outside holder had it.
    spans = []
    for run in ("a", "b"):
        for job in JOBS:
            status = json.loads((p.remote_job(run, job) / "status.json").read_text())
            assert status["gpu"] == "0" and status["reason"] == ""
            spans.append((status["started"], status["ended"], f"{run}/{job}"))
    spans.sort()
    assert spans[0][0] >= released, spans
    for (_, end, name), (start, _, next_name) in zip(spans, spans[1:]):
        assert end <= start, f"{name} still held GPU 0 when {next_name} started: {spans}"
    # Turns alternate between the runs: b's first job queued while a's first ran.
    assert [name for _, _, name in spans] == ["a/class-0", "b/class-0", "a/class-1", "b/class-1"], spans
    assert not list((p.remote_root / "gpu-queue" / "0").glob("*.ticket"))
