"""The host's warm worker (remote/warm.py), end to end through the real sshd and tmux: class
jobs are forked from a process that imported torch once, look like cold jobs to ps and to
the controller, stop when cancelled, run new code after a code change (the same worker),
and the worker goes with its tmux server.  With the
host file's `warm_worker: 0` the jobs start cold."""

import json
import os
import re
import subprocess

import pytest
import testprocs
import timing

pytestmark = pytest.mark.integration

FAST = ["--set", "train.steps=30", "--set", "train.log_every=5"]
LONG = ["--set", "train.steps=100000", "--set", "train.log_every=5"]
FORKED = re.compile(r"\[orch\] forked by the warm worker: pid (\d+)")


def wait_for(pred, timeout=120, what="condition"):
    timing.wait_for(pred, timeout, what, poll=0.2)


def log(p, run, job) -> str:
    path = p.remote_job(run, job) / "log.txt"
    return path.read_text() if path.is_file() else ""


def workers(p) -> dict:
    """The host's warm workers: not their children, which show the worker's command line
    for the instant before they take the job's."""
    found = {pid: cmd for pid, cmd in testprocs.processes_under([str(p.remote_root)]).items() if "remote.warm" in cmd}
    return {pid: cmd for pid, cmd in found.items() if testprocs.parent_pid(pid) not in found}


def cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as fh:
        return " ".join(a.decode() for a in fh.read().split(b"\0") if a)


def test_jobs_are_forked_warm_look_cold_and_stop_when_cancelled(ssh_project):
    p = ssh_project
    p.orch("run", "smoke", "--host", "testhost", "--name", "warm", *FAST, check=True)
    jobs = p.wait_state("warm")
    assert [j["state"] for j in jobs] == ["done", "done"], jobs
    for job in ("class-0", "class-1"):
        assert FORKED.search(log(p, "warm", job)), log(p, "warm", job)[-2000:]
        manifest = json.loads((p.remote_job("warm", job) / "manifest.json").read_text())
        assert manifest["timings"]["import_s"] < 1.0, manifest["timings"]  # torch was in memory already
    # One worker, in its own session of the workdir's tmux server.
    assert len(workers(p)) == 1, workers(p)
    sessions = subprocess.run(
        ["tmux", "-S", str(p.remote_root / "tmux.sock"), "list-sessions", "-F", "#{session_name}"],
        capture_output=True,
        text=True,
    ).stdout.split()
    assert [s for s in sessions if s.startswith("orch-warm-")], sessions
    fetched = p.orch("fetch-results", "warm", check=True)
    assert "results verified" in fetched.stderr
    assert json.loads((p.run_dir("warm") / "metrics.json").read_text())["accuracy"] > 0.7

    # After a code change (a new snapshot), a long job: forked by the same worker, running the
    # new code; ps shows its own command line; cancel stops it.
    (worker,) = workers(p)
    with (p.root / "remote" / "train.py").open("a") as fh:
        fh.write("\nprint('[new code] train.py of the second snapshot', flush=True)\n")
    p.orch("run", "smoke", "--host", "testhost", "--name", "warmlong", *LONG, check=True)
    wait_for(lambda: all(FORKED.search(log(p, "warmlong", j)) for j in ("class-0", "class-1")), what="forks")
    pids = {j: int(FORKED.search(log(p, "warmlong", j)).group(1)) for j in ("class-0", "class-1")}
    assert list(workers(p)) == [worker]
    snapshots = {json.loads((p.run_dir(r) / "local.json").read_text())["code_hash"] for r in ("warm", "warmlong")}
    assert len(snapshots) == 2, snapshots
    wait_for(lambda: all("[new code]" in log(p, "warmlong", j) for j in ("class-0", "class-1")), what="new code")
    for job, pid in pids.items():
        assert f"-m remote.run_job --run-dir {p.remote_root}/runs/warmlong --job {job}" in cmdline(pid)
    out = p.cancel("warmlong", "class-0")
    assert "class-0: cancelled" in out.stdout
    wait_for(lambda: not os.path.exists(f"/proc/{pids['class-0']}"), timeout=30, what="the payload to end")
    assert os.path.exists(f"/proc/{pids['class-1']}")  # the other job runs on
    status = json.loads((p.remote_job("warmlong", "class-0") / "status.json").read_text())
    assert status["state"] == "cancelled", status

    # The tmux server goes (a reboot, `tmux kill-server`): its wrappers stop their payloads,
    # and the worker leaves once they have ended.
    subprocess.run(["tmux", "-S", str(p.remote_root / "tmux.sock"), "kill-server"], capture_output=True)
    wait_for(lambda: not workers(p) and not os.path.exists(f"/proc/{pids['class-1']}"), timeout=60, what="exit")


def test_warm_worker_0_starts_jobs_cold(ssh_project):
    p = ssh_project
    p.write_host(warm_worker=0)
    p.orch("run", "smoke", "--host", "testhost", "--name", "cold", *FAST, check=True)
    jobs = p.wait_state("cold")
    assert [j["state"] for j in jobs] == ["done", "done"], jobs
    for job in ("class-0", "class-1"):
        text = log(p, "cold", job)
        assert "job " + job in text and not FORKED.search(text), text[-2000:]
    assert not workers(p)
