"""A host that never finishes a command, through the real sshd: a timeout is a deadline.

Two hostile helpers: one trickles a byte now and then forever (never silent for as long as
a read may wait), one prints a reply, closes its output and never exits.  The transport
is driven in this process (the limits made short: seconds, not `orch status`'s 120), the
way `orch status` and `orch logs` drive it.  Each helper writes its pid first, and the
test kills it by that pid: closing the channel leaves a process that does not write.
"""

from __future__ import annotations

import getpass
import io
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import testprocs
import timing

from orchestrator import backends
from orchestrator.config.hosts import HostConfig
from orchestrator.errors import ExitCode, OrchError
from orchestrator.runs import hostops
from orchestrator.transport import shell
from orchestrator.transport.ssh import SSHTransport

pytestmark = pytest.mark.integration

LIVES_S = 300  # how long a helper would run if nobody stopped it

HELPERS = {
    # `{` and then a space every 0.3 s: always inside any idle limit, never done.
    "trickle": "sys.stdout.write('{'); sys.stdout.flush()\n"
    "while True:\n"
    "    time.sleep(0.3); sys.stdout.write(' '); sys.stdout.flush()\n",
    # A valid reply, the output closed, and no exit.
    "closed": "print(json.dumps({'exists': False, 'jobs': []}), flush=True)\n"
    "os.close(1); os.close(2)\n"
    f"time.sleep({LIVES_S})\n",
}


class Helpers:
    """Hostile helpers written into the host's workdir; each one's pid, killed after."""

    def __init__(self, root: Path):
        self.root = root
        self.pid_files = []

    def script(self, kind: str, path: Path) -> Path:
        pid_file = path.parent / f"{path.name}.pid"
        self.pid_files.append(pid_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f"import json, os, sys, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\n" + HELPERS[kind]
        )
        return path

    def command(self, kind: str) -> str:
        """Shell text that runs the helper in the login shell's place (exec: when it closes
        its output, the channel's output ends)."""
        path = self.script(kind, self.root / f"{kind}-{len(self.pid_files)}.py")
        return "exec " + shell.join([sys.executable, str(path)])

    def pids(self):
        return [int(f.read_text()) for f in self.pid_files if f.exists() and f.read_text()]

    def kill(self) -> None:
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        timing.wait_for(
            lambda: not any(testprocs.alive(pid) for pid in self.pids()), 30, "the host helpers to die", 0.1
        )


@pytest.fixture
def host(ssh_project):
    helpers = Helpers(ssh_project.remote_root / "hostile")
    transports = []

    def connect(io_timeout: float = 30) -> SSHTransport:
        s = ssh_project.sshd
        config = HostConfig(
            name="testhost",
            hostname="127.0.0.1",
            port=s.port,
            user=getpass.getuser(),
            identity_file=str(s.client_key),
            known_hosts_file=str(s.known_hosts),
            workdir=str(ssh_project.remote_root),
            python=sys.executable,
            connect_timeout=timing.scaled(10),
            io_timeout=io_timeout,
        )
        transports.append(SSHTransport(config))
        return transports[-1]

    try:
        yield connect, helpers
    finally:
        for t in transports:
            t.close()
        helpers.kill()


def _fails(call, *args, **kw):
    started = time.monotonic()
    with pytest.raises(OrchError) as caught:
        call(*args, **kw)
    return caught.value, time.monotonic() - started


def _in_time(took: float, limit: float) -> None:
    """Left at the limit: not before it, and long before the helper would have ended."""
    assert limit * 0.9 <= took < limit + timing.scaled(10), took
    assert took < LIVES_S / 4, took


@pytest.mark.parametrize("kind", sorted(HELPERS))
def test_orch_status_gives_up_on_a_helper_that_never_finishes(host, monkeypatch, kind):
    """`orch status`'s round trip (hostops.remote_status) against a host helper that
    trickles or hangs after its reply: left at STATUS_TIMEOUT_S, however the bytes come."""
    connect, helpers = host
    t = connect(io_timeout=30)
    workdir = t.host.workdir
    helpers.script(kind, Path(hostops.code_dir(workdir, "evil")) / "remote" / "hostctl.py")
    monkeypatch.setattr(hostops, "STATUS_TIMEOUT_S", 3)
    err, took = _fails(hostops.remote_status, t, workdir, "evil", "r1", backends.get("tmux"))
    _in_time(took, 3)
    assert err.code == ExitCode.REMOTE
    assert err.message.startswith("command timed out after 3 s on testhost: "), err.message
    assert "remote.hostctl status" in err.message and "\n" not in err.message
    assert "the host did not finish in 3 s; check it with `orch hosts check testhost`" in err.hint
    assert helpers.pids() and all(testprocs.alive(pid) for pid in helpers.pids())  # it ran, and runs on
    assert t.run("echo still here").stdout == "still here\n"  # the connection is still good


def test_a_trickle_is_left_at_the_timeout_and_not_the_idle_limit(host):
    connect, helpers = host
    t = connect(io_timeout=2)  # the helper writes every 0.3 s: never silent for that long
    err, took = _fails(t.run, helpers.command("trickle"), timeout=4)
    _in_time(took, 4)
    assert err.code == ExitCode.REMOTE and "timed out after 4 s on testhost" in err.message


def test_a_quick_command_that_trickles_is_left_at_the_quick_limit(host, monkeypatch):
    """A command given no timeout (mkdir, `tail`) is idle-limited, and has an overall one
    too: a byte every 0.3 s never trips io_timeout, and must not hold orch forever."""
    from orchestrator.transport import ssh

    connect, helpers = host
    t = connect(io_timeout=2)
    monkeypatch.setattr(ssh, "QUICK_LIMIT_S", 4.0)
    err, took = _fails(t.run, helpers.command("trickle"))
    _in_time(took, 4)
    assert err.code == ExitCode.REMOTE and "timed out after 4 s on testhost" in err.message


def test_a_quick_command_that_closes_its_output_and_hangs_is_left_after_io_timeout(host):
    connect, helpers = host
    t = connect(io_timeout=2)
    err, took = _fails(t.run, helpers.command("closed"))
    _in_time(took, 2)
    assert err.code == ExitCode.REMOTE
    assert "testhost ended the output but did not exit within 2 s, so orch stopped waiting for: exec " in err.message
    assert "orch hosts check testhost" in err.hint and "io_timeout" in err.hint


def test_a_followed_stream_that_closes_and_hangs_is_left_after_io_timeout(host):
    """`orch logs -f` may wait on quiet logs for hours, but once the output has ended its
    exit status is due within io_timeout."""
    connect, helpers = host
    t = connect(io_timeout=2)
    shown = io.StringIO()
    err, took = _fails(t.stream, helpers.command("closed"), out=shown)
    _in_time(took, 2)
    assert '"exists": false' in shown.getvalue()  # what it printed was shown
    assert err.code == ExitCode.REMOTE and "ended the output but did not exit within 2 s" in err.message
