"""The one vocabulary of job states: the wrapper writes them, hostctl and the controller read them.

Standard library only (the wrapper and hostctl run before torch exists on a host).

Recorded in ``status.json`` (docs/CONTRACT.md):

    waiting    the wrapper is up and waits for the jobs it depends on
    running    the payload runs
    done       the payload exited 0
    failed     it exited non-zero, was killed, or a job it requires did not end done
    cancelled  the user asked (``orch cancel``)

Derived by the controller from those files and the job backend (never written to a file):

    pending    no status.json yet, and the backend still holds the job (queued, starting)
    lost       not ended, and neither the backend nor a live wrapper holds it any more
    unknown    its files break the contract, so nothing can be said
"""

from __future__ import annotations

from typing import Optional

WAITING, RUNNING, DONE, FAILED, CANCELLED = "waiting", "running", "done", "failed", "cancelled"
PENDING, LOST, UNKNOWN = "pending", "lost", "unknown"

RECORDED = (WAITING, RUNNING, DONE, FAILED, CANCELLED)  # what status.json may say
TERMINAL = (DONE, FAILED, CANCELLED)  # no process of the job is left; the state is final
ACTIVE = (PENDING, WAITING, RUNNING)  # the job will still change
SHOWN = RECORDED + (PENDING, LOST, UNKNOWN)  # every state `orch status` can show
NO_RESULTS = (FAILED, LOST, CANCELLED, UNKNOWN)  # will not end done on its own: a resume, or a look


def is_terminal(state: object) -> bool:
    return state in TERMINAL


def dependency_dir(job_dir: str, name: str) -> str:
    """The folder of a job that the job in JOB_DIR depends on: JOB of the same run, or
    RUN/JOB of another run in the same workdir (a study's shared pretrain job)."""
    import os

    jobs_dir = os.path.dirname(os.path.normpath(job_dir))
    if "/" in name:
        run, _, other = name.partition("/")
        return os.path.join(os.path.dirname(os.path.dirname(jobs_dir)), run, "jobs", other)
    return os.path.join(jobs_dir, name)


# CUDA_VISIBLE_DEVICES values that give a job no GPU ("NoDevFiles": old Slurm, gres without
# files).  One rule for the job (remote/train.py) and for status (a GPU column of these is none).
NO_GPU_VALUES = ("", "-1", "NoDevFiles")


def is_gpu(value: str) -> bool:
    """Whether a CUDA_VISIBLE_DEVICES value gives a job a GPU."""
    return value.strip() not in NO_GPU_VALUES


def _time(value) -> Optional[float]:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else None


def attempt_s(status: dict, until: float, now: Optional[float] = None) -> float:
    """Seconds the attempt STATUS (a status.json) records ran: from `started` to `stopped`
    (a scheduler stopped it, it waits to run again) or `ended`, else to UNTIL (it runs, or
    it died unrecorded: the caller's best guess of when).  0 for one that never started.

    A recorded end is capped at NOW only (default UNTIL): a clock ahead of this one's (a
    compute node's) must not count time that has not passed.  UNTIL is no cap on it: a
    log's mtime is when the job last wrote, which a job Slurm killed at its time limit may
    have done a minute before Slurm's recorded end."""
    started = _time(status.get("started"))
    if started is None:
        return 0.0
    now = until if now is None else now
    recorded = _time(status.get("stopped")) or _time(status.get("ended"))
    end = min(recorded, max(now, started)) if recorded is not None else min(until, max(now, started))
    return max(0.0, end - started)


def earlier_s(status: dict) -> float:
    """`earlier_s` of STATUS: the run time of the job's attempts before this one (a requeue,
    a --resume), 0 when it has none or it is not a sane number."""
    value = status.get("earlier_s")
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1e9
    return float(value) if ok else 0.0


def elapsed_s(status: dict, now: float) -> Optional[float]:
    """How long the job has run, over all its attempts: earlier attempts' run time plus this
    one's, which stops counting while the job waits to run again (docs/CONTRACT.md); None
    for a job that has never run."""
    before = earlier_s(status)
    if _time(status.get("started")) is None:
        return before or None
    return before + attempt_s(status, now)
