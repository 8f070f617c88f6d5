"""How a transport moves files, chosen once per transport (Transport.copier):

- ``LocalCopier``: host `local`, plain copies;
- ``RsyncCopier``: rsync over the verified SSH connection (see rsync_bridge.py), when
  both sides have rsync - delta transfers, resumable uploads;
- ``SftpCopier``: SFTP over the same connection when rsync is missing on either side, or
  this machine's is one orch cannot use (older than 3.1, or openrsync: macOS's own).

Everything above the transport calls Transport.push_tree / push_file / pull and never
asks which of these it got.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from orchestrator.transport import shell
from orchestrator.transport.rsync import run_rsync, timeout_option

# The oldest rsync whose options orch uses (a pull's --info=skip1 came in 3.1.0).  macOS
# ships rsync 2.6.9 (to 15.3) or openrsync (15.4 on), which have neither that nor
# --files-from: with them every transfer failed on an unknown option.
RSYNC_FLOOR = (3, 1, 0)


@functools.lru_cache(maxsize=None)
def local_rsync_problem() -> Optional[str]:
    """Why this machine's rsync will not do (missing, openrsync, older than RSYNC_FLOOR);
    None when it will.  Asked once per process (`rsync --version`: a few ms)."""
    path = shutil.which("rsync")
    if path is None:
        return "rsync is missing on this machine"
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, errors="replace", timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return f"this machine's rsync ({path}) did not say its version ({exc})"
    first = out.strip().splitlines()[0].strip() if out.strip() else "no version"
    m = re.match(r"rsync\s+version\s+v?(\d+)\.(\d+)\.(\d+)", first)
    if m is None:
        return f"this machine's rsync ({path}) is not rsync 3.1 or newer: {first[:80]!r}"
    version = tuple(int(x) for x in m.groups())
    if version < RSYNC_FLOOR:
        return f"this machine's rsync ({path}) is {'.'.join(map(str, version))}; orch needs 3.1 or newer"
    return None


def remote_has(transport, tool: str) -> bool:
    return transport.run(shell.join(["sh", "-c", 'command -v "$1" >/dev/null 2>&1', "sh", tool]), check=False).rc == 0


def host_mode(path: Path) -> int:
    """The mode a pushed file gets on the host: 0755 if it is executable here, else 0644
    (the two modes git records), whatever the local umask or a chmod made of it."""
    return 0o755 if os.stat(path).st_mode & 0o111 else 0o644


class Copier:
    """Moves files for one transport.  Destination folders of a push must exist (the
    launch probe makes them, in the round trip it needs anyway)."""

    name = ""

    def __init__(self, transport):
        self.transport = transport

    def push_tree(self, root: Path, files: Sequence[str], dest_dir: str) -> int:
        """root/<f> -> dest_dir/<f> for f in FILES; returns files sent.  Files arrive 0644
        or 0755 (host_mode), folders 0755."""
        raise NotImplementedError

    def push_file(self, local_path: Path, remote_path: str) -> None:
        """One file, which appears at REMOTE_PATH whole or not at all."""
        raise NotImplementedError

    def pull(self, remote_dir: str, stage: Path, seed: Path, spec):
        """Folders of REMOTE_DIR into STAGE as orchestrator/transport/pull.py says."""
        raise NotImplementedError


class LocalCopier(Copier):
    name = "copy"

    def push_tree(self, root, files, dest_dir):
        dest = Path(dest_dir)
        for rel in files:
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(root / rel, target)
            os.chmod(target, host_mode(root / rel))
        return len(files)

    def push_file(self, local_path, remote_path):
        self.transport.put_file(local_path, remote_path)

    def pull(self, remote_dir, stage, seed, spec):
        from orchestrator.transport.hostfiles import LocalSource
        from orchestrator.transport.pull import pull_from_source

        return pull_from_source(LocalSource(self.transport.local_path(remote_dir)), stage, spec)


class RsyncCopier(Copier):
    name = "rsync"

    def _link(self) -> List[str]:
        """How rsync reaches the host: the SSH connection, and the host's idle timeout."""
        return [timeout_option(self.transport.host), "-e", shell.join(self.transport.rsync_rsh())]

    def push_tree(self, root, files, dest_dir):
        # u=rwX,go=rX: X keeps an execute bit only where there was one (and on folders).
        argv = [
            "rsync",
            "-a",
            "--chmod=u=rwX,go=rX",
            "--out-format=%n",
            "--files-from=-",
            "--from0",
            *self._link(),
            f"{root}/",
            self.transport.rsync_target(dest_dir + "/"),
        ]
        out = run_rsync(self.transport, argv, push=True, stdin="\0".join(files)).stdout
        return sum(1 for line in out.splitlines() if line and not line.endswith("/"))

    def push_file(self, local_path, remote_path):
        # rsync writes a temp name of its own in the destination folder and renames it in
        # when complete, so a half upload never looks present and two launches sending the
        # same file do not meet.  --partial-dir keeps what an interrupted upload sent, and
        # the next one resumes from it (rsync checks the whole file's checksum at the end).
        run_rsync(
            self.transport,
            [
                "rsync",
                "-a",
                "--partial-dir=.rsync-partial",
                *self._link(),
                str(local_path),
                self.transport.rsync_target(remote_path),
            ],
            push=True,
        )

    def pull(self, remote_dir, stage, seed, spec):
        from orchestrator.transport.pull import pull_rsync

        return pull_rsync(self.transport, remote_dir, stage, seed, spec)


class SftpCopier(Copier):
    name = "sftp"

    def push_tree(self, root, files, dest_dir):
        transport = self.transport
        dirs = sorted({str(Path(dest_dir, rel).parent) for rel in files})
        if dirs:
            transport.run(shell.join(["mkdir", "-p", "--", *dirs]))
        for rel in files:
            local = root / rel

            def write(sftp, tmp, local=local):
                sftp.put(str(local), tmp)
                sftp.chmod(tmp, host_mode(local))

            transport.sftp_write(f"{dest_dir}/{rel}", local.stat().st_size, write, mkdirs=False)
        return len(files)

    def push_file(self, local_path, remote_path):
        size = Path(local_path).stat().st_size
        self.transport.sftp_write(remote_path, size, lambda sftp, tmp: sftp.put(str(local_path), tmp), mkdirs=False)

    def pull(self, remote_dir, stage, seed, spec):
        from orchestrator.transport.hostfiles import SftpSource
        from orchestrator.transport.pull import pull_from_source

        return pull_from_source(SftpSource(self.transport, remote_dir), stage, spec)


def pick_remote(transport, host_has_rsync: Optional[bool]) -> Copier:
    """rsync when both sides have it; otherwise say so once and use SFTP.
    ``host_has_rsync``: None when not known yet (then one command asks the host)."""
    here = local_rsync_problem()
    ok_there = here is None and (remote_has(transport, "rsync") if host_has_rsync is None else host_has_rsync)
    if ok_there:
        return RsyncCopier(transport)
    why = here or f"rsync is missing on {transport.host.name}"
    fix = " (install rsync 3.1 or newer here, e.g. `brew install rsync`, for delta transfers)" if here else ""
    print(f"warning: {why}; falling back to SFTP (slower, no delta transfer){fix}", file=sys.stderr)
    return SftpCopier(transport)
