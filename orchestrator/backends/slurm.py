"""Slurm: each job is one sbatch submission from the cluster's login node.

Slurm hands out GPUs (the host's `slurm.gres` / `gpus_per_job`), orders jobs (afterok
dependencies, set by the host side) and may stop a job and start it again (requeue, time
limit): the wrapper is told so (`--requeueable`), checkpoints on Slurm's warning signal and
asks for the requeue itself; the batch script `exec`s the command so that signal reaches it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

from orchestrator.backends import slurm_facts
from orchestrator.backends.base import JobBackend, SchedulerGpus
from orchestrator.config.slurm import (
    SlurmOptions,
    seconds,
    short_attempt,
    time_warnings,
    warn_before_too_late,
    words,
)
from orchestrator.errors import Problem

# Slurm's reasons for a PENDING job that mean it will never start as submitted (Slurm's "Job
# Reason Codes"): the job itself breaks a limit or names something invalid, so only a change
# to the cluster's config (or the job) could start it, and `orch run --wait` must not wait
# for good.  Not here, though they can look alike: PartitionNodeLimit ("can also indicate that
# required nodes are DOWN or DRAINED"), ReqNodeNotAvail (nodes down, reserved or in use),
# PartitionDown / PartitionInactive / NodeDown (until an admin brings them back), JobHeld*
# (until released), and every aggregate or count limit (AssocGrp*, QOSGrp*, AssocMaxJobsLimit,
# *PerUser*, *PerAccount): those lift as other jobs end.
NEVER_STARTS = {
    "PartitionTimeLimit": "its time limit (slurm.time) is over its partition's",
    "PartitionConfig": "it asks for more than its partition allows (slurm.time, CPUs, memory or nodes)",
    "BadConstraints": "no node can meet what it asks for (slurm.constraint, gres, mem, cpus_per_task)",
    "DependencyNeverSatisfied": "a job it requires ended without success",
    "InvalidAccount": "its account (slurm.account) is not valid",
    "InvalidQOS": "its QOS (slurm.qos) is not valid",
    "AccountNotAllowed": "its account is not allowed in its partition",
    "QOSNotAllowed": "its QOS is not allowed for its account or partition",
    "ReservationDeleted": "the reservation it asks for no longer exists",
    "MaxMemPerLimit": "its memory (slurm.mem) is over the limit per CPU or per node",
}
# A per-job (or per-node) maximum of its QOS or account that the request itself is over
# (QOSMaxWallDurationPerJobLimit, AssocMaxGRESPerJob, QOSMaxCpuPerNode, ...), or a QOS
# minimum it is under (QOSMinGRES, QOSMinCpuNotSatisfied, ...).
_PER_JOB_MAX = re.compile(r"^(QOS|Assoc)Max\w+Per(Job|Node)(Limit)?$")
_QOS_MIN = re.compile(r"^QOSMin\w+$")


class SlurmBackend(JobBackend):
    name = "slurm"
    tools = ("sbatch", "squeue", "scontrol", "scancel")
    install_hint = (
        "run orch against the cluster's login node, where Slurm's client commands are on PATH "
        "(or add their folder to the host config's `extra_path`)"
    )
    lost_sight = "Slurm does not show it"
    unanswered_words = "Slurm's controller"
    id_column = "Slurm id"
    exec_command = True
    login_node = True

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

    def parse_facts(self, sections: Mapping[str, Any], workdir: str) -> Dict[str, Any]:
        return slurm_facts.parse(sections, workdir)

    def fact_rows(self, cluster: Mapping[str, Any]) -> List[Tuple[str, str]]:
        return slurm_facts.fact_rows(cluster)

    def running_step(self, cluster: Mapping[str, Any], name: str) -> str:
        return f"queued or running as Slurm job {name}" if name in slurm_facts.jobs(cluster) else ""

    def cluster_gpus(self, cluster: Mapping[str, Any]) -> Optional[SchedulerGpus]:
        # The jobs run in slurm.partition's partitions ("" = any): the GPU types of their gres.
        return SchedulerGpus(slurm_facts.gpu_types(cluster, self.options.partition), "sinfo", "gres gpu:N")

    job_step_words = "a Slurm batch job on a compute node"

    def runs_as_job(self, step) -> bool:
        from orchestrator.backends.slurm_steps import runs_as_job

        return runs_as_job(step)

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
        never = self.never_starts(info)
        return f"{words}: Slurm will never start it, {never}" if never else words

    def never_starts(self, info: Dict) -> str:
        """Why Slurm will never start a job it holds PENDING (NEVER_STARTS), "" when it may."""
        if str(info.get("state") or "") != "PENDING":
            return ""
        reason = str(info.get("reason") or "")
        if reason in NEVER_STARTS:
            return NEVER_STARTS[reason]
        if _PER_JOB_MAX.match(reason):
            whose = "QOS" if reason.startswith("QOS") else "account"
            return f"what it asks for is over a per-job limit of its {whose}"
        if _QOS_MIN.match(reason):
            return "what it asks for is under its QOS's minimum"
        return ""

    def gone(self, info: Dict) -> str:
        job_id = str(info.get("job_id") or "")
        return f"Slurm no longer lists job {job_id}" if job_id else ""

    def host_problems(self, facts) -> List:
        found = slurm_problems(
            facts,
            self.options.partition,
            self.options.gres or ("gpu" if self.options.gpus_per_job else ""),
            self.options.time,
        )
        return found + default_time_problems(facts, self.options) + [Problem("warning", w, "") for w in self.warnings()]

    def ident(self, info: Dict) -> str:
        return str(info.get("job_id") or "")

    launch_probe = slurm_facts.SINFO

    def launch_problems(self, text: str) -> List:
        # host_problems reads only the facts' cluster: the partitions sinfo printed.
        facts = _Cluster({slurm_facts.PARTITIONS: slurm_facts.parse_sinfo(text), slurm_facts.JOBS: []})
        return [p for p in self.host_problems(facts) if p.level == "error"]


@dataclass
class _Cluster:
    """Host facts as far as the Slurm checks read them (``HostFacts.cluster``)."""

    cluster: Dict[str, Any]


def _partitions(facts) -> Optional[List[Dict[str, str]]]:
    """sinfo's partition lines among the host's probe facts; None: no sinfo there."""
    return slurm_facts.partitions(facts.cluster)


def _wanted(facts, partition: str) -> List[str]:
    """The partitions a job may run in: slurm.partition's, else the default one(s)."""
    return [p for p in partition.split(",") if p] or [p["partition"] for p in _partitions(facts) if p["default"]]


def default_limits(facts, partition: str) -> Dict[str, Optional[Tuple[str, int, str]]]:
    """The time limit a job submitted without --time gets in each partition it may run in:
    (as sinfo shows it, seconds, which limit) - its DefaultTime, else its MaxTime - or None
    where there is none (infinite)."""
    out: Dict[str, Optional[Tuple[str, int, str]]] = {}
    wanted = _wanted(facts, partition)
    for p in _partitions(facts) or []:
        if p["partition"] not in wanted or p["partition"] in out:
            continue  # sinfo may list a partition on several lines (node groups)
        default, most = seconds(p.get("default_time") or ""), seconds(p.get("time_limit") or "")
        if default:
            out[p["partition"]] = (p["default_time"], default, "default time limit (DefaultTime)")
        elif most:
            out[p["partition"]] = (p["time_limit"], most, "time limit (MaxTime; it sets no DefaultTime)")
        else:
            out[p["partition"]] = None
    return out


def default_time_problems(facts, opts: SlurmOptions) -> List[Problem]:
    """slurm.time unset: each job gets its partition's default limit, which slurm.warn_before
    must leave time before, as check() asks of slurm.time.  An error when every partition the
    job may run in is too short for it, a warning when only some are."""
    if opts.time or _partitions(facts) is None:
        return []
    limits = default_limits(facts, opts.partition)
    late = {name for name, lim in limits.items() if lim is not None and opts.warn_before >= lim[1]}
    fine = sorted(set(limits) - late)
    out = []
    for name, limit in sorted(limits.items()):
        if limit is None:
            continue
        shown, secs, which = limit
        what = f"the {which} of partition {name!r}, {shown} ({words(secs)}), which its jobs get with slurm.time unset"
        if name in late:
            out.append(
                Problem(
                    "warning" if fine else "error",
                    f"slurm.warn_before {opts.warn_before} s {warn_before_too_late(opts, what)}"
                    + (f" (jobs Slurm runs in {', '.join(fine)} are not affected)" if fine else ""),
                    f"set slurm.time well over {opts.warn_before} s (within the partition's time limit), "
                    "or a smaller slurm.warn_before",
                )
            )
        else:
            said = short_attempt(opts, what + ",", secs)
            out += [Problem("warning", said, "")] if said else []
    return out


def slurm_problems(facts, partition: str = "", gres: str = "", time: str = "") -> List[Problem]:
    """What keeps a `scheduler: slurm` host from running jobs, from its probe."""
    found = _partitions(facts)
    if found is None:
        return [
            Problem(
                "error",
                "no `sinfo` on this host: `scheduler: slurm` needs a Slurm login node",
                "check `hostname:`, or add the folder of Slurm's commands to `extra_path`",
            )
        ]
    names = {p["partition"] for p in found}
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
    wanted = _wanted(facts, partition)
    over: Dict[str, Tuple[str, int]] = {}
    fits = set()
    for p in found:  # sinfo may list a partition on several lines (node groups)
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
    if gres.startswith("gpu") and not any("gpu" in p["gres"] for p in found):
        out.append(
            Problem(
                "error",
                "slurm.gres asks for GPUs, but no partition here has GPU gres",
                "check `sinfo -o '%P %G'` on the login node",
            )
        )
    return out
