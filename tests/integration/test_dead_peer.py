"""A host that stops answering mid-command, through the real sshd: the processes serving
the connection are stopped (SIGSTOP), as a suspended host or a dropped network leaves
them, and the connection must be given up once `keepalive_count` keepalives went
unanswered, (keepalive_count + 1) x `keepalive` seconds after the host last spoke (ssh's
ServerAliveCountMax rule), with exit 5; a host that is merely quiet must not be, whatever
the count.  Before, `orch logs -f` waited for ever (Paramiko's keepalives want no reply)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time

import pytest
import timing

from orchestrator.errors import ExitCode, OrchError

pytestmark = pytest.mark.integration


def _children(pid: int):
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def _tree(pid: int):
    found = [pid]
    for child in _children(pid):
        found += _tree(child)
    return found


def _connections(sshd) -> set:
    return set(_children(int(sshd.pid_file.read_text())))


class Frozen:
    """The sshd processes serving the connections opened since ``before``, stopped."""

    def __init__(self, sshd, before: set):
        self.pids = []
        for child in _connections(sshd) - before:
            self.pids += _tree(child)
        assert self.pids, "no sshd process serves the connection"
        self._signal(signal.SIGSTOP)

    def _signal(self, sig) -> None:
        for pid in self.pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def thaw(self) -> None:
        self._signal(signal.SIGCONT)


def _host(project, **keys):
    project.write_host(**{"keepalive": 1, "keepalive_count": 2, **keys})
    from orchestrator.config.hosts import resolve_host
    from orchestrator.config.project import Project
    from orchestrator.transport.ssh import SSHTransport

    return SSHTransport(resolve_host(Project(project.root), "testhost"))


def _in_background(call):
    got = {}

    def go():
        started = time.monotonic()
        try:
            got["value"] = call()
        except OrchError as exc:
            got["error"] = exc
        got["took"] = time.monotonic() - started

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread, got


@pytest.mark.parametrize("how", ["stream", "run"])
def test_a_host_that_stops_answering_is_given_up_after_the_keepalives(ssh_project, how):
    """`stream` is `orch logs -f`; `run` (io_timeout 300) is `orch status --watch`'s and
    `orch run --wait`'s round trip: both leave a frozen host after about 3 s (2 probes
    unanswered, a second each), exit 5."""
    sshd = ssh_project.sshd
    before = _connections(sshd)
    t = _host(ssh_project)
    if how == "stream":
        thread, got = _in_background(lambda: t.stream("echo started; sleep 120", out=open(os.devnull, "w")))
    else:
        thread, got = _in_background(lambda: t.run("echo started; sleep 120"))
    timing.wait_for(lambda: len(_connections(sshd) - before) == 1, 30, "the connection")
    time.sleep(1.0)  # the command has started
    frozen = Frozen(sshd, before)
    try:
        thread.join(timing.scaled(30))
        assert not thread.is_alive(), "still waiting on a host that stopped answering"
    finally:
        frozen.thaw()
        t.close()
    err = got["error"]
    assert err.code == ExitCode.UNREACHABLE
    assert err.message.startswith("lost the SSH connection to "), err.message
    # 3 s after the host last spoke (4 on a machine too busy to wake the watch on time)
    assert re.search(r"no answer to 2 keepalives in [34] s \(keepalive: 1, keepalive_count: 2\)", err.message), (
        err.message
    )
    assert "orch hosts check testhost" in err.hint


def test_a_quiet_host_is_not_given_up(ssh_project):
    """Silence from a host that answers its keepalives is a quiet job, not a lost host."""
    t = _host(ssh_project)
    try:
        res = t.run("sleep 6; echo done")
    finally:
        t.close()
    assert res.rc == 0 and res.stdout == "done\n"


def test_a_quiet_host_is_not_given_up_with_keepalive_count_1(ssh_project):
    """With one probe allowed unanswered, the old watch gave up once the host was silent
    for keepalive x 1 seconds: a check that woke a moment late found the last answer a
    whole interval old before its next probe went out, and a quiet command on a live host
    failed within seconds.  Now a probe goes out, and is answered, before each next check."""
    t = _host(ssh_project, keepalive_count=1)
    try:
        res = t.run("sleep 10; echo done")  # ten checks: the old watch lost the race in one of them
    finally:
        t.close()
    assert res.rc == 0 and res.stdout == "done\n"


def test_orch_logs_follow_exits_5_when_the_host_stops_answering(ssh_project):
    """The CLI end to end: `orch logs RUN JOB -f` on a running job, the host frozen."""
    ssh_project.write_host(keepalive=1, keepalive_count=2)
    run_id = ssh_project.orch(
        "run", "smoke", "--host", "testhost", "--set", "train.steps=100000", check=True
    ).stdout.strip()
    ssh_project.wait_state(run_id, states=("running",))
    sshd = ssh_project.sshd
    before = _connections(sshd)
    follow = ssh_project.popen("logs", run_id, "class-0", "-f")
    timing.wait_for(lambda: len(_connections(sshd) - before) == 1, 60, "the follow's connection")
    time.sleep(2.0)
    frozen = Frozen(sshd, before)
    try:
        out, err = follow.communicate(timeout=timing.scaled(60))
    finally:
        frozen.thaw()
        if follow.poll() is None:
            follow.kill()
    assert follow.returncode == ExitCode.UNREACHABLE, err
    assert "lost the SSH connection to" in err and "no answer to 2 keepalives" in err
    ssh_project.cancel(run_id)
