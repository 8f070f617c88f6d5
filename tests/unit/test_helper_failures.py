"""How a failed host helper command reads: a missing code snapshot is told apart, and a
reply too big to be one is refused by its size."""

import subprocess

import pytest

from orchestrator import backends
from orchestrator.config.hosts import HostConfig
from orchestrator.contract import hostdocs
from orchestrator.errors import ExitCode, OrchError
from orchestrator.runs.hostops import helper_failed, hostctl, remote_status, reply_text
from orchestrator.transport.base import LocalTransport


def test_a_missing_snapshot_is_its_own_error_and_other_failures_stay_remote(tmp_path):
    # The real shell text: no `cd:` noise, the mark and the path on stderr, exit 66 - and
    # the rest of a chained command line still runs (no `exit` of the whole shell).
    gone = tmp_path / "code" / "abc"
    line = hostctl("python3", str(gone), "status") + "; echo after"
    res = subprocess.run(["sh", "-c", line], capture_output=True, text=True)
    assert res.stdout == "after\n" and "cd:" not in res.stderr
    err = helper_failed("nigel", 66, res.stderr)
    assert err.code == ExitCode.RUN_STATE and f"the run's code snapshot is not on nigel ({gone})" in err.message
    assert "--resume" in err.hint
    rc = subprocess.run(["sh", "-c", hostctl("python3", str(gone), "status")]).returncode
    assert rc == 66
    other = helper_failed("nigel", 1, "Traceback\nValueError: x\n")
    assert (
        other.code == ExitCode.REMOTE
        and other.message == "host helper failed on nigel (exit 1): Traceback | ValueError: x"
    )
    assert helper_failed("nigel", 66, "no mark here").code == ExitCode.REMOTE
    assert "(?)" in helper_failed("nigel", 66, "orch-no-snapshot").message  # a garbled host: no traceback


class _Chatty(LocalTransport):
    """The `local` transport (bash, the real output cap) whose host helper prints BYTES."""

    def __init__(self, host, size):
        super().__init__(host)
        self.size = size
        self.max_output = []

    def _exec(self, command, timeout, stdin, max_output):
        self.max_output.append(max_output)
        # exec: the one process the cap stops (a pipeline's writers would outlive the kill of bash)
        return super()._exec(f"exec head -c {self.size} /dev/zero", timeout, stdin, max_output)


@pytest.mark.parametrize("over", [1, 1 << 20])
def test_a_helper_reply_over_the_cap_is_refused_by_its_size(tmp_path, over):
    """What a host helper prints is read up to MAX_REPLY_BYTES (16 MB), not the 64 MB any
    command may print: past it the command is stopped and the reply named too big."""
    host = HostConfig(name="nigel", workdir=str(tmp_path))
    transport = _Chatty(host, hostdocs.MAX_REPLY_BYTES + over)
    with pytest.raises(OrchError) as err:
        remote_status(transport, str(tmp_path), "abc", "r1", backends.get("tmux"))
    assert err.value.code == ExitCode.REMOTE
    assert err.value.message == "host helper on nigel printed more than 16 MB: not a reply orch reads"
    assert "code snapshot" in err.value.hint
    assert transport.max_output == [hostdocs.MAX_REPLY_BYTES] and hostdocs.MAX_REPLY_BYTES == 16 << 20


def test_a_helper_reply_at_the_cap_is_read(tmp_path):
    transport = _Chatty(HostConfig(name="nigel", workdir=str(tmp_path)), hostdocs.MAX_REPLY_BYTES)
    assert len(reply_text(transport, "hostctl status")) == hostdocs.MAX_REPLY_BYTES
