"""Running rsync (through rsync_tunnel/rsync_bridge on the SSH connection): its failures in
its own words, and a full disk said as whose disk and how much is left."""

from __future__ import annotations

import os
import resource
import secrets
import signal
import subprocess
from pathlib import Path
from typing import Callable, List, Optional

from orchestrator.errors import ExitCode, OrchError
from orchestrator.terminal import last_lines
from orchestrator.transport import diskspace
from orchestrator.transport.rsync_tunnel import CALL_ENV

IO_ERRORS = (11, 12, 23)  # rsync: file I/O error, protocol stream error, partial transfer
IO_TIMEOUT = 30  # rsync: no data for --timeout seconds
MAX_OUTPUT = 16 << 20  # of rsync's output (file names, skips, the host's messages) per stream


def io_seconds(host) -> int:
    return max(1, round(host.io_timeout))


def timeout_option(host) -> str:
    """rsync's own idle timeout, from the host's io_timeout: a stalled or hostile host
    cannot hold a transfer forever (rsync then exits 30)."""
    return f"--timeout={io_seconds(host)}"


def _file_size_limit(max_bytes: int) -> Callable[[], None]:
    """For the child before it runs rsync: no file it writes may grow past MAX_BYTES.  A
    write past it fails with EFBIG (SIGXFSZ ignored, so rsync reports it in its own words),
    whatever the sender sends."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        # The soft limit is the one enforced; the hard one stays (raising it is refused).
        _, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        soft = max_bytes if hard == resource.RLIM_INFINITY else min(max_bytes, hard)
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))

    return limit


def run_rsync(
    transport,
    argv: List[str],
    *,
    push: bool,
    local_dir: Optional[Path] = None,
    stdin: str = "",
    max_file_bytes: Optional[int] = None,
) -> subprocess.CompletedProcess:
    """Run rsync (``push``: to the host; ``max_file_bytes``: the most any file it writes
    here may hold).  A failure keeps rsync's own words, a full disk says whose disk and
    how much is left, and a stall (ARGV has timeout_option) how long the host was silent."""
    from orchestrator.transport.base import run_capped, stall_hint

    # The bridge (rsync_bridge.py) runs in this process: it records why it stopped waiting
    # for the host under this call's id, which the tunnel hands it from the environment.
    call = secrets.token_hex(8)
    # rsync passes on what the host's side prints (its stderr, through the tunnel): capped.
    res = run_capped(
        argv,
        stdin,
        MAX_OUTPUT,
        preexec_fn=_file_size_limit(max_file_bytes) if max_file_bytes is not None else None,
        env={**os.environ, CALL_ENV: call},
    )
    proc = subprocess.CompletedProcess(argv, res.rc, res.stdout, res.stderr)
    stopped = transport.rsync_stopped(call)
    if stopped:  # the bridge left a host command that would not end
        raise OrchError(
            f"{transport.host.name} {stopped}, so orch stopped waiting for it (rsync)",
            ExitCode.REMOTE,
            hint=stall_hint(transport.host.name),
        )
    if res.overflow:
        raise OrchError(
            f"rsync printed more than {MAX_OUTPUT >> 20} MB (what the host sends back is capped): stopped",
            ExitCode.REMOTE,
        )
    if proc.returncode != 0:
        err = proc.stderr.strip()
        # rsync itself sometimes loses its receiver's last words when that process dies
        # mid-transfer (exit 11 and an empty stderr: seen with plain OpenSSH as the remote
        # shell too), so a full disk is also recognised by the host's free space.
        if diskspace.says_no_space(err) or (
            push and proc.returncode in IO_ERRORS and diskspace.host_is_full(transport)
        ):
            why = _reason(err) if err else f"rsync exit {proc.returncode}, its own message lost"
            if push:
                raise diskspace.host_no_space(transport, why)
            raise diskspace.local_no_space(local_dir or Path.cwd(), why)
        if proc.returncode == IO_TIMEOUT:
            raise OrchError(
                f"{transport.host.name} sent nothing for {io_seconds(transport.host)} s: "
                f"rsync stopped ({_reason(err) or 'exit 30'})",
                ExitCode.REMOTE,
                hint=stall_hint(transport.host.name),
            )
        raise OrchError(
            f"rsync failed (exit {proc.returncode}): {' | '.join(last_lines(err, 3)) or 'it printed no reason'}",
            ExitCode.REMOTE,
        )
    return proc


def _reason(err: str) -> str:
    """rsync's line that says why (it ends with the summary "rsync error: ... (code N)"), from
    the end of ERR, bounded and escaped (terminal.last_lines): the host's side writes to it."""
    lines = last_lines(err, 12, 4000)
    return next((line for line in lines if diskspace.says_no_space(line)), lines[-1] if lines else "")
