"""Every JSON document the host side writes has exactly the keys docs/CONTRACT.md lists.

The documents come from the real code: `remote.hostctl` launching real wrappers in a real
tmux server (stdlib only, no torch), and `bootstrap/run_step.sh`. The payload's own files
(progress.jsonl, scores.jsonl, manifest.json) are checked against a real job in
tests/integration/test_local_host.py, which runs one anyway.
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from contractdoc import documented

from orchestrator import backends
from orchestrator.runs.plan import PlannedJob, launch_plan
from remote.backends.tmux import tmux_socket

REPO = Path(__file__).resolve().parents[2]
DOCS = documented()
# status.json keys a first attempt on a tmux host never writes: a scheduler's requeues, and
# what a job stopped and run again carries (stopped, earlier_s, requeue_counted)
SLURM_ONLY = {"requeues", "stopped", "earlier_s", "requeue_counted"}


def keys(name):
    """The documented keys; tests of a tmux host leave out the Slurm-only ones (`requeues`)."""
    assert name in DOCS, f"docs/CONTRACT.md has no key list {name!r}; it has {sorted(DOCS)}"
    return DOCS[name]


def _hostctl(workdir, *args, stdin=None):
    proc = subprocess.run(
        [sys.executable, "-m", "remote.hostctl", *args, "--workdir", str(workdir)],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _wait(predicate, what, timeout=60):
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.fixture
def workdir(tmp_path):
    yield tmp_path
    # The tmux server and every job in it (the wrappers forward TERM to their payloads).
    subprocess.run(["tmux", "-S", tmux_socket(str(tmp_path)), "kill-server"], capture_output=True)


def test_the_contract_lists_keys_for_every_host_document():
    for name in (
        "status.json/keys",
        "backend.json/keys",
        "progress.jsonl/keys",
        "scores.jsonl/keys",
        "manifest.json/keys",
        "launch/plan keys",
        "launch/plan job keys",
        "launch/reply keys",
        "launch/job keys",
        "status/reply keys",
        "status/job keys",
        "status-all/reply keys",
        "cancel/reply keys",
        "cancel/job keys",
        "GPU queue/ticket keys",
        "GPU queue/lock keys",
        "Bootstrap files/keys of `.started`",
        "Bootstrap files/keys of `.result`",
    ):
        assert keys(name), name


def test_hostctl_and_the_wrapper_write_exactly_the_documented_keys(workdir):
    run_dir = workdir / "runs" / "r1"
    py = sys.executable
    jobs = [PlannedJob(name="quick", role="class", label="0"), PlannedJob(name="slow", role="class", label="1")]
    plan = launch_plan("r1", py, str(run_dir), str(REPO), jobs, backends.get("tmux"))
    payload = {"quick": [py, "-c", "pass"], "slow": [py, "-c", "import time; time.sleep(300)"]}
    for item in plan["jobs"]:  # trivial payloads, the real wrapper around them
        item["command"] = " ".join(
            [py, "-m", "remote.wrapper", "--job-dir", item["job_dir"], "--"] + [f"'{a}'" for a in payload[item["name"]]]
        )
    assert set(plan) <= keys("launch/plan keys") and {"run_id", "backend", "jobs"} <= set(plan)
    for item in plan["jobs"]:
        assert set(item) == keys("launch/plan job keys")

    reply = _hostctl(workdir, "launch", stdin=json.dumps(plan))
    assert set(reply) == keys("launch/reply keys")
    for job in reply["jobs"]:
        assert job["started"], job
        assert set(job) == keys("launch/job keys") - {"unanswered"}  # only for a job the scheduler did not take

    quick, slow = run_dir / "jobs" / "quick", run_dir / "jobs" / "slow"
    _wait(lambda: json.loads((quick / "status.json").read_text() or "{}").get("state") == "done", "quick done")
    for d in (quick, slow):
        assert set(json.loads((d / "backend.json").read_text())) == keys("backend.json/keys")
        assert set(json.loads((d / "status.json").read_text())) == keys("status.json/keys") - SLURM_ONLY

    status = _hostctl(workdir, "status", "--run-dir", str(run_dir))
    assert set(status) == keys("status/reply keys")
    for job in status["jobs"]:
        assert set(job) == keys("status/job keys") - {"requeues", "earlier_s"}  # a job with earlier attempts
    # a study's status: many runs in one process, the same reply for each
    both = _hostctl(workdir, "status-all", "--run-dir", str(run_dir), "--run-dir", str(workdir / "runs" / "gone"))
    assert set(both) == keys("status-all/reply keys")
    mine, gone = both["replies"]
    assert set(mine) == keys("status/reply keys")
    assert [j["name"] for j in mine["jobs"]] == [j["name"] for j in status["jobs"]]
    assert gone["exists"] is False and gone["jobs"] == []

    cancel = _hostctl(workdir, "cancel", "--run-dir", str(run_dir))
    assert set(cancel) == keys("cancel/reply keys")
    by_name = {j["name"]: j for j in cancel["jobs"]}
    assert by_name["slow"]["state"] == "cancelled" and by_name["quick"]["changed"] is False
    for job in cancel["jobs"]:
        assert set(job) <= keys("cancel/job keys") and keys("cancel/job keys") - set(job) <= {"error"}
    # the wrapper's end state, written as it was cancelled
    assert set(json.loads((slow / "status.json").read_text())) == keys("status.json/keys") - SLURM_ONLY


def test_run_step_writes_exactly_the_documented_keys(tmp_path):
    logs = tmp_path / "logs"
    proc = subprocess.run(
        ["bash", str(REPO / "bootstrap" / "run_step.sh"), "demo", "f00d", str(logs), "--", "true"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ},
    )
    assert proc.returncode == 0, proc.stderr
    assert set(json.loads((logs / "demo.started").read_text())) == keys("Bootstrap files/keys of `.started`")
    assert set(json.loads((logs / "demo.result").read_text())) == keys("Bootstrap files/keys of `.result`")
