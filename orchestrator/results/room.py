"""Room on this machine for a run's results: the memory to check and evaluate its score
files, and sizes as people say them.  Standard library only (a fetch asks before it pulls
anything).

A host decides how big a valid score file is (its manifest declares the size, and a fetch
takes what the disk has room for), and how much memory a byte of it takes once read (a
draw written as ``1,`` is 2 bytes of text and 8 of float, twice: the job's column and the
run's table).  So memory is held against what this machine has available twice:

- before anything is read or fetched, by the files' declared size: no valid score file
  takes less than MIN_PER_BYTE of memory a byte of it, so a run whose files alone would
  not fit is refused at once;
- while they are read, by what the rows read so far take as columns (``MemoryBudget``),
  so content that takes more than its bytes suggest is stopped before it fits no more.

A run too big for the machine is one message, not a laptop that swaps until the kernel
kills something.
"""

from __future__ import annotations

import os
from typing import Optional

from orchestrator.errors import ExitCode, OrchError

# bench/bench_eval_memory.py (docs/BENCHMARKS-controller.md, "Evaluation memory"): a score
# file takes 1.9x its bytes to read and merge with 128 draws a row, 3.4x with none; a draw
# written with all 17 digits takes the least, ~0.75x.
MIN_PER_BYTE = 0.5
RESERVE = 256 << 20  # left to everything else on the machine (and to a chunk's row dicts)


def size_words(n: int) -> str:
    """N bytes for a person: 12.3 MB, 4.0 GB, 5.0 PB (powers of 1024)."""
    value = float(n)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1024:
            return f"{n} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} PB"


def available_memory() -> Optional[int]:
    """Bytes this machine can give a process without swapping: Linux's MemAvailable, or
    less when this process's cgroup (a container, a login node's slice) has a memory limit
    closer than that; (macOS) its physical memory; None when none of these can be read."""
    have = _meminfo_available()
    room = cgroup_room()
    if room is not None:
        have = room if have is None else min(have, room)
    if have is not None:
        return have
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _meminfo_available() -> Optional[int]:
    try:
        with open("/proc/meminfo", "rb") as fh:
            for line in fh:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _read_int(path: str) -> Optional[int]:
    try:
        with open(path) as fh:
            return int(fh.read().strip())
    except (OSError, ValueError):  # missing, or "max" (no limit)
        return None


def cgroup_room(root: str = "/sys/fs/cgroup", proc: str = "/proc/self/cgroup") -> Optional[int]:
    """The least room (limit less usage) over this process's cgroup and the ones above it,
    cgroup v2 (memory.max, memory.current) or v1's memory controller (memory.limit_in_bytes,
    memory.usage_in_bytes); None without a limit.  A kernel kills a cgroup's process at its
    limit whatever MemAvailable says."""
    try:
        with open(proc) as fh:
            lines = fh.read().splitlines()
    except OSError:
        return None
    places = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            places.append((root, parts[2], "memory.max", "memory.current"))
        elif "memory" in parts[1].split(","):
            places.append((os.path.join(root, "memory"), parts[2], "memory.limit_in_bytes", "memory.usage_in_bytes"))
    rooms = []
    for base, path, limit_name, usage_name in places:
        folder = path.strip("/")
        while True:
            here = os.path.join(base, folder) if folder else base
            limit = _read_int(os.path.join(here, limit_name))
            if limit is not None and limit < 1 << 60:  # v1 writes "no limit" as ~2**63
                usage = _read_int(os.path.join(here, usage_name)) or 0
                rooms.append(max(0, limit - usage))
            if not folder:
                break
            folder = os.path.dirname(folder)
    return min(rooms) if rooms else None


def memory_shortfall(score_bytes: int) -> Optional[str]:
    """Why score files of SCORE_BYTES in all cannot be evaluated here, or None when they may."""
    need = int(score_bytes * MIN_PER_BYTE)
    have = available_memory()
    if have is None or need + RESERVE <= have:
        return None
    return (
        f"evaluating {size_words(score_bytes)} of score files takes at least {size_words(need)} of memory, "
        f"and this machine has {size_words(have)} available"
    )


class MemoryBudget:
    """What the score columns read so far may take: the join then needs as much again for
    the run's table, so they may take half of what is available less RESERVE."""

    def __init__(self, available: Optional[int] = None):
        self.available = available_memory() if available is None else available
        self.held = 0

    def charge(self, nbytes: int, where: str) -> None:
        """Count NBYTES more, read at WHERE; refused once they do not fit."""
        self.held += nbytes
        if self.available is not None and 2 * self.held + RESERVE > self.available:
            raise OrchError(
                f"the run's results are too big for this machine: its score files take more memory than the "
                f"{size_words(self.available)} available ({size_words(self.held)} held at {where}, and as much "
                "again to join them)",
                ExitCode.RUN_STATE,
                hint="evaluate the run on a machine with more memory (copy its runs/ folder there)",
            )
