"""Jobs outlive the controller and its connections; cancel, lost and resume behave."""

import json
import os
import shutil
import signal
import subprocess

import pytest
from timing import wait_for

pytestmark = pytest.mark.integration

LONG = ["--set", "train.steps=100000", "--set", "train.checkpoint_every=10", "--set", "train.log_every=5"]


def progress_steps(p, run, job):
    path = p.remote_job(run, job) / "progress.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line)["step"] for line in path.read_text().splitlines() if '"train"' in line]


def test_jobs_survive_controller_kill_and_dropped_connections(ssh_project):
    p = ssh_project
    p.orch("run", "smoke", "--host", "testhost", "--name", "surv", "--set", "train.steps=40", check=True)
    # A controller following logs is killed hard, mid-stream, with its SSH connection open.
    follower = p.start("logs", "surv", "class-0", "-f")
    try:
        follower.wait_for("train step")  # mid-stream
        follower.proc.send_signal(signal.SIGKILL)
    finally:
        follower.finish()
    # Drop every SSH connection the test sshd has, as a sleeping laptop or a network change would.
    p.sshd.drop_connections()
    # Reconnect later: the truth comes back from the host's files.
    jobs = p.wait_state("surv")
    assert [j["state"] for j in jobs] == ["done", "done"], jobs
    p.orch("fetch-results", "surv", check=True)


def test_cancel_lost_and_resume_from_checkpoint(ssh_project):
    p = ssh_project
    p.orch("run", "smoke", "--host", "testhost", "--name", "cr", *LONG, check=True)
    wait_for(lambda: all(len(progress_steps(p, "cr", j)) >= 3 for j in ("class-0", "class-1")), what="training")

    # Cancel one job: it is marked cancelled, the other keeps running.
    out = p.cancel("cr", "class-0")
    assert "class-0: cancelled" in out.stdout
    states = {j["name"]: j["state"] for j in json.loads(p.orch("status", "cr", "--json", check=True).stdout)["jobs"]}
    assert states == {"class-0": "cancelled", "class-1": "running"}

    # Kill the other job's wrapper and payload outright (no chance to record anything):
    # with its tmux session gone and no exit code it must show as lost.
    status = json.loads((p.remote_job("cr", "class-1") / "status.json").read_text())
    os.kill(status["pid"], signal.SIGKILL)  # the wrapper first, so it cannot record the payload's end
    subprocess.run(["pkill", "-9", "-f", "remote.run_job --run-dir .*/cr --job class-1"])
    sock = p.remote_root / "tmux.sock"
    subprocess.run(["tmux", "-S", str(sock), "kill-session", "-t", "=orch-cr-class-1"])
    states = {j["name"]: j["state"] for j in json.loads(p.orch("status", "cr", "--json", check=True).stdout)["jobs"]}
    assert states == {"class-0": "cancelled", "class-1": "lost"}

    before = {j: max(progress_steps(p, "cr", j)) for j in ("class-0", "class-1")}
    assert (p.remote_job("cr", "class-0") / "ckpt" / "last.pt").is_file()
    resumed = p.orch("run", "smoke", "--resume", "cr", check=True)
    assert "relaunched class-0, class-1" in resumed.stderr

    def continued(job):
        steps = progress_steps(p, "cr", job)
        return len(steps) > 0 and steps[-1] > before[job]

    wait_for(lambda: continued("class-0") and continued("class-1"), what="resumed training")
    for job in ("class-0", "class-1"):
        log = (p.remote_job("cr", job) / "log.txt").read_text()
        assert "resum" in log.lower(), log[-2000:]
        steps = progress_steps(p, "cr", job)
        # From scratch would log step 5 again; from the checkpoint it goes on past `before`.
        assert steps.count(5) == 1 and steps[-1] > before[job], f"{job} restarted from scratch: {steps}"
    nothing = p.orch("run", "smoke", "--resume", "cr")
    assert nothing.returncode == 8 and "still running" in nothing.stderr
    p.cancel("cr")
    # `orch runs` (no SSH) shows what the cancel saw, without an `orch status` first
    listed = {r["run"]: r for r in json.loads(p.orch("runs", "--json", check=True).stdout)}
    assert listed["cr"]["jobs"] == {"class-0": "cancelled", "class-1": "cancelled"}
    assert listed["cr"]["state"] == "cancelled"
    states = {j["name"]: j["state"] for j in json.loads(p.orch("status", "cr", "--json", check=True).stdout)["jobs"]}
    assert states == {"class-0": "cancelled", "class-1": "cancelled"}


# macOS's own rsync from 15.4 on: it has neither --files-from nor --info, and this one
# fails any transfer, as the real one did on orch's options.
OPENRSYNC = """#!/bin/sh
if [ "$1" = --version ]; then printf 'openrsync: protocol version 29\\nrsync version 2.6.9 compatible\\n'; exit 0; fi
echo "openrsync: unrecognized option '$1'" >&2; exit 1
"""


@pytest.mark.parametrize("local_rsync", ["missing", "openrsync"])
def test_sftp_fallback_when_rsync_missing_locally(ssh_project, tmp_path, local_rsync):
    p = ssh_project
    bindir = tmp_path / "bin"
    bindir.mkdir()
    # A PATH with everything the controller needs except rsync (or with macOS's openrsync).
    for tool in ("ssh", "ssh-keygen", "git", "sh", "bash", "tail"):
        found = shutil.which(tool)
        if found:
            os.symlink(found, bindir / tool)
    if local_rsync == "openrsync":
        (bindir / "rsync").write_text(OPENRSYNC)
        (bindir / "rsync").chmod(0o755)
    p.env["PATH"] = str(bindir)
    proc = p.orch("run", "smoke", "--host", "testhost", "--name", "sftp", "--set", "train.steps=10", check=True)
    assert "falling back to SFTP" in proc.stderr
    if local_rsync == "openrsync":
        assert "is not rsync 3.1 or newer: 'openrsync: protocol version 29'" in proc.stderr, proc.stderr
        assert "brew install rsync" in proc.stderr
    assert (p.remote_root / "code").is_dir()
    jobs = p.wait_state("sftp")
    assert [j["state"] for j in jobs] == ["done", "done"]
    fetched = p.orch("fetch-results", "sftp", check=True)
    assert "results verified" in fetched.stderr
