"""One message for a full disk, whichever path hit it: "no space left on the host's
<workdir> (N MB free)".

rsync, SFTP, a shell command and the host helper each report ENOSPC their own way (an
rsync line ending in "(28)", SFTP's bare "Failure", a Python OSError); the user needs to
know it is the disk, which disk, and how much is left.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

from orchestrator.errors import ExitCode, OrchError
from orchestrator.transport import shell

# ENOSPC as rsync, coreutils, Python and the kernel's quota code word it.
MARKERS = ("No space left on device", "[Errno 28]", "ENOSPC", "Disk quota exceeded", "EDQUOT")
HINT = (
    "free space there (old runs live in <workdir>/runs, code snapshots in <workdir>/code, staged data in "
    "<workdir>/data), then run the command again"
)


def says_no_space(text: str) -> bool:
    return any(m in (text or "") for m in MARKERS)


def host_free_mb(transport, path: Optional[str] = None) -> Optional[int]:
    """Free MB (for the login user) on the filesystem of PATH (default: the workdir)."""
    res = transport.run(
        shell.join(["df", "-Pk", "--", path or transport.workdir]), check=False, timeout=30, max_output=1 << 16
    )
    try:
        return int(res.stdout.strip().splitlines()[-1].split()[3]) // 1024
    except (IndexError, ValueError):
        return None


def host_no_space(transport, detail: str = "") -> OrchError:
    """The OrchError for a full disk on the host (asks the host how much is left)."""
    try:
        mb = host_free_mb(transport)
    except OrchError:  # the connection is gone too: say what we know
        mb = None
    free = f"{mb} MB free" if mb is not None else "free space unknown"
    detail = detail.strip().splitlines()[-1][:300] if detail.strip() else ""
    return OrchError(
        f"no space left on the host's {transport.host.workdir} ({free})" + (f": {detail}" if detail else ""),
        ExitCode.REMOTE,
        hint=HINT.replace("<workdir>", transport.host.workdir),
    )


def host_is_full(transport, needed_bytes: int = 0) -> bool:
    """For errors that do not say why (SFTP's "Failure"): is the host's disk the reason?"""
    try:
        mb = host_free_mb(transport)
    except OrchError:
        return False
    return mb is not None and mb * (1 << 20) <= needed_bytes + (1 << 20)


def local_no_space(folder: Path, detail: str = "") -> OrchError:
    try:
        mb = shutil.disk_usage(folder).free >> 20
        free = f"{mb} MB free"
    except OSError:
        free = "free space unknown"
    return OrchError(
        f"no space left on this machine's {folder} ({free})" + (f": {detail.strip()[:300]}" if detail.strip() else ""),
        ExitCode.RUN_STATE,
        hint="free space there, then run the command again",
    )
