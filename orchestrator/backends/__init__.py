"""How a job runs on a host: the controller side of orch's one seam for it.

The host config's ``scheduler`` picks a backend; a run records the one it was launched
with (local.json ``backend``), so status, cancel, logs and resume keep using it.  The
controller side only knows what differs between backends before and after the host's
part: which tools the host needs, how GPUs are handed out, which options travel in the
launch plan, and how to say what the backend knows about a job.  Starting, finding and
stopping jobs is the host side's (remote/backends/, called by remote.hostctl), in the
same one round trip per command as before.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping

from orchestrator.backends.base import JobBackend
from orchestrator.config.hosts import SCHEDULERS as NAMES
from orchestrator.errors import ExitCode, OrchError


def get(name: str, host=None) -> JobBackend:
    """The backend NAME, with HOST's options for it (its `slurm:` block) when given."""
    if name == "tmux":
        from orchestrator.backends.tmux import TmuxBackend

        return TmuxBackend(host)
    if name == "slurm":
        from orchestrator.backends.slurm import SlurmBackend

        return SlurmBackend(getattr(host, "slurm", None))
    raise OrchError(f"unknown scheduler {name!r}", ExitCode.CONFIG, hint=f"known: {', '.join(NAMES)}")


def for_host(host) -> JobBackend:
    """The backend a new run on HOST uses (its config's ``scheduler``)."""
    return get(getattr(host, "scheduler", "tmux") or "tmux", host)


def default() -> JobBackend:
    """The backend of a host config that names no ``scheduler``."""
    return for_host(None)


def for_record(record: dict, host=None) -> JobBackend:
    """The backend a run was launched with (runs launched before backends existed: tmux);
    HOST: for a relaunch (`--resume`), whose jobs take the host's current options."""
    return get(record.get("backend") or "tmux", host)


def every() -> List[JobBackend]:
    """One of each backend orch knows (without a host's options)."""
    return [get(name) for name in NAMES]


def cluster_facts(sections: Mapping[str, Any], workdir: str) -> Dict[str, Any]:
    """What the host probe's sections say of every scheduler orch knows (``parse_facts``):
    the probe runs whichever of their commands the host has, whatever its `scheduler`.
    No sections: each backend's facts of a host without it."""
    out: Dict[str, Any] = {}
    for backend in every():
        out.update(backend.parse_facts(sections, workdir))
    return out
