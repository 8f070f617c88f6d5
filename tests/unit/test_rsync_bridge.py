"""rsync through orchestrator/transport/rsync_tunnel.py + rsync_bridge.py, with the SSH channel
replaced by a local process (same methods as a Paramiko channel), so the relay itself --
both directions at once, stderr, exit codes, failures -- is tested with real rsync here;
the integration tests run the same path over the real sshd."""

import os
import shutil
import subprocess
import threading

import pytest
import timing

from orchestrator.transport import shell
from orchestrator.transport.rsync_bridge import STOPPED, RsyncBridge
from orchestrator.transport.rsync_tunnel import CALL_ENV, remote_command

pytestmark = pytest.mark.skipif(shutil.which("rsync") is None, reason="needs rsync")
IDLE_S = 1.0  # the host's io_timeout


class ProcessChannel:
    """The part of paramiko.Channel the bridge uses, backed by `bash -c command`."""

    def __init__(self, command: str):
        self.proc = subprocess.Popen(
            ["bash", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self.commands = [command]
        self.status_event = threading.Event()  # set when the exit status is in, as Paramiko's
        threading.Thread(target=lambda: (self.proc.wait(), self.status_event.set()), daemon=True).start()

    def recv(self, n):
        return os.read(self.proc.stdout.fileno(), n)

    def recv_stderr(self, n):
        return os.read(self.proc.stderr.fileno(), n)

    def sendall(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def shutdown_write(self):
        self.proc.stdin.close()

    def recv_exit_status(self):
        return self.proc.wait()

    def close(self):
        if self.proc.poll() is None:  # sshd hangs up on a command whose channel closed
            self.proc.kill()


@pytest.fixture
def bridge():
    commands = []

    def open_channel(command):
        commands.append(command)
        return ProcessChannel(command)

    b = RsyncBridge(open_channel, IDLE_S)
    b.commands = commands
    yield b
    b.close()
    assert not os.path.exists(b.path)


def _rsync(bridge, *args, env=None):
    return subprocess.run(
        ["rsync", "-a", "-e", shell.join(bridge.rsh()), *args],
        capture_output=True,
        text=True,
        timeout=timing.scaled(120),
        env=env,
    )


def test_remote_command_is_joined_like_ssh_does():
    assert (
        remote_command(["-l", "me", "-p", "2222", "host", "rsync", "--server", "-logDtpre.iLsfxCIvu", ".", "/a b"])
        == "rsync --server -logDtpre.iLsfxCIvu . /a b"
    )
    assert remote_command(["host", "echo", "hi"]) == "echo hi"


def test_push_and_pull_big_files_both_ways(bridge, tmp_path):
    src, dst, back = tmp_path / "src", tmp_path / "dst dir", tmp_path / "back"
    (src / "sub").mkdir(parents=True)
    blob = os.urandom(3 * 2**20)  # bigger than any socket buffer: both directions stream at once
    (src / "sub" / "blob.bin").write_bytes(blob)
    (src / "small.txt").write_text("hello\n")
    res = _rsync(bridge, f"{src}/", f"orch:{dst}/")
    assert res.returncode == 0, res.stderr
    assert (dst / "sub" / "blob.bin").read_bytes() == blob and (dst / "small.txt").read_text() == "hello\n"
    assert bridge.commands and bridge.commands[0].startswith("rsync --server")
    # A changed byte is found and mended by the delta transfer the other way round.
    changed = bytearray(blob)
    changed[12345] ^= 0xFF
    (dst / "sub" / "blob.bin").write_bytes(bytes(changed))
    res = _rsync(bridge, "--checksum", f"orch:{dst}/", f"{back}/")
    assert res.returncode == 0, res.stderr
    assert (back / "sub" / "blob.bin").read_bytes() == bytes(changed)


def test_concurrent_transfers_share_one_bridge(bridge, tmp_path):
    results = {}

    def one(i):
        src = tmp_path / f"s{i}"
        src.mkdir()
        (src / "f").write_bytes(os.urandom(2**20))
        results[i] = (_rsync(bridge, f"{src}/", f"orch:{tmp_path / f'd{i}'}/"), src)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, (res, src) in results.items():
        assert res.returncode == 0, res.stderr
        assert (tmp_path / f"d{i}" / "f").read_bytes() == (src / "f").read_bytes()


def test_remote_failure_reaches_rsync_with_its_message(bridge, tmp_path):
    res = _rsync(bridge, f"orch:{tmp_path}/does-not-exist/", f"{tmp_path}/out/")
    assert res.returncode != 0
    assert "does-not-exist" in res.stderr and "No such file" in res.stderr


def test_channel_that_cannot_open_gives_a_clear_error(tmp_path):
    def broken(command):
        raise EOFError("connection reset by peer")

    b = RsyncBridge(broken, IDLE_S)
    try:
        (tmp_path / "f").write_text("x")
        res = _rsync(b, str(tmp_path / "f"), f"orch:{tmp_path}/g")
        assert res.returncode != 0
        assert "orch: could not open an SSH channel for rsync: connection reset by peer" in res.stderr
    finally:
        b.close()


def test_tunnel_without_its_bridge_says_so(tmp_path):
    b = RsyncBridge(ProcessChannel, IDLE_S)
    rsh = b.rsh()
    b.close()
    (tmp_path / "f").write_text("x")
    res = subprocess.run(
        ["rsync", "-a", "-e", shell.join(rsh), str(tmp_path / "f"), f"orch:{tmp_path}/g"],
        capture_output=True,
        text=True,
        timeout=timing.scaled(60),
    )
    assert res.returncode != 0 and "cannot reach the orch process that started rsync" in res.stderr


@pytest.mark.parametrize(
    "after, why",
    [
        ("exec sleep 600", "sent nothing for 2 s"),
        ("exec >&- 2>&-; exec sleep 600", "ended rsync's output but did not exit within 1 s"),
    ],
    ids=["output-open", "output-closed"],
)
def test_a_host_rsync_that_never_exits_is_left(tmp_path, after, why):
    """The host's rsync does the transfer, then lingers (its output still open, or closed):
    rsync here would wait for its remote shell for ever; the bridge stops waiting (nothing
    moved for twice the host's io_timeout, or no exit status io_timeout after the output
    ended), closes the channel and says why on rsync's stderr."""
    channels = []

    def lingering(command):
        channels.append(ProcessChannel(f"{command}; {after}"))
        return channels[-1]

    b = RsyncBridge(lingering, IDLE_S)
    try:
        (tmp_path / "f").write_text("x")
        res = _rsync(b, str(tmp_path / "f"), f"orch:{tmp_path}/g", env={**os.environ, CALL_ENV: "call-1"})
        closed = all(chan.status_event.wait(timing.scaled(10)) for chan in channels)  # the bridge closed it
    finally:
        b.close()
        for chan in channels:
            chan.close()
    assert (tmp_path / "g").read_text() == "x"  # the transfer itself was done
    assert res.returncode == 255 and f"{STOPPED} {why}" in res.stderr, res.stderr
    assert channels and closed
    # ... and records it for the call that rsync was (run_rsync asks it, never rsync's stderr).
    assert b.stopped("call-1") == why and b.stopped("call-1") is None and b.stopped("") is None


def test_a_host_that_prints_the_bridges_words_is_not_taken_for_them(tmp_path):
    """The host's side of rsync prints a 2 MB line starting as the bridge's own notice and
    fails: the message quotes the end of it, bounded and escaped, as rsync's failure, and
    does not say that orch stopped waiting."""
    from orchestrator.config.hosts import HostConfig
    from orchestrator.errors import ExitCode, OrchError
    from orchestrator.transport.rsync import run_rsync

    line = f"{STOPPED} sent nothing for 1 s" + "\x1b]0;x\x07" * 10 + "y" * (2 << 20) + " the end"
    (tmp_path / "line").write_text(line + "\n")
    b = RsyncBridge(lambda command: ProcessChannel(f"cat {shell.quote(str(tmp_path / 'line'))} >&2; exit 12"), IDLE_S)

    class Host:  # the transport run_rsync talks to: its host's name, and the bridge's verdicts
        host = HostConfig(name="testhost", workdir=str(tmp_path))

        def rsync_stopped(self, call):
            return b.stopped(call)

    argv = ["rsync", "-a", "-e", shell.join(b.rsh()), f"orch:{tmp_path}/f", str(tmp_path / "g")]
    try:
        with pytest.raises(OrchError) as caught:
            run_rsync(Host(), argv, push=False)
    finally:
        b.close()
    message = caught.value.message
    assert caught.value.code == ExitCode.REMOTE and message.startswith("rsync failed (exit 12): "), message[:300]
    assert len(message) < 2000 and "y the end" in message and "\x1b" not in message, message[-300:]
    assert "orch stopped waiting" not in message
