"""Move files between the laptop and a host: rsync over the verified SSH connection (see
rsync_bridge.py), SFTP when rsync is missing on either side, plain copies for `local`."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from . import shell
from .errors import ExitCode, OrchError
from .transport import Transport


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


def _rsync(argv: List[str], stdin: str = "") -> str:
    proc = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if proc.returncode != 0:
        err = proc.stderr.strip()
        raise OrchError(f"rsync failed (exit {proc.returncode}): {err[-800:]}", ExitCode.REMOTE)
    return proc.stdout


def rsync_file(transport: Transport, local_path: Path, remote_path: str) -> None:
    """One file to the host over rsync (--partial: a big data file resumes after a drop)."""
    _rsync(["rsync", "-a", "--partial", "-e", shell.join(transport.rsync_rsh()), str(local_path),
            transport.rsync_target(remote_path)])


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
        out = _rsync(argv, stdin="\0".join(files))
        return sum(1 for line in out.splitlines() if line and not line.endswith("/"))
    dirs = sorted({str(Path(dest_dir, rel).parent) for rel in files})
    transport.run(shell.join(["mkdir", "-p", "--", *dirs]))
    sftp = transport._sftp_client()  # noqa: SLF001 - same module family, one connection
    for rel in files:
        sftp.put(str(root / rel), f"{dest_dir}/{rel}")
        sftp.chmod(f"{dest_dir}/{rel}", host_mode(root / rel))
    return len(files)


def pull_dir(transport: Transport, remote_dir: str, local_dir: Path, names: Sequence[str], rsync: bool) -> None:
    """Copy remote_dir/*/<name> for the given file names into local_dir (resumable)."""
    local_dir.mkdir(parents=True, exist_ok=True)
    if transport.host.is_local:
        src = Path(remote_dir)
        for job in sorted(p for p in src.iterdir() if p.is_dir()):
            for name in names:
                if (job / name).is_file():
                    (local_dir / job.name).mkdir(parents=True, exist_ok=True)
                    shutil.copy2(job / name, local_dir / job.name / name)
        return
    if rsync:
        filters = ["--include=*/"] + [f"--include={n}" for n in names] + ["--exclude=*"]
        # --partial keeps half-sent files so an interrupted fetch resumes where it stopped;
        # --checksum re-sends a local copy that was damaged without changing size or mtime.
        argv = ["rsync", "-a", "--partial", "--checksum", "--prune-empty-dirs", *filters,
                "-e", shell.join(transport.rsync_rsh()), transport.rsync_target(remote_dir + "/"), f"{local_dir}/"]
        _rsync(argv)
        return
    listing = transport.run(shell.join(["find", remote_dir, "-mindepth", "2", "-maxdepth", "2", "-type", "f"])).stdout
    wanted = set(names)
    for line in listing.splitlines():
        job, name = Path(line).parent.name, Path(line).name
        if name in wanted:
            transport.get_file(line, local_dir / job / name)
