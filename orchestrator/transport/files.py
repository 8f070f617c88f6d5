"""Move files between the laptop and a host: rsync over the verified SSH connection (see
rsync_bridge.py), SFTP when rsync is missing on either side, plain copies for `local`."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from orchestrator.transport import diskspace, shell
from orchestrator.errors import ExitCode, OrchError
from orchestrator.transport.base import Transport


def local_rsync() -> bool:
    return shutil.which("rsync") is not None


def remote_has(transport: Transport, tool: str) -> bool:
    return transport.run(shell.join(["sh", "-c", 'command -v "$1" >/dev/null 2>&1', "sh", tool]),
                         check=False).rc == 0


def use_rsync(transport: Transport, host_has_rsync: Optional[bool] = None) -> bool:
    """rsync when both sides have it; otherwise warn once and fall back to SFTP.
    ``host_has_rsync``: already known (from hostops.prepare), sparing a round trip."""
    if transport.host.is_local:
        return False
    ok_here = local_rsync()
    ok_there = remote_has(transport, "rsync") if host_has_rsync is None else host_has_rsync
    if not (ok_here and ok_there):
        side = "this machine" if not ok_here else transport.host.name
        print(f"warning: rsync is missing on {side}; falling back to SFTP (slower, no delta transfer)",
              file=sys.stderr)
    return ok_here and ok_there


IO_ERRORS = (11, 12, 23)  # rsync: file I/O error, protocol stream error, partial transfer


def run_rsync(transport: Transport, argv: List[str], *, push: bool, local_dir: Optional[Path] = None,
              stdin: str = "") -> subprocess.CompletedProcess:
    """Run rsync (``push``: to the host).  A failure keeps rsync's own words, and a full
    disk says whose disk and how much is left."""
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        err = proc.stderr.strip()
        # rsync itself sometimes loses its receiver's last words when that process dies
        # mid-transfer (exit 11 and an empty stderr: seen with plain OpenSSH as the remote
        # shell too), so a full disk is also recognised by the host's free space.
        if diskspace.says_no_space(err) or (push and proc.returncode in IO_ERRORS and diskspace.host_is_full(transport)):
            why = _reason(err) if err else f"rsync exit {proc.returncode}, its own message lost"
            if push:
                raise diskspace.host_no_space(transport, why)
            raise diskspace.local_no_space(local_dir or Path.cwd(), why)
        raise OrchError(f"rsync failed (exit {proc.returncode}): {err[-800:] or 'it printed no reason'}", ExitCode.REMOTE)
    return proc


def _reason(err: str) -> str:
    """rsync's line that says why (it ends with the summary "rsync error: ... (code N)")."""
    lines = [l for l in err.splitlines() if l.strip()]
    return next((l for l in lines if diskspace.says_no_space(l)), lines[-1] if lines else "")


def rsync_file(transport: Transport, local_path: Path, remote_path: str) -> None:
    """One file to the host over rsync (--partial: a big data file resumes after a drop)."""
    run_rsync(transport, ["rsync", "-a", "--partial", "-e", shell.join(transport.rsync_rsh()), str(local_path),
                           transport.rsync_target(remote_path)], push=True)


def host_mode(path: Path) -> int:
    """The mode a pushed file gets on the host: 0755 if it is executable here, else 0644
    (the two modes git records), whatever the local umask or a chmod made of it."""
    return 0o755 if os.stat(path).st_mode & 0o111 else 0o644


def push_files(transport: Transport, root: Path, files: Sequence[str], dest_dir: str, rsync: bool) -> int:
    """Copy root/<f> for f in files to dest_dir/<f> on the host; return files sent.
    Files arrive 0644 or 0755 (see host_mode), folders 0755."""
    if transport.host.is_local:
        dest = Path(dest_dir)
        for rel in files:
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / rel, target)
            os.chmod(target, host_mode(root / rel))
        return len(files)
    if rsync:
        # u=rwX,go=rX: X keeps an execute bit only where there was one (and on folders).
        argv = ["rsync", "-a", "--chmod=u=rwX,go=rX", "--out-format=%n", "--files-from=-", "--from0",
                "-e", shell.join(transport.rsync_rsh()), f"{root}/", transport.rsync_target(dest_dir + "/")]
        out = run_rsync(transport, argv, push=True, stdin="\0".join(files)).stdout
        return sum(1 for line in out.splitlines() if line and not line.endswith("/"))
    dirs = sorted({str(Path(dest_dir, rel).parent) for rel in files})
    transport.run(shell.join(["mkdir", "-p", "--", *dirs]))
    for rel in files:
        local = root / rel

        def write(sftp, tmp, local=local):
            sftp.put(str(local), tmp)
            sftp.chmod(tmp, host_mode(local))

        transport.sftp_write(f"{dest_dir}/{rel}", local.stat().st_size, write, mkdirs=False)
    return len(files)
