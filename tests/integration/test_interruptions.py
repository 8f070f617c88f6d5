"""What a user sees when the connection drops or they press Ctrl-C, through the real sshd:
watching retries, Ctrl-C only stops watching, `logs -f` ends with the job and reports a
drop, and --resume puts back a run folder the host lost."""

import json
import os
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


def test_ctrl_c_stops_a_study_launch_and_fetch_and_resume_launches_each_run_once(ssh_project):
    from studycases import wait_ended, write_study

    p = ssh_project
    write_study(p, "si", {"a": {"model.kind": "ar"}}, [0, 1, 2, 3, 4], {"train.steps": 5, "eval.bootstrap": 100})
    launching = p.start("study", "run", "si")
    try:
        launching.wait_for("launched si-a-s0", timeout=120)
        launching.proc.send_signal(signal.SIGINT)
    finally:
        launching.finish()
    err = launching.stderr
    assert launching.proc.returncode == 130, err
    assert "Traceback" not in err and "error:" not in err and "interrupted: study si: launched si-a-s0" in err
    assert "not launched: " in err and "orch study resume si" in err
    after = err.split("interrupted: study si")[1]
    assert "launched si-" not in after.split("\n", 1)[1]  # nothing launched after the Ctrl-C
    recorded = sorted(d.name for d in (p.root / "runs").glob("si-*") if (d / "local.json").is_file())
    folders = {d.name: sorted(os.listdir(d)) for d in (p.root / "runs").glob("si-*")}
    assert sorted(folders) == recorded, (folders, err)  # a launch that recorded nothing leaves no folder
    assert 1 <= len(recorded) < 5, err
    for run_id in recorded:  # every run with a record, a half-launched one too, is the study's
        assert json.loads((p.run_dir(run_id) / "local.json").read_text())["study"]["name"] == "si", run_id
    listed = {r["run"]: r["study"] for r in json.loads(p.orch("runs", "--json", check=True).stdout)}
    assert {k for k, v in listed.items() if v == "si"} == set(recorded)

    resumed = p.orch("study", "resume", "si", check=True)
    for run_id in recorded:  # launched once: at most its jobs that never started are started
        assert f"launched {run_id}" not in resumed.stderr, resumed.stderr
    for seed in range(5):
        run_id = f"si-a-s{seed}"
        assert run_id in recorded or f"launched {run_id}" in resumed.stderr, resumed.stderr
    runs = wait_ended(p, "si")
    assert {r["state"] for r in runs.values()} == {"done"}, runs
    for run_id in runs:
        for job in ("class-0", "class-1"):
            assert (p.remote_job(run_id, job) / "log.txt").read_text().count(" start: ") == 1, (run_id, job)

    fetching = p.start("study", "fetch", "si")
    try:
        fetching.wait_for("fetched and evaluated si-a-s0", timeout=300)
        fetching.proc.send_signal(signal.SIGINT)
    finally:
        fetching.finish(timeout=300)
    err = fetching.stderr
    assert fetching.proc.returncode == 130, err
    assert (
        "Traceback" not in err and "error:" not in err and "interrupted: study si: fetched and evaluated si-a-s0" in err
    )
    assert "not fetched: " in err and "of 5 runs of si fetched" not in err
    assert [line for line in err.splitlines() if line.startswith("fetched and evaluated")] == [
        "fetched and evaluated si-a-s0"
    ], err  # nothing fetched after the Ctrl-C
    again = p.orch("study", "fetch", "si", check=True, timeout=600)
    assert "5 of 5 runs of si fetched" in again.stderr, again.stderr


@pytest.mark.parametrize("delay", [0.1, 0.3, 0.8, 1.5, 3.0, 6.0])
def test_ctrl_c_at_any_moment_of_orch_run_is_one_line_and_130(ssh_project, delay):
    """From orch's first module (the interpreter's start-up and `import orchestrator` are not
    orch's to handle) to watching the launched run: exit 130, no traceback, and a line that
    says what was left."""
    import subprocess
    import sys

    from testprocs import Running, ctrl_c_reaches_it

    p = ssh_project
    args = ["run", "smoke", "--host", "testhost", "--name", "c", "--wait", "--set", "train.steps=100000"]
    code = (
        "import orchestrator, runpy, sys; sys.stderr.write('ready\\n'); sys.stderr.flush(); "
        f"sys.argv = ['orch', *{args!r}]; "
        "runpy.run_module('orchestrator.cli', run_name='__main__', alter_sys=True)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=p.root,
        env=p.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_reaches_it,
    )
    running = Running(proc)
    try:
        running.wait_for("ready")
        time.sleep(delay)
        proc.send_signal(signal.SIGINT)
    finally:
        running.finish()
    err = running.stderr
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "error:" not in err, err
    last = err.rstrip("\n").splitlines()[-1]
    said = [line for line in err.splitlines() if line.startswith(("interrupted", "stopped watching"))]
    assert said, err
    nothing = ("interrupted while orch was starting: nothing was", "interrupted: nothing")
    if said[0].startswith(nothing):
        assert not p.run_dir("c").exists(), err
    else:  # launched, or its launch interrupted half-way: its record is kept, and says where it is
        assert (p.run_dir("c") / "local.json").is_file(), err
        p.cancel("c")
    assert last.startswith("  hint:") or last == said[0], err
