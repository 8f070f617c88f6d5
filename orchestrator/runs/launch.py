"""`orch run` / `--resume` / `fetch-results`: the few steps that touch a host for a run."""
from __future__ import annotations

import datetime as dt
import hashlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import yaml

from remote.spec import Experiment, to_dict

from orchestrator import backends
from orchestrator.runs import codesync, hostctl as hostops, plan as jobplan, staging
from orchestrator.transport import shell
from orchestrator.errors import ExitCode, OrchError
from orchestrator.transport.files import use_rsync
from orchestrator.config.project import Project
from orchestrator.runs.records import load_record, load_resolved, save_record, write_atomic
from orchestrator.transport.base import Transport


def classes_for(exp: Experiment, root: Path) -> List[str]:
    """The classes of a run, checked before launch rather than failing on the host."""
    wanted = list(exp.data.classes)
    if exp.data.source != "file":
        if not wanted:
            raise OrchError("data.classes is required when the host loads the dataset itself (data.source: hf)",
                            ExitCode.CONFIG, hint="e.g. --set 'data.classes=[\"0\",\"1\"]'")
        found = wanted
    else:
        path = staging.local_data_files(exp, root)["path"]
        found = staging.scan_labels(path, exp.data)
        missing = [c for c in wanted if c not in found]
        if missing:
            raise OrchError(f"data.classes: no texts labelled {', '.join(map(repr, missing))} in {path.name}",
                            ExitCode.CONFIG, hint="labels in the file: " + ", ".join(found))
    classes = wanted or found
    if len(set(classes)) < 2:
        raise OrchError(f"a classifier needs at least 2 classes, got {classes}", ExitCode.CONFIG,
                        hint="check data.label_field and data.classes")
    return classes


def check_host_python(transport: Transport, exp: Experiment, state: hostops.HostState) -> None:
    """Refuse before launch what would make every job fail at import on the host."""
    wanted = ["torch", "transformers", "tokenizers"] + (["datasets"] if exp.data.source == "hf" else [])
    missing = state.missing_modules(wanted)
    if not missing:
        return
    host = transport.host
    why = ("`datasets` loads data.source: hf; " if "datasets" in missing else "")
    raise OrchError(f"{host.name}'s python ({host.python_or_default}) cannot import {', '.join(missing)}, "
                    f"which experiment {exp.name} needs", ExitCode.HOST_TOOLS,
                    hint=why + f"add them to the env spec's packages and run `orch bootstrap {host.name}`, or set "
                    "`python:` in the host config to an interpreter that has them"
                    + ("; or use a local data file (data.source: file)" if "datasets" in missing else ""))


@dataclass
class Launched:
    run_id: str
    host: str
    jobs: List[Dict]
    code_hash: str
    files_sent: int


def launch(project: Project, transport: Transport, exp: Experiment, run_id: str) -> Launched:
    local_dir = project.run_dir(run_id)
    try:
        # Claim the name first (mkdir is atomic): two launches of one name cannot race.
        local_dir.mkdir(parents=True, exist_ok=False)
    except FileExistsError:
        raise OrchError(f"run {run_id!r} already exists in {local_dir}", ExitCode.RUN_STATE,
                        hint=f"pick another --name, or `orch run {exp.name} --resume {run_id}` to relaunch unfinished jobs")
    try:
        return _launch(project, transport, exp, run_id, local_dir)
    except BaseException as exc:
        # Before run.yaml is written here, nothing of the run is on the host: give the name
        # back.  From then on the local record stays (it is written before anything of the
        # run reaches the host), so `status`, `cancel` and `--resume` can always reach it.
        recorded = (local_dir / "run.yaml").exists()
        if not recorded:
            shutil.rmtree(local_dir, ignore_errors=True)
        if isinstance(exc, KeyboardInterrupt):
            if not recorded:
                raise OrchError(f"interrupted: nothing of run {run_id} was launched", ExitCode.INTERRUPTED) from None
            raise OrchError(f"interrupted while launching {run_id}: some of its jobs may not have started",
                            ExitCode.INTERRUPTED, hint=f"`orch status {run_id}` shows which; "
                            f"`orch run {exp.name} --resume {run_id}` starts the rest") from None
        raise


def _launch(project: Project, transport: Transport, exp: Experiment, run_id: str, local_dir: Path) -> Launched:
    classes = classes_for(exp, project.root)
    backend = backends.for_host(transport.host)
    state = hostops.prepare(transport, backend)
    check_host_python(transport, exp, state)
    remote_run = hostops.run_dir(state.workdir, run_id)
    if transport.run(shell.join(["test", "-e", remote_run]), check=False).rc == 0:
        raise OrchError(f"run {run_id!r} already exists on {transport.host.name} ({remote_run})", ExitCode.RUN_STATE,
                        hint="pick another --name")
    rsync = use_rsync(transport, state.tools.get("rsync")) if not transport.host.is_local else False
    code_hash, sent = codesync.sync_code(transport, project.root, state.workdir, rsync)
    staged = staging.stage_data(transport, exp, project.root, state.workdir, rsync)
    planned = jobplan.plan_jobs(exp, classes)
    backend.place(planned, state.gpus)

    resolved = to_dict(exp)
    for key, host_path in staged.items():
        resolved["data"][key] = host_path
    if not resolved["data"]["classes"]:
        resolved["data"]["classes"] = classes
    doc = {
        "run_id": run_id,
        "code_hash": code_hash,
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": transport.host.name,
        "experiment": resolved,
        "jobs": [j.to_dict() for j in planned],
    }
    text = yaml.safe_dump(doc, sort_keys=False)
    record = {
        "run_id": run_id, "host": transport.host.name, "experiment": exp.name, "workdir": state.workdir,
        "code_hash": code_hash, "launched_at": time.time(), "gpus": state.gpus, "state": "launched",
        "backend": backend.name,
        "config_sha256": hashlib.sha256(text.encode()).hexdigest(),
    }
    save_record(local_dir, record)
    write_atomic(local_dir / "run.yaml", text)  # the local record first: see launch()
    transport.put_text(text, f"{remote_run}/run.yaml")

    code = hostops.code_dir(state.workdir, code_hash)
    plan = jobplan.launch_plan(run_id, transport.host.python_or_default, remote_run, code, planned,
                               backend)
    result = hostops.remote_launch(transport, state.workdir, code_hash, plan)
    check_started(result, plan, run_id, exp.name)
    return Launched(run_id, transport.host.name, doc["jobs"], code_hash, sent)


def check_started(result: Dict, plan: Dict, run_id: str, experiment: str) -> None:
    """Every planned job must be reported started: a launch that left one out never
    passes for a success (its jobs would die while `orch run` said "launched")."""
    reported = {j.get("name"): j for j in result.get("jobs", []) if isinstance(j, dict)}
    problems = []
    for item in plan["jobs"]:
        got = reported.get(item["name"])
        if got is None:
            problems.append(f"{item['name']}: the host helper did not report it")
        elif got.get("started") is not True:
            problems.append(f"{item['name']}: {got.get('error') or 'not started'}")
    if problems:
        raise OrchError("jobs did not start: " + "; ".join(problems), ExitCode.REMOTE,
                        hint=f"`orch status {run_id}` shows each job; `orch logs {run_id} JOB` what it printed; "
                             f"`orch run {experiment} --resume {run_id}` starts the rest")


def resume(project: Project, transport: Transport, run_id: str) -> List[str]:
    """Relaunch the jobs of RUN that are not done (failed, lost, cancelled, never started)."""
    local_dir = project.existing_run(run_id)
    record, doc = load_record(local_dir), load_resolved(local_dir)
    workdir = record["workdir"]
    backend = backends.for_record(record, transport.host)
    status = hostops.remote_status(transport, workdir, record["code_hash"], run_id, backend)
    from orchestrator.runs.state import rows_from_remote

    rows = rows_from_remote(status, doc["jobs"], backend)
    unknown = [r for r in rows if r.state == "unknown"]
    if unknown:
        # It may be running: starting it again could put two trainers in one folder.
        raise OrchError("cannot resume " + "; ".join(f"{r.name}: its state is unknown ({r.reason})" for r in unknown),
                        ExitCode.RUN_STATE,
                        hint=f"look at those jobs' folders under {hostops.run_dir(workdir, run_id)}/jobs on the host; "
                             "remove a job's bad status.json there to let --resume start it again")
    busy = [r.name + (f" (wrapper pid {r.owner}, {r.note})" if r.note else "")
            for r in rows if r.state in ("running", "waiting")]
    todo = [r.name for r in rows if r.state not in ("done", "running", "waiting")]
    if not todo:
        if busy:
            raise OrchError(f"nothing to resume: {', '.join(busy)} still running", ExitCode.RUN_STATE,
                            hint=f"`orch cancel {run_id} JOB` stops a job first")
        raise OrchError(f"nothing to resume: every job of {run_id} is done", ExitCode.RUN_STATE,
                        hint=f"`orch fetch-results {run_id}`")
    planned = [jobplan.PlannedJob(**j) for j in doc["jobs"] if j["name"] in todo]
    remote_run = hostops.run_dir(workdir, run_id)
    # The host's copy may be missing (a launch interrupted before it was written, a run
    # folder deleted on the host): the jobs read their config from it, so put it back.
    transport.put_text((local_dir / "run.yaml").read_text(), f"{remote_run}/run.yaml")
    code = hostops.code_dir(workdir, record["code_hash"])
    plan = jobplan.launch_plan(run_id, transport.host.python_or_default, remote_run, code, planned,
                               backend)
    result = hostops.remote_launch(transport, workdir, record["code_hash"], plan)
    check_started(result, plan, run_id, record.get("experiment") or "EXPERIMENT")
    record["state"] = "launched"
    record.pop("job_states", None)  # seen before the relaunch: `orch runs` must not show them as current
    save_record(local_dir, record)
    return todo


def fetch(project: Project, transport: Transport, run_id: str, partial: bool, full_logs: bool = False) -> Dict:
    """Pull RUN's job files, verify them, and only then replace runs/<id>/jobs (see fetch.py).

    Whatever goes wrong, Ctrl-C included, the previous verified copy stays as it was, and
    the message says so."""
    from orchestrator.runs.fetch import kept_note

    local_dir = project.existing_run(run_id)
    kept = kept_note(local_dir)
    try:
        return _fetch(project, transport, run_id, local_dir, partial, full_logs, kept)
    except KeyboardInterrupt:
        raise OrchError(f"interrupted: the fetch of {run_id} stopped; {kept}", ExitCode.INTERRUPTED,
                        hint=f"`orch fetch-results {run_id}` fetches again") from None


def _fetch(project: Project, transport: Transport, run_id: str, local_dir: Path, partial: bool, full_logs: bool,
           kept: str) -> Dict:
    from orchestrator.runs import fetch as fetching
    from orchestrator.runs.state import rows_from_remote, run_state

    record, doc = load_record(local_dir), load_resolved(local_dir)
    backend = backends.for_record(record)
    status = hostops.remote_status(transport, record["workdir"], record["code_hash"], run_id, backend)
    if not status.get("exists"):
        raise OrchError(f"run {run_id} is not on {transport.host.name} any more", ExitCode.RUN_STATE)
    rows = rows_from_remote(status, doc["jobs"], backend)
    # The pretrain job produces a checkpoint, not scores.
    scored = [r for r in rows if r.name != "pretrain"]
    unfinished = [r for r in scored if r.state != "done"]
    if unfinished and not partial:
        raise OrchError(
            "run is not complete: " + ", ".join(f"{r.name} is {r.state}" + (f" ({r.reason})" if r.state == "unknown" else "")
                                                for r in unfinished),
            ExitCode.RUN_STATE,
            hint="wait (`orch status --watch`), resume failed jobs, or fetch what exists with --partial",
        )
    rsync = use_rsync(transport) if not transport.host.is_local else False
    again = f"`orch fetch-results {run_id}` fetches again"
    staging = fetching.Staging(local_dir)
    try:
        pulled = fetching.pull(transport, hostops.run_dir(record["workdir"], run_id) + "/jobs", staging.jobs,
                               local_dir / "jobs", [j["name"] for j in doc["jobs"]], rsync, full_logs, run_id)
        problems = pulled.refused + fetching.verify(local_dir, staging.jobs, doc["jobs"],
                                                    [r.name for r in rows if r.state == "done"], not unfinished)
        if problems:
            raise OrchError("fetched results failed verification:\n  " + "\n  ".join(problems) + f"\n{kept}",
                            ExitCode.RUN_STATE, hint=again + " once the host's files are mended")
        staging.swap_in()
    except OrchError as exc:
        if kept in exc.message:
            raise
        raise OrchError(f"{exc.message}; {kept}", exc.code, hint=exc.hint or again) from None
    finally:
        staging.discard()
    record["state"] = "fetched" if not unfinished else "partial"
    record["fetched_at"] = time.time()
    record["job_states"] = {r.name: r.state for r in rows}
    save_record(local_dir, record)
    return {"complete": not unfinished, "rows": rows, "state": run_state(rows), "cut": pulled.cut}
