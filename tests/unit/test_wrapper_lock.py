"""One job folder, one live wrapper: the lock remote/wrapper.py holds for its life."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.backends.tmux import TmuxBackend
from orchestrator.runs.state import job_row
from remote.wrapper import EXIT_OWNED, lock_holder

REPO = Path(__file__).resolve().parents[2]


def _wrapper(job_dir: Path, *payload: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.Popen(
        [sys.executable, "-m", "remote.wrapper", "--job-dir", str(job_dir), "--", *payload],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait(pred, what, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _children(pid):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(x) for x in out]


@pytest.fixture
def procs():
    started = []
    yield started
    for proc in started:
        for child in _children(proc.pid):
            try:
                os.killpg(child, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.kill()
        proc.wait()


def test_a_second_wrapper_leaves_the_folder_alone(tmp_path, procs):
    job = tmp_path / "job"
    first = _wrapper(job, "sleep", "60")
    procs.append(first)
    status_path = job / "status.json"
    _wait(lambda: status_path.is_file() and json.loads(status_path.read_text())["state"] == "running", "running")
    assert lock_holder(str(job)) == first.pid
    before = status_path.read_bytes()

    second = _wrapper(job, "sh", "-c", "touch SECOND_RAN")
    procs.append(second)
    assert second.wait(timeout=30) == EXIT_OWNED
    assert f"pid {first.pid}" in second.stderr.read().decode()
    assert status_path.read_bytes() == before  # not a byte of the owner's status touched
    assert not (tmp_path / "SECOND_RAN").exists() and first.poll() is None

    # The lock dies with its process: never stale.
    payload = _children(first.pid)
    first.send_signal(signal.SIGKILL)
    first.wait()
    for child in payload:
        os.killpg(child, signal.SIGKILL)
    assert lock_holder(str(job)) is None
    third = _wrapper(job, "true")
    procs.append(third)
    assert third.wait(timeout=30) == 0
    assert json.loads(status_path.read_text())["state"] == "done"


def test_lock_holder_without_a_lock_file(tmp_path):
    assert lock_holder(str(tmp_path / "nothing")) is None
    (tmp_path / "lock").write_text("123\n")  # a file nobody holds: not owned
    assert lock_holder(str(tmp_path)) is None


@pytest.mark.parametrize(
    "state,alive,owner,shown,note",
    [
        ("running", True, 12, "running", ""),
        ("running", False, 12, "running", "tmux socket gone"),
        ("waiting", False, 12, "waiting", "tmux socket gone"),
        (None, False, 12, "waiting", "tmux socket gone"),
        ("running", False, None, "lost", ""),
        (None, False, None, "lost", ""),
        ("done", False, None, "done", ""),
    ],
)
def test_a_held_lock_is_running_not_lost(state, alive, owner, shown, note):
    raw = {"name": "neg", "status": {"state": state, "pid": 12} if state else None, "alive": alive, "owner": owner}
    row = job_row(raw, 0.0, "", TmuxBackend())
    assert (row.state, row.note) == (shown, note)


def test_a_job_waiting_for_another_says_which(tmp_path, procs):
    """A class job behind its pretrain job shows why it waits, and starts once that is done."""
    jobs = tmp_path / "jobs"
    (jobs / "pretrain").mkdir(parents=True)
    (jobs / "pretrain" / "status.json").write_text(json.dumps({"state": "running"}))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    waiting = subprocess.Popen(
        [sys.executable, "-m", "remote.wrapper", "--job-dir", str(jobs / "class-0"), "--requires", "pretrain"]
        + ["--", "true"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    procs.append(waiting)
    status = jobs / "class-0" / "status.json"

    def said(reason):
        try:
            return json.loads(status.read_text()).get("reason") == reason
        except (OSError, ValueError):
            return False

    _wait(lambda: said("waiting for job pretrain to end"), "the waiting reason")
    assert json.loads(status.read_text())["state"] == "waiting"
    (jobs / "pretrain" / "status.json").write_text(json.dumps({"state": "done"}))
    _wait(lambda: json.loads(status.read_text())["state"] == "done", "the job to run once pretrain is done")
    assert json.loads(status.read_text())["reason"] == ""
