"""The interface every job backend implements (host side).  Standard library only."""

from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple


class BackendError(Exception):
    """A job could not be started or stopped; the message is one line for the user."""


class Unanswered(BackendError):
    """The scheduler did not answer (Slurm's controller down, or too busy to take the
    request): nothing was submitted, stopped or recorded, and a later try may work."""


class Refused(BackendError):
    """The scheduler refused the job as submitted (sbatch said no: an unknown partition, more
    GPUs or memory than a node has).  Nothing of it runs: hostctl launch records it as the
    job's end (``failed``, this message as the reason), so status and --resume see why."""


class Backend:
    """One instance per hostctl call.

    A job is a plan item (docs/CONTRACT.md, "hostctl"): ``name``, ``job_dir``, ``command``
    (shell text, quoted by the controller: the wrapper around the payload), ``requires`` /
    ``after`` (names of jobs it depends on).  A backend gives each job it starts a handle
    (a tmux session name, a Slurm job id), which hostctl records in ``<job_dir>/backend.json``
    and hands back to ``alive`` and ``stop``.
    """

    name = ""
    # True when a started job runs at once (tmux): launch then waits for its wrapper's first
    # status.json.  False when it may wait in a queue (Slurm): submission is the start.
    starts_at_once = True
    # True when jobs run on this machine (tmux): a wrapper's pid is a process here that
    # hostctl may signal.  False where they run elsewhere (Slurm compute nodes).
    same_host = True
    # The file the scheduler itself writes in a job's folder (its own output of the job: why a
    # job that never reached orch's wrapper failed), and what it is in words; None: no such file.
    output_file: Optional[str] = None
    output_words = ""

    def __init__(self, workdir: str, options: Optional[dict] = None):
        self.workdir = workdir
        self.options = dict(options or {})

    def submit(self, job: dict, handles: Dict[str, str]) -> str:
        """Start JOB detached from this connection; return its handle.  ``handles``: the
        handles of jobs started earlier in the same launch (and of those already done), by
        name, for backends that express dependencies themselves."""
        raise NotImplementedError

    def alive(self, handles: Dict[str, str]) -> Dict[str, dict]:
        """For each job (name -> handle): ``{"alive": bool, ...}``, in as few calls to the
        scheduler as possible (status is one round trip for a whole run).  Extra keys are
        what the backend knows and the controller may show (a queue state, a reason, a node);
        ``ended`` = ``{"state", "reason"}`` when the backend knows the job ended in a way its
        wrapper could not record (a Slurm time limit), with ``at`` when it knows when."""
        raise NotImplementedError

    def ended_by_files(self, job_dir: str, handle: str, since: float) -> Optional[dict]:
        """For a job the backend no longer knows at all (``alive`` said nothing of it) and
        whose wrapper recorded no end: how it ended, ``{"state", "reason", "at"}``, from what the
        scheduler itself left in JOB_DIR at or after SINCE (the attempt's start); None when
        nothing there says (the job is then lost)."""
        return None

    def stop(self, handle: str) -> None:
        """Stop the job (its wrapper records `cancelled` when it gets the signal)."""
        raise NotImplementedError

    def handle_before_records(self, run_id: str, job: str) -> Optional[str]:
        """The handle of JOB of RUN_ID started before hostctl recorded handles (backend.json),
        where the backend can tell it from the names alone; None: it cannot."""
        return None

    def describe(self, handle: str) -> str:
        """How a user reaches the job by hand, for messages (e.g. `tmux -S SOCK attach -t NAME`)."""
        return handle

    def required_tools(self) -> List[str]:
        return []

    # A scheduler that stops a job and runs it again (a requeue) counts those reruns; hostctl
    # and the wrapper ask these, never a scheduler by name.  The defaults: jobs run once.

    def earlier_requeues(self, job_dir: str) -> int:
        """The requeues of the job's earlier submissions that JOB_DIR carries into its current
        one (the count of a job whose wrapper has not run in this submission); 0: none."""
        return 0

    def requeue_counts(self, env: Mapping[str, str]) -> Tuple[int, int]:
        """Inside a job, from its environment ENV: (the times the scheduler has rerun this
        submission, what the wrapper's --max-requeues bounds; the times the run's job has
        been requeued over all its submissions, status.json's ``requeues``)."""
        return 0, 0

    def own_handle(self, env: Mapping[str, str]) -> str:
        """Inside a job: its handle, from its environment ENV ("" when not known)."""
        return ""

    def requeue(self, handle: str) -> None:
        """Ask the scheduler to stop the job HANDLE and run it again; BackendError when it
        refuses (the words are the scheduler's)."""
        raise BackendError(f"the {self.name} backend does not requeue jobs")
