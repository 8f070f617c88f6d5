"""What the host probe says of a Slurm cluster: the only place that reads Slurm's output.

bootstrap/probe.sh prints two sections where Slurm's commands are on PATH (the login
node): ``sinfo`` (every partition line) and ``slurm-jobs`` (this user's queued and running
jobs).  ``parse`` turns them into the backend's cluster facts, saved with the host's other
facts (`HostFacts.cluster`) under the keys in ``KEYS``:

- ``slurm_partitions``: one entry per partition line, {"partition", "default", "available",
  "time_limit", "nodes", "gres", "default_time"}; None where the host has no ``sinfo``;
- ``slurm_jobs``: the names of the live jobs started from <workdir>/bootstrap (bootstrap's
  batch steps, orchestrator/backends/slurm_steps.py), so a re-run reattaches to them.

The gres column names the compute nodes' GPU types (`gpu:a100:4`), which bootstrap reads
when the login node has no nvidia-smi of its own (``gpu_types``).  Pure functions over raw
command output; odd lines are skipped, never an exception.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Tuple

from orchestrator.config.slurm import seconds

PARTITIONS, JOBS = "slurm_partitions", "slurm_jobs"
KEYS = (PARTITIONS, JOBS)
# The probe's sinfo (bootstrap/probe.sh prints the same), which the launch also asks for
# (JobBackend.launch_probe) to check the host's slurm: options against the partitions.
SINFO = ("sinfo", "-h", "-o", "%P|%a|%l|%D|%G|%L")


def parse_sinfo(text: str) -> List[Dict[str, str]]:
    """`sinfo -h -o '%P|%a|%l|%D|%G|%L'` -> partitions ('*' marks the default one; %l is the
    partition's MaxTime, %L its DefaultTime: "n/a" for none).  A project's older probe.sh
    prints no %L: its default_time is ""."""
    out = []
    for line in text.splitlines():
        parts = line.strip().split("|")
        if len(parts) not in (5, 6) or not parts[0]:
            continue
        name = parts[0]
        out.append(
            {
                "partition": name.rstrip("*"),
                "default": "yes" if name.endswith("*") else "",
                "available": parts[1],
                "time_limit": parts[2],
                "nodes": parts[3],
                "gres": parts[4],
                "default_time": parts[5] if len(parts) > 5 else "",
            }
        )
    return out


def parse_slurm_jobs(text: str, chdir: str) -> List[str]:
    """`squeue -h -o '%j|%Z'` -> the names of the jobs whose working directory is chdir."""
    out = []
    for line in text.splitlines():
        name, sep, where = line.strip().partition("|")
        if sep and name and where.rstrip("/") == chdir.rstrip("/"):
            out.append(name)
    return out


def parse(sections: Mapping[str, Any], workdir: str) -> Dict[str, Any]:
    """The probe's sections (name -> an object with ``rc`` and ``text``) -> the cluster facts,
    every key of ``KEYS`` present (a host without Slurm: no partitions, no jobs)."""
    facts: Dict[str, Any] = {PARTITIONS: None, JOBS: []}
    if "sinfo" in sections:
        facts[PARTITIONS] = parse_sinfo(sections["sinfo"].text)
    jobs = sections.get("slurm-jobs")
    if jobs is not None and jobs.rc == 0:
        facts[JOBS] = parse_slurm_jobs(jobs.text, workdir.rstrip("/") + "/bootstrap")
    return facts


def partitions(cluster: Mapping[str, Any]) -> Optional[List[Dict[str, str]]]:
    """sinfo's partition lines; None: no sinfo on the host."""
    return cluster.get(PARTITIONS)


def jobs(cluster: Mapping[str, Any]) -> List[str]:
    return list(cluster.get(JOBS) or [])


def fact_rows(cluster: Mapping[str, Any]) -> List[Tuple[str, str]]:
    """The `slurm` row of `hosts check` / `hosts show` / bootstrap's facts (none without sinfo)."""
    found = partitions(cluster)
    if found is None:
        return []
    return [
        (
            "slurm",
            "; ".join(
                f"{p['partition']}{' (default)' if p['default'] else ''}: {p['available']}, "
                f"{p['nodes']} nodes, limit {p['time_limit']}"
                + (f" (default {p['default_time']})" if seconds(p.get("default_time") or "") else "")
                + f", gres {p['gres']}"
                for p in found
            )
            or "sinfo lists no partition",
        )
    ]


# `gpu:TYPE:COUNT` or `gpu:COUNT`, then `(S:0-1)`/`(IDX:...)` and more gres after a comma.  A type is
# any site-chosen word, digits first included (`3g.40gb`, a MIG profile; `2080ti`).  A count of
# more than 9 digits is no count (the entry is skipped): int() of a 5000-digit one raised.
_GRES_GPU = re.compile(r"(?:^|,)gpu(?::([^:,()\s]+))?(?::no_consume)?:([0-9]{1,9})(?![0-9])")


def gres_gpu_types(gres: str) -> List[str]:
    """`gpu:a100:4(S:0-1),gpu:v100:2` -> ['a100', 'v100']; an untyped `gpu:4` gives ''.
    A count of 0 is no GPU."""
    out = []
    for m in _GRES_GPU.finditer((gres or "").strip()):
        kind = m.group(1) or ""
        if int(m.group(2)) > 0:
            out.append("" if kind == "no_consume" else kind)
    return out


def gpu_types(cluster: Mapping[str, Any], partition: str) -> List[str]:
    """The GPU types the gres of PARTITION (comma-separated; "" = every partition) names,
    each once, in sinfo's order ("" for untyped gres `gpu:N`)."""
    wanted = {p for p in partition.split(",") if p}
    out: List[str] = []
    for p in partitions(cluster) or []:
        if wanted and p["partition"] not in wanted:
            continue
        out += [kind for kind in gres_gpu_types(p["gres"]) if kind not in out]
    return out
