"""How jobs run on a host: the host side of orch's one seam for it (docs/ARCHITECTURE.md).

``remote.hostctl`` does everything that is the same for every way of running a job - the
job folder, status.json, the wrapper's lock, the cancel marker - and asks a backend only
what differs: start a job detached from the SSH connection, say which jobs it still holds,
stop one.  Standard library only.
"""

from __future__ import annotations

from typing import Optional

from remote.backends.base import Backend, BackendError, Refused

NAMES = ("tmux", "slurm")


def get(name: str, workdir: str, options: Optional[dict] = None) -> Backend:
    if name == "tmux":
        from remote.backends.tmux import TmuxBackend

        return TmuxBackend(workdir, options)
    if name == "slurm":
        from remote.backends.slurm import SlurmBackend

        return SlurmBackend(workdir, options)
    raise BackendError(f"unknown job backend {name!r} (known: {', '.join(NAMES)})")


__all__ = ["Backend", "BackendError", "NAMES", "Refused", "get"]
