"""Room on this machine for a run's results: the memory to check and evaluate score files
of a given size, and sizes as people say them.  Standard library only (a fetch asks before
it pulls anything).

A host decides how big a valid score file is (its manifest declares the size, and a fetch
takes what the disk has room for), so before a file is read its size is held against the
memory this machine can give: a run too big for it is one message, not a laptop that
swaps until the kernel kills something.
"""

from __future__ import annotations

import os
from typing import Optional

# bench/bench_eval_memory.py (docs/BENCHMARKS-controller.md, "Evaluation memory"): reading
# and merging takes up to ~1.9x the score files' bytes, a whole evaluation ~2.3x.
PER_BYTE = 2.5
RESERVE = 256 << 20  # left to everything else on the machine


def size_words(n: int) -> str:
    """N bytes for a person: 12.3 MB, 4.0 GB, 5.0 PB (powers of 1024)."""
    value = float(n)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1024:
            return f"{n} bytes" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:,.1f} PB"


def available_memory() -> Optional[int]:
    """Bytes this machine can give a process without swapping: Linux's MemAvailable, else
    (macOS) its physical memory; None when neither can be read."""
    try:
        with open("/proc/meminfo", "rb") as fh:
            for line in fh:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_shortfall(score_bytes: int) -> Optional[str]:
    """Why score files of SCORE_BYTES in all cannot be evaluated here, or None when they can."""
    need = int(score_bytes * PER_BYTE)
    have = available_memory()
    if have is None or need + RESERVE <= have:
        return None
    return (
        f"evaluating {size_words(score_bytes)} of score files takes about {size_words(need)} of memory, "
        f"and this machine has {size_words(have)} available"
    )
