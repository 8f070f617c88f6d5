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
