"""Slurm: each job is one sbatch submission from the cluster's login node.

Slurm hands out GPUs (the host's `slurm.gres` / `gpus_per_job`), orders jobs (afterok
dependencies, set by the host side) and may stop a job and start it again (requeue, time
limit): the wrapper is told so (`--requeueable`), checkpoints on Slurm's warning signal and
asks for the requeue itself; the batch script `exec`s the command so that signal reaches it.
"""

from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from orchestrator.backends.base import JobBackend
from orchestrator.config.slurm import SlurmOptions, seconds, time_warnings, words
from orchestrator.errors import Problem


class SlurmBackend(JobBackend):
    name = "slurm"
    tools = ("sbatch", "squeue", "scontrol", "scancel")
    install_hint = (
        "run orch against the cluster's login node, where Slurm's client commands are on PATH "
        "(or add their folder to the host config's `extra_path`)"
    )
    lost_sight = "Slurm does not show it"
    id_column = "Slurm id"
    exec_command = True

    def __init__(self, options: Optional[SlurmOptions] = None):
        self.options = options or SlurmOptions()

    def job_env(self, job) -> Dict[str, str]:
        return {}  # CUDA_VISIBLE_DEVICES is Slurm's to set (from --gres)

    def wrapper_args(self) -> List[str]:
        return ["--requeueable", "--max-requeues", str(self.options.max_requeues)]

    def plan_fields(self) -> Dict:
        return {
            "backend": self.name,
            "options": {
                "sbatch": self.options.sbatch_args(),
                "modules": list(self.options.modules),
                "warn_before": self.options.warn_before,
            },
        }

    how_jobs_run = "each one sbatch submission from the login node, GPUs from Slurm"

    def gpus_from(self) -> str:
        asked = (
            f"--gres={self.options.gres}"
            if self.options.gres
            else f"--gpus={self.options.gpus_per_job}"
            if self.options.gpus_per_job
            else ""
        )
        where = f"partition {self.options.partition}" if self.options.partition else "the default partition"
        if not asked:
            return f"none asked of Slurm (no slurm.gres or gpus_per_job): none, unless {where} gives one by default"
        return f"those Slurm allocates for {asked} in {where} (its nodes' gres decide)"

    def preview_job(self, item: Dict) -> List[str]:
        # The options remote/backends/slurm.py adds itself are in docs/CONTRACT.md.
        deps = " --dependency=afterok:<ids of " + ", ".join(item["requires"]) + ">" if item.get("requires") else ""
        return [
            f"sbatch --job-name=orch-<run>-{item['name']} ...{deps} "
            + " ".join(self.options.sbatch_args())
            + f" {item['job_dir']}/slurm.sh",
            *(f"module load {m}" for m in self.options.modules),
            item["command"],
        ]

    def gpu_partitions(self) -> Optional[str]:
        return self.options.partition

    def detached_steps(self, transport, layout):
        from orchestrator.backends.slurm_steps import SlurmSteps

        return SlurmSteps(transport, layout, self.options)

    def warnings(self) -> List[str]:
        return time_warnings(self.options)

    def detail(self, info: Dict) -> str:
        if info.get("unreachable"):
            return "Slurm did not answer: state from the job's files"
        state, reason = str(info.get("state") or ""), str(info.get("reason") or "")
        if not state:
            return ""
        words = state + (f": {reason}" if reason and reason != "None" else "")
        if info.get("node") and state not in ("PENDING",):
            words += f" on {info['node']}"
        return words

    def host_problems(self, facts) -> List:
        found = slurm_problems(
            facts,
            self.options.partition,
            self.options.gres or ("gpu" if self.options.gpus_per_job else ""),
            self.options.time,
        )
        return found + [Problem("warning", w, "") for w in self.warnings()]

    def ident(self, info: Dict) -> str:
        return str(info.get("job_id") or "")


def slurm_problems(facts, partition: str = "", gres: str = "", time: str = "") -> List[Problem]:
    """What keeps a `scheduler: slurm` host from running jobs, from its probe."""
    if facts.slurm_partitions is None:
        return [
            Problem(
                "error",
                "no `sinfo` on this host: `scheduler: slurm` needs a Slurm login node",
                "check `hostname:`, or add the folder of Slurm's commands to `extra_path`",
            )
        ]
    names = {p["partition"] for p in facts.slurm_partitions}
    out = []
    for wanted in [p for p in partition.split(",") if p]:
        if wanted not in names:
            out.append(
                Problem(
                    "error",
                    f"slurm.partition {wanted!r} is not a partition here "
                    f"(sinfo lists: {', '.join(sorted(names)) or 'none'})",
                    "set slurm.partition to one of those",
                )
            )
    # A time over the partition's limit: Slurm keeps the job PENDING (PartitionTimeLimit) for good.
    # With several partitions it runs the job in one whose limit it fits, so then it is only
    # a warning (unless every listed partition is too short).
    limit = seconds(time) if time else None
    wanted = [p for p in partition.split(",") if p] or [p["partition"] for p in facts.slurm_partitions if p["default"]]
    over: Dict[str, Tuple[str, int]] = {}
    fits = set()
    for p in facts.slurm_partitions:  # sinfo may list a partition on several lines (node groups)
        most = seconds(p.get("time_limit") or "")
        if limit is None or p["partition"] not in wanted:
            continue
        if most is not None and limit > most:
            over.setdefault(p["partition"], (p["time_limit"], most))
        else:
            fits.add(p["partition"])
    for name, (shown, most) in over.items():
        if name in fits:
            continue
        out.append(
            Problem(
                "warning" if fits else "error",
                f"slurm.time {time!r} ({words(limit)}) is over the time limit of partition {name!r}, "
                f"{shown} ({words(most)}): "
                + (
                    f"Slurm can only run its jobs in {', '.join(sorted(fits))}"
                    if fits
                    else "its jobs would wait in the queue for good (PENDING: PartitionTimeLimit)"
                ),
                f"set slurm.time to {shown} or less; longer work is checkpointed and requeued",
            )
        )
    if gres.startswith("gpu") and not any("gpu" in p["gres"] for p in facts.slurm_partitions):
        out.append(
            Problem(
                "error",
                "slurm.gres asks for GPUs, but no partition here has GPU gres",
                "check `sinfo -o '%P %G'` on the login node",
            )
        )
    return out
