"""tmux: jobs in detached sessions on the host itself; orch hands out its GPUs."""

from __future__ import annotations

import posixpath
from typing import Dict, List, Sequence

from orchestrator.backends.base import JobBackend


def gpu_queue_dir(run_dir: str) -> str:
    """The host's GPU queue, ``<workdir>/gpu-queue``, from a run's ``<workdir>/runs/<run-id>``
    (docs/CONTRACT.md): shared by every run of the workdir."""
    return posixpath.join(posixpath.dirname(posixpath.dirname(run_dir.rstrip("/"))), "gpu-queue")


class TmuxBackend(JobBackend):
    name = "tmux"
    tools = ("tmux",)
    install_hint = "install it on the host, e.g. `sudo apt-get install -y tmux`"
    lost_sight = "tmux socket gone"  # its session is not listed, the wrapper holds the folder
    how_jobs_run = "each a detached tmux session on the host"

    def __init__(self, host=None):
        # The host's warm worker (remote/warm.py) keeps torch imported for this long after a job.
        self.warm_s = getattr(host, "warm_worker", 0.0) if host is not None else 0.0

    def job_env(self, job) -> Dict[str, str]:
        env = super().job_env(job)
        if self.warm_s > 0:
            # An environment variable, not a wrapper option: an older snapshot's wrapper ignores it.
            env["ORCH_WARM_S"] = f"{self.warm_s:g}"
        return env

    def preview_job(self, item: Dict) -> List[str]:
        return [f"session {item['session']}: {item['command']}"]

    def gone(self, info: Dict) -> str:
        session = str(info.get("session") or "")
        return f"its tmux session {session} is gone" if session else ""

    def place(self, jobs: List, gpus: Sequence[str]) -> None:
        """GPUs round-robin; a job whose GPU is taken waits (``after``) for the previous job
        on that GPU, so more jobs than GPUs simply queue on the host.  A pretrain job runs
        alone, before the rest, on the first GPU."""
        if not gpus:
            return
        last_on_gpu: Dict[str, str] = {}
        rest = jobs
        if jobs and jobs[0].role == "pretrain":
            jobs[0].gpu = gpus[0]
            rest = jobs[1:]
        for i, job in enumerate(rest):
            gpu = gpus[i % len(gpus)]
            job.gpu = gpu
            if gpu in last_on_gpu:
                job.after = [last_on_gpu[gpu]]
            last_on_gpu[gpu] = job.name

    def queue_env(self, job, run_dir: str) -> Dict[str, str]:
        """A job with a GPU queues for it in the host-wide line (remote/gpuqueue.py): ``place``
        only orders the jobs of one run, and another run may use the same GPUs.  An
        environment variable, not a wrapper option: a resumed run's jobs start the wrapper
        of its own, older snapshot, which would refuse an option it does not know."""
        return {"ORCH_GPU_QUEUE": gpu_queue_dir(run_dir)} if job.gpu else {}

    def hostctl_args(self) -> List[str]:
        # hostctl's default backend: the hostctl of snapshots made before backends existed
        # knows no --backend, and a resumed or followed old run runs its own snapshot's.
        return []

    def detached_steps(self, transport, layout):
        from orchestrator.backends.tmux_steps import TmuxSteps

        return TmuxSteps(transport, layout)
