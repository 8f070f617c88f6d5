"""What a user sees when the connection drops or they press Ctrl-C, through the real sshd:
watching retries, Ctrl-C only stops watching, `logs -f` ends with the job and reports a
drop, and --resume puts back a run folder the host lost."""

import json
import shutil
import signal
import time

import pytest
import timing

pytestmark = pytest.mark.integration


def test_watch_retries_a_dropped_connection_and_ctrl_c_only_stops_watching(ssh_project):
    p = ssh_project
    p.orch(
        "run",
        "smoke",
        "--host",
        "testhost",
        "--name",
        "w",
        "--set",
        "train.steps=100000",
        "--set",
        "train.log_every=5",
        check=True,
    )
    watcher = p.start("status", "w", "--watch", "--interval", "0.5")
    try:
        watcher.wait_for("w: class-0 running")  # connected and polled once
        logins = p.sshd.logins()
        p.sshd.drop_connections()
        watcher.wait_for("retrying in 2 s")
        deadline = time.time() + timing.scaled(60)
        while p.sshd.logins() == logins and time.time() < deadline:  # the retry logs in again
            time.sleep(0.2)
        assert p.sshd.logins() > logins, watcher.stderr
        watcher.proc.send_signal(signal.SIGINT)
    finally:
        watcher.finish()
    out, err = watcher.stdout, watcher.stderr
    # Without a terminal: plain lines, one per change, not a live table; messages on stderr.
    assert "w: class-0 running" in out, out
    assert "connection to testhost lost" in err and "retrying in 2 s" in err, (out, err, watcher.proc.returncode)
    assert watcher.proc.returncode == 130, err
    assert "stopped watching w; its jobs keep running on testhost" in err and "error:" not in err
    assert "orch status w --watch" in err and "Traceback" not in err
    states = {j["name"]: j["state"] for j in json.loads(p.orch("status", "w", "--json", check=True).stdout)["jobs"]}
    assert states == {"class-0": "running", "class-1": "running"}
    p.cancel("w")


def test_logs_follow_ends_with_the_job_and_a_drop_is_an_error(ssh_project):
    p = ssh_project
    p.orch(
        "run",
        "smoke",
        "--host",
        "testhost",
        "--name",
        "f",
        "--set",
        "train.steps=40",
        "--set",
        "train.log_every=5",
        check=True,
    )
    followed = p.orch("logs", "f", "class-0", "-f", timeout=180)  # returns when the job ends
    assert followed.returncode == 0, followed.stderr
    assert "train step" in followed.stdout
    assert p.wait_state("f", timeout=60)[0]["state"] == "done"

    p.orch(
        "run",
        "smoke",
        "--host",
        "testhost",
        "--name",
        "g",
        "--set",
        "train.steps=100000",
        "--set",
        "train.log_every=5",
        check=True,
    )
    follower = p.start("logs", "g", "class-0", "-f")
    try:
        follower.wait_for("train step")  # the log is streaming
        p.sshd.drop_connections()
    finally:
        follower.finish()
    stderr = follower.stderr
    assert follower.proc.returncode == 5, stderr
    assert "lost the SSH connection" in stderr and "orch logs g class-0 -f" in stderr
    # Ctrl-C stops following: 130, as every Ctrl-C, and said as a stop, not an error
    follower = p.start("logs", "g", "class-0", "-f")
    try:
        follower.wait_for("train step")
        follower.proc.send_signal(signal.SIGINT)
    finally:
        follower.finish()
    assert follower.proc.returncode == 130, follower.stderr
    assert follower.stderr.startswith("stopped following g; its jobs keep running on testhost")
    assert "error:" not in follower.stderr and "Traceback" not in follower.stderr
    p.cancel("g")


def test_resume_puts_back_a_run_folder_the_host_lost(ssh_project):
    p = ssh_project
    p.orch("run", "smoke", "--host", "testhost", "--name", "lostdir", "--set", "train.steps=10", check=True)
    p.wait_state("lostdir")
    shutil.rmtree(p.remote_root / "runs" / "lostdir")
    status = p.orch("status", "lostdir")
    assert status.returncode == 8 and "is not on testhost" in status.stderr
    assert "--resume lostdir" in status.stderr
    # every command that asks the host says the same, not "no log yet" or nothing at all
    for argv in (
        ["logs", "lostdir"],
        ["logs", "lostdir", "class-0", "-f"],
        ["cancel", "lostdir"],
        ["fetch-results", "lostdir"],
    ):
        asked = p.orch(*argv)
        assert asked.returncode == 8 and "run lostdir is not on testhost" in asked.stderr, (argv, asked.stderr)
        assert "--resume lostdir" in asked.stderr
    resumed = p.orch("run", "smoke", "--resume", "lostdir", check=True)
    assert "relaunched class-0, class-1" in resumed.stderr and resumed.stdout == "lostdir\n"
    assert [j["state"] for j in p.wait_state("lostdir")] == ["done", "done"]
    assert "results verified" in p.orch("fetch-results", "lostdir", check=True).stderr
