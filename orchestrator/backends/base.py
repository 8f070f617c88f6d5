"""The controller side of a job backend (see orchestrator/backends/__init__.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple


@dataclass
class SchedulerGpus:
    """The GPUs a scheduler's cluster facts name: those of the machines its jobs run on, which
    SSH does not reach (Slurm: the gres of the host's partitions, read on the login node)."""

    types: List[str]  # each GPU type once, as the scheduler names it ("": a GPU of no named type)
    source: str  # who named them, for messages ("sinfo")
    untyped: str  # how a GPU of no named type is written there ("gres gpu:N")


class JobBackend:
    name = ""
    tools: Sequence[str] = ()  # host tools `prepare` must find, with ...
    install_hint = ""  # ... how to get them
    lost_sight = "its backend does not show it"  # a live wrapper the backend cannot see
    unanswered_words = "the job scheduler"  # what did not answer when a request got no answer
    id_column = ""  # header of the status table's column for the backend's job id ("" = none)
    # SSH reaches a login node, not the machines the jobs run on (no GPU driver expected there;
    # what a check over SSH finds is the login node's, not the jobs').
    login_node = False

    def place(self, jobs: List, gpus: Sequence[str]) -> None:
        """Say where each planned job runs: its ``gpu`` (CUDA_VISIBLE_DEVICES) and the jobs
        it must wait ``after`` for a turn on a shared device.  Default: nowhere in particular
        (a scheduler that allocates devices itself)."""

    def job_env(self, job) -> Dict[str, str]:
        """Environment the job's command sets for the wrapper (besides PYTHONPATH)."""
        return {"CUDA_VISIBLE_DEVICES": job.gpu}

    def wrapper_args(self) -> List[str]:
        """Extra `remote.wrapper` options for every job of this backend."""
        return []

    def queue_env(self, job, run_dir: str) -> Dict[str, str]:
        """Environment that keeps JOB off a GPU another run's job holds (``run_dir``: the
        run's folder on the host).  Default: none (a scheduler that allocates GPUs keeps
        jobs apart itself)."""
        return {}

    # --- the scheduler's cluster as the host probe found it (bootstrap/probe.sh's sections) ---
    # The probe runs every scheduler's commands the host has; each backend reads its own
    # sections (orchestrator/backends/__init__.py: cluster_facts), whatever the host's scheduler.

    def parse_facts(self, sections: Mapping[str, Any], workdir: str) -> Dict[str, Any]:
        """The probe's sections (name -> an object with ``rc`` and ``text``) -> this scheduler's
        cluster facts, saved with the host's facts (``HostFacts.cluster``).  The same keys
        whatever the host has (no sections: each key's "nothing found"), and keys no other
        backend uses.  Default: none."""
        return {}

    def fact_rows(self, cluster: Mapping[str, Any]) -> List[Tuple[str, str]]:
        """(label, value) rows of those facts for `hosts check`, `hosts show` and bootstrap."""
        return []

    def running_step(self, cluster: Mapping[str, Any], name: str) -> str:
        """Why bootstrap's step NAME (its session / job name) is live as one of this scheduler's
        jobs ("queued or running as ..."); "" when it is not."""
        return ""

    def cluster_gpus(self, cluster: Mapping[str, Any]) -> Optional[SchedulerGpus]:
        """The GPUs this host's jobs get, as the scheduler names them, when they are not on the
        machine bootstrap probes (a login node without nvidia-smi).  None (tmux): the jobs use
        the probed machine's own GPUs."""
        return None

    exec_command = False  # the job command replaces the shell (`exec`) so signals reach the wrapper

    def detached_steps(self, transport, layout):
        """How bootstrap's long steps run detached on the host (launch / poll / log_tail /
        describe / stop_hint; see orchestrator/backends/tmux_steps.py)."""
        raise NotImplementedError(f"the {self.name} backend cannot run bootstrap steps detached")

    def runs_as_job(self, step) -> bool:
        """Whether bootstrap runs STEP (contract.bootsteps.Step) as one of the scheduler's batch
        jobs, away from the machine SSH reaches: it then needs no tmux there."""
        return False

    job_step_words = ""  # `orch bootstrap --dry-run`'s words for such a step

    def plan_fields(self) -> Dict:
        """What the launch plan tells the host side about this backend."""
        return {"backend": self.name}

    def hostctl_args(self) -> List[str]:
        """Arguments hostctl's status / cancel / follow need to reach this backend."""
        return ["--backend", self.name]

    def detail(self, info: Dict) -> str:
        """One short phrase of what the backend knows about a job (a queue state and its
        reason), shown after the job's state; "" when there is nothing to add."""
        return ""

    def never_starts(self, info: Dict) -> str:
        """Why the scheduler will never start a job it holds queued (``info``: what it answered),
        in words; "" when it may yet start it.  `run --wait` and `status --watch` end on it."""
        return ""

    def gone(self, info: Dict) -> str:
        """What the backend no longer shows of a job it was given (``info``: what it answered,
        its handle included), for the reason a job is lost; "" when no handle of the job is
        recorded (the launch never handed it over)."""
        return "its backend no longer shows it"

    how_jobs_run = ""  # for `orch run --dry-run`: "each a detached tmux session on the host"

    def gpus_from(self) -> str:
        """`orch run --dry-run`, when the host config names no GPUs: where the jobs' GPUs come from."""
        return "those nvidia-smi lists on the host at launch (none: CPU)"

    def preview_job(self, item: Dict) -> List[str]:
        """`orch run --dry-run`: how one launch-plan item is started on the host."""
        return [item["command"]]

    def warnings(self) -> List[str]:
        """What is legal in the host's options for this backend but likely not meant
        (said at launch and by `orch hosts check`)."""
        return []

    def host_problems(self, facts) -> List:
        """What `orch hosts check` finds wrong with a host for this backend (its probe facts)."""
        return []

    # A command (argv) whose output the launch holds its jobs against before it submits them,
    # run by the check-and-launch program in the launch's own round trip (Slurm: sinfo's
    # partitions, against slurm.partition and slurm.time); () for none.
    launch_probe: Sequence[str] = ()

    def launch_problems(self, text: str) -> List:
        """The errors (``Problem``) that make this host's jobs unable to run, from
        ``launch_probe``'s output: the launch then submits nothing."""
        return []

    def ident(self, info: Dict) -> str:
        """The job's id in the backend, for the status table's ``id_column``."""
        return ""
