"""`orch run --dry-run`: what a launch would send and start, without contacting the host.

Everything here is computed on the laptop: the code snapshot's files (the same
codesync.snapshot_files a launch uses, so the list is exactly what would be sent), the
data files to stage, the jobs and the commands tmux would run.  What only the host can
tell (is the snapshot or the data already there, which GPUs it has, where a relative
workdir lands) is said, not guessed.
"""

from __future__ import annotations

import json
from typing import Dict, List

from orchestrator import backends
from orchestrator.config.hosts import HostConfig
from orchestrator.config.project import Project
from orchestrator.runs import codesync, hostops, staging
from orchestrator.runs import plan as jobplan
from orchestrator.runs.launch import classes_for, resolved_experiment
from remote.files import sha256_file
from remote.spec import Experiment


def preview(project: Project, exp: Experiment, run_id: str, host: HostConfig) -> Dict:
    root = project.root
    files = codesync.snapshot_files(root)
    code_hash = codesync.snapshot_hash(root, files)
    workdir = host.workdir  # as configured; a relative one is resolved on the host at launch
    data = []
    local_data = staging.local_data_files(exp, root)
    for key, path in local_data.items():
        data.append(
            {
                "key": f"data.{key}",
                "local": str(path),
                "bytes": path.stat().st_size,
                "host_path": f"{workdir}/data/{sha256_file(str(path))[:16]}-{path.name}",
            }
        )
    classes = classes_for(exp, root)
    backend = backends.for_host(host)
    planned = jobplan.plan_jobs(exp, classes)
    backend.place(planned, list(host.gpus))
    remote_run = hostops.run_dir(workdir, run_id)
    code = hostops.code_dir(workdir, code_hash)
    plan = jobplan.launch_plan(run_id, host.python_or_default, remote_run, code, planned, backend)
    return {
        "run_id": run_id,
        "host": host.name,
        # files and --set applied, data.name filled in: run.yaml's section before its host paths
        "experiment": resolved_experiment(exp, local_data),
        "workdir": workdir,
        "code_hash": code_hash,
        "code_files": [
            {"path": rel, "bytes": (root / rel).stat().st_size, "mode": oct(codesync.host_mode(root / rel))[2:]}
            for rel in files
        ],
        "data": data,
        "classes": classes,
        "gpus": list(host.gpus),
        "jobs": [j.to_dict() for j in planned],
        "launch": plan["jobs"],
        "backend": backend.name,
        "how_jobs_run": backend.how_jobs_run,
        "gpus_from": backend.gpus_from(),
        "start": [backend.preview_job(item) for item in plan["jobs"]],
    }


def render(p: Dict) -> List[str]:
    """Plain lines (never Rich markup: file names and values are the user's)."""
    code_bytes = sum(f["bytes"] for f in p["code_files"])
    out = [
        f"dry run: run {p['run_id']} on {p['host']} - nothing sent, the host not contacted",
        f"code snapshot {p['code_hash']}: {len(p['code_files'])} files, {code_bytes} bytes, sent to "
        f"{p['workdir']}/code/{p['code_hash']}/ unless the host has it already (checked at launch)",
    ]
    for f in p["code_files"]:
        out.append(f"  {f['bytes']:>9}  {f['mode']}  {f['path']}")
    out.append("experiment, as resolved (files and --set applied):")
    out.extend(f"  {line}" for line in settings(p["experiment"]))
    if p["data"]:
        out.append("data, each sent unless the host has it already (checked at launch):")
        for d in p["data"]:
            out.append(f"  {d['bytes']:>9}  {d['key']}: {d['local']} -> {d['host_path']}")
    gpus = ", ".join(p["gpus"]) if p["gpus"] else p.get("gpus_from") or "those nvidia-smi lists on the host at launch"
    out.append(f"classes: {', '.join(p['classes'])}; GPUs: {gpus}")
    out.append(f"jobs ({len(p['jobs'])}), {p['how_jobs_run']}:")
    for job, start in zip(p["jobs"], p["start"]):
        extra = "".join(f", {k} {', '.join(job[k])}" for k in ("requires", "after") if job[k])
        label = f" label {job['label']!r}" if job["label"] is not None else ""
        out.append(f"  {job['name']} ({job['role']}{label}, GPU {job['gpu'] or '-'}{extra})")
        out.extend(f"    {line}" for line in start)
    if not p["workdir"].startswith("/"):
        out.append(f"workdir {p['workdir']} is relative: it lands under the login's home on the host")
    return out


def settings(doc: Dict, prefix: str = "") -> List[str]:
    """One ``section.key: value`` line per setting of the resolved experiment DOC."""
    out = []
    for key, value in doc.items():
        if isinstance(value, dict) and value:
            out.extend(settings(value, f"{prefix}{key}."))
        else:
            out.append(f"{prefix}{key}: {json.dumps(value, ensure_ascii=False)}")
    return out
