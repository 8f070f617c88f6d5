"""Concurrent launches and a deleted tmux socket, through the real sshd and tmux (issue 9, items 6-7)."""

import json
import os
import subprocess
import sys

import pytest
from hostile import kill_processes_under, trainers_under
from timing import wait_for

pytestmark = pytest.mark.integration

LONG = ["--set", "train.steps=100000", "--set", "train.checkpoint_every=10", "--set", "train.log_every=5"]


@pytest.fixture
def p(ssh_project):
    yield ssh_project
    kill_processes_under(ssh_project.root.parent)


def test_concurrent_launches_with_new_code_all_run(p):
    """Several `orch run` at once, each sending the same new code snapshot: every launch
    succeeds and every job finishes (the second sync once deleted the first's snapshot)."""
    (p.root / "remote" / "fresh_module.py").write_text("FRESH = 1\n")
    n = 4
    procs = [
        p.popen(
            "run",
            "smoke",
            "--host",
            "testhost",
            "--name",
            f"cc{i}",
            "--set",
            "train.steps=3",
            "--set",
            "train.log_every=1",
        )
        for i in range(n)
    ]
    outs = [(proc.wait(timeout=300), *proc.communicate()) for proc in procs]
    for rc, out, err in outs:
        assert rc == 0, out + err
        assert "launched" in err and out.strip() == f"cc{outs.index((rc, out, err))}"
    snapshots = [d.name for d in (p.remote_root / "code").iterdir()]
    assert len([s for s in snapshots if not s.startswith(".")]) == 1, snapshots
    assert not [s for s in snapshots if s.startswith(".staging")], snapshots  # each loser dropped its copy
    for i in range(n):
        jobs = p.wait_state(f"cc{i}", timeout=400)
        assert [j["state"] for j in jobs] == ["done", "done"], (i, jobs)


def test_a_launch_whose_jobs_cannot_start_never_exits_0(p):
    """The wrappers cannot start (as when the race deleted the snapshot under them: python
    takes a moment to fail its import): `orch run` says so instead of "launched"."""
    shim = p.root / "py-shim"
    shim.write_text(
        "#!/bin/sh\n"
        'case "$*" in *"-m remote.wrapper"*) sleep 1; echo "No module named remote.wrapper" >&2; '
        "exit 1 ;; esac\n"
        f'exec {sys.executable} "$@"\n'
    )
    shim.chmod(0o755)
    p.write_host(python=str(shim))
    proc = p.orch("run", "smoke", "--host", "testhost", "--name", "gone", "--set", "train.steps=3")
    assert proc.returncode == 7, proc.stdout + proc.stderr
    assert "did not start" in proc.stderr and "launched" not in proc.stderr
    assert "Traceback" not in proc.stderr


def _status(p, run):
    proc = p.orch("status", run, "--json")
    assert proc.returncode == 0, proc.stderr
    return {j["name"]: j for j in json.loads(proc.stdout)["jobs"]}


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:
        return fh.read().split()[2] != "Z"


def test_deleted_tmux_socket_is_running_not_lost_and_never_duplicated(p):
    p.orch("run", "smoke", "--host", "testhost", "--name", "sock", *LONG, check=True)
    jobs = ("class-0", "class-1")

    def running():
        return all((p.remote_job("sock", j) / "progress.jsonl").is_file() for j in jobs)

    wait_for(running, what="training")
    pids = {j: json.loads((p.remote_job("sock", j) / "status.json").read_text())["pid"] for j in jobs}
    (p.remote_root / "tmux.sock").unlink()

    states = _status(p, "sock")
    assert {j: (s["state"], s["note"]) for j, s in states.items()} == {j: ("running", "tmux socket gone") for j in jobs}
    table = p.orch("status", "sock").stdout
    assert table.count("running (tmux socket gone)") == 2, table

    resumed = p.orch("run", "smoke", "--resume", "sock")
    assert resumed.returncode == 8, resumed.stdout + resumed.stderr
    assert "still running" in resumed.stderr and f"pid {pids['class-0']}" in resumed.stderr
    assert len(trainers_under(p.remote_root)) == 2  # one per job, no second one

    # The host helper itself refuses to start a job whose folder a live wrapper owns.
    code = json.loads((p.run_dir("sock") / "local.json").read_text())["code_hash"]
    snapshot = p.remote_root / "code" / code
    plan = {
        "jobs": [
            {
                "name": "class-0",
                "session": "orch-sock-class-0",
                "job_dir": str(p.remote_job("sock", "class-0")),
                "command": "touch PWNED_second",
            }
        ]
    }
    launch = subprocess.run(
        [sys.executable, "-S", "-m", "remote.hostctl", "launch", "--workdir", str(p.remote_root)],
        cwd=snapshot,
        input=json.dumps(plan),
        capture_output=True,
        text=True,
        check=True,
    )
    (result,) = json.loads(launch.stdout)["jobs"]
    assert not result["started"] and f"pid {pids['class-0']}" in result["error"]
    assert json.loads((p.remote_job("sock", "class-0") / "status.json").read_text())["state"] == "running"

    # Cancel still reaches the wrappers (by the pid that holds the lock) and they record it.
    out = p.orch("cancel", "sock")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "class-0: cancelled" in out.stdout and "class-1: cancelled" in out.stdout
    wait_for(lambda: not any(_alive(pid) for pid in pids.values()), timeout=30, what="wrappers to exit")
    for j in jobs:
        status = json.loads((p.remote_job("sock", j) / "status.json").read_text())
        assert status["state"] == "cancelled" and status["reason"] == "cancelled by the user"
    wait_for(lambda: not trainers_under(p.remote_root), timeout=30, what="trainers to exit")
    assert {j: s["state"] for j, s in _status(p, "sock").items()} == {j: "cancelled" for j in jobs}

    # Now the jobs are really stopped, resume relaunches them: one trainer each.
    again = p.orch("run", "smoke", "--resume", "sock")
    assert again.returncode == 0, again.stderr
    wait_for(lambda: all(s["state"] == "running" for s in _status(p, "sock").values()), what="relaunch")
    p.cancel("sock")
    assert not [f for f in os.listdir(p.remote_root / "code" / code) if f.startswith("PWNED")]
