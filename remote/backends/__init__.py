"""How jobs run on a host: the host side of orch's one seam for it (docs/ARCHITECTURE.md).

``remote.hostctl`` does everything that is the same for every way of running a job - the
job folder, status.json, the wrapper's lock, the cancel marker - and asks a backend only
what differs: start a job detached from the SSH connection, say which jobs it still holds,
stop one.  Standard library only.
"""

from __future__ import annotations

from typing import Optional, Tuple, Type

from remote.backends.base import Backend, BackendError, Refused, Unanswered

NAMES = ("tmux", "slurm")
# The backend whose jobs' wrapper runs --requeueable (its JobBackend's wrapper_args say so):
# the scheduler may stop such a job and run it again.  A new option to the wrapper would stop
# a resumed run's older wrapper (its snapshot's) from starting, so the wrapper is not told.
REQUEUEING = "slurm"


def _class(name: str) -> Type[Backend]:
    if name == "tmux":
        from remote.backends.tmux import TmuxBackend

        return TmuxBackend
    if name == "slurm":
        from remote.backends.slurm import SlurmBackend

        return SlurmBackend
    raise BackendError(f"unknown job backend {name!r} (known: {', '.join(NAMES)})")


def get(name: str, workdir: str, options: Optional[dict] = None) -> Backend:
    return _class(name)(workdir, options)


def output_files() -> Tuple[str, ...]:
    """The files a scheduler writes in a job's folder itself (Backend.output_file), of every
    backend: a fetch takes them as it takes logs."""
    return tuple(f for f in (_class(name).output_file for name in NAMES) if f)


__all__ = ["Backend", "BackendError", "NAMES", "REQUEUEING", "Refused", "Unanswered", "get", "output_files"]
