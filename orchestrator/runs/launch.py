"""`orch run` / `--resume`: the few steps that launch a run's jobs on a host (fetching: fetch.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import yaml

from orchestrator import backends, output
from orchestrator.backends.base import JobBackend
from orchestrator.config.project import Project, not_a_run
from orchestrator.contract.records import (
    check_config_unchanged,
    job_summary,
    load_record,
    load_resolved,
    save_record,
    update_record,
)
from orchestrator.errors import ExitCode, OrchError
from orchestrator.localfiles import atomic_write_text, writing
from orchestrator.runs import codesync, hostlaunch, hostops, staging
from orchestrator.runs import plan as jobplan
from orchestrator.terminal import visible
from orchestrator.transport.base import Transport
from remote.jobstate import ACTIVE, DONE, UNKNOWN
from remote.spec import Experiment, to_dict


def classes_for(exp: Experiment, root: Path) -> List[str]:
    """The classes of a run, checked before launch rather than failing on the host."""
    wanted = list(exp.data.classes)
    if exp.data.source != "file":
        if not wanted:
            raise OrchError(
                "data.classes is required when the host loads the dataset itself (data.source: hf)",
                ExitCode.CONFIG,
                hint='e.g. --set \'data.classes=["0","1"]\'',
            )
        found = wanted
    else:
        path = staging.local_data_files(exp, root)["path"]
        found = staging.scan_labels(path, exp.data)
        missing = [c for c in wanted if c not in found]
        if missing:
            raise OrchError(
                f"data.classes: no texts labelled {', '.join(map(repr, missing))} in {path.name}",
                ExitCode.CONFIG,
                hint="labels in the file: " + ", ".join(found),
            )
    classes = wanted or found
    if len(set(classes)) < 2:
        raise OrchError(
            f"a classifier needs at least 2 classes, got {classes}"
            + (f" in {staging.local_data_files(exp, root)['path']}" if exp.data.source == "file" else ""),
            # data.classes naming one class is the config's fault; a file with one label, the data's
            ExitCode.CONFIG if wanted else ExitCode.DATA,
            hint="check data.label_field and data.classes",
        )
    if exp.data.source == "file":
        for warning in staging.check_splits(exp, root, classes):
            output.warn(warning)
    return classes


def wanted_modules(exp: Experiment) -> List[str]:
    """What every job of EXP imports on the host."""
    return ["torch", "transformers", "tokenizers"] + (["datasets"] if exp.data.source == "hf" else [])


def check_host_python(transport: Transport, exp: Experiment, state: hostops.HostState) -> None:
    """Refuse before launch what would make every job fail at import on the host."""
    missing = state.missing_modules(wanted_modules(exp))
    if not missing:
        return
    host = transport.host
    why = "`datasets` loads data.source: hf; " if "datasets" in missing else ""
    raise OrchError(
        f"{host.name}'s python ({host.python_or_default}) cannot import {', '.join(missing)}, "
        f"which experiment {exp.name} needs",
        ExitCode.HOST_TOOLS,
        hint=why + f"add them to the env spec's packages and run `orch bootstrap {host.name}`, or set "
        "`python:` in the host config to an interpreter that has them"
        + ("; or use a local data file (data.source: file)" if "datasets" in missing else ""),
    )


@dataclass
class Launched:
    run_id: str
    host: str
    jobs: List[Dict]
    code_hash: str
    files_sent: int


def name_taken(project: Project, exp: Experiment, run_id: str) -> OrchError:
    """The error for a run name that is already a local run (a launch, or its dry run)."""
    folder = project.run_dir(run_id)
    if folder.is_dir() and not (folder / "run.yaml").is_file():
        # another launch of the name in progress, or an empty folder a killed one left:
        # --resume could not use it, so the hint is not --resume
        why = not_a_run(folder)
        return OrchError(f"run {run_id!r} already exists: {why.message}", why.code, hint=why.hint)
    return OrchError(
        f"run {run_id!r} already exists in {project.run_dir(run_id)}",
        ExitCode.RUN_STATE,
        hint=f"pick another --name, or `orch run {exp.name} --resume {run_id}` to relaunch unfinished jobs",
    )


def launch(project: Project, transport: Transport, exp: Experiment, run_id: str) -> Launched:
    local_dir = project.run_dir(run_id)
    claimed = taken = False
    try:
        try:
            # Claim the name first (mkdir is atomic): two launches of one name cannot race.
            with writing(local_dir):
                local_dir.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            taken = True  # another run's folder (perhaps another launch's claim): never ours to remove
            raise name_taken(project, exp, run_id) from None
        claimed = True
        return _launch(project, transport, exp, run_id, local_dir)
    except BaseException as exc:
        if not claimed:
            if taken or not isinstance(exc, KeyboardInterrupt):
                raise  # the name is another run's, or the folder could not be made: nothing of ours
            # Ctrl-C as the folder was made (a signal that came during mkdir lands right
            # after it): an empty folder there is this launch's claim, not a run.
            try:
                local_dir.rmdir()
            except OSError:
                pass
            raise OrchError(f"interrupted: nothing of run {run_id} was launched", ExitCode.INTERRUPTED) from None
        # Before run.yaml is written here, nothing of the run is on the host: give the name
        # back.  From then on the local record stays (it is written before anything of the
        # run reaches the host), so `status`, `cancel` and `--resume` can always reach it.
        recorded = (local_dir / "run.yaml").exists()
        if not recorded:
            shutil.rmtree(local_dir, ignore_errors=True)
        elif isinstance(exc, OrchError):
            exc.run_created = True  # this launch made the run: `orch run` prints its id for scripts
        if isinstance(exc, KeyboardInterrupt):
            if not recorded:
                raise OrchError(f"interrupted: nothing of run {run_id} was launched", ExitCode.INTERRUPTED) from None
            raise OrchError(
                f"interrupted while launching {run_id}: some of its jobs may not have started",
                ExitCode.INTERRUPTED,
                hint=f"`orch status {run_id}` shows which; `orch run {exp.name} --resume {run_id}` starts the rest",
            ) from None
        raise


@dataclass
class _Launch:
    """What one launch knows before it connects: the run, its classes and backend, the code
    snapshot and the data files, and the request every check_and_launch starts from."""

    project: Project
    transport: Transport
    exp: Experiment
    run_id: str
    local_dir: Path
    classes: List[str]
    backend: JobBackend
    files: List[str]
    code_hash: str
    data: Dict[str, Path]
    data_at: Dict[str, str]  # key -> path under the workdir
    staging_name: str
    request: Dict


def _launch(project: Project, transport: Transport, exp: Experiment, run_id: str, local_dir: Path) -> Launched:
    """Warm (code and data on the host, its workdir and GPUs known from the last launch):
    one command checks and launches.  Otherwise the first command says what is missing,
    the transport sends it, and a second one publishes the code and launches
    (orchestrator/runs/hostlaunch.py)."""
    run = _prepare(project, transport, exp, run_id, local_dir)
    host = transport.host
    known = hostlaunch.known_host(project.root, host)
    if known and "probe" in run.request:  # the cluster the last launch checked its jobs against
        run.request["probe"] = hostlaunch.probe_request(run.backend, known.get("probe"))
    last = _planned_for(run, known["workdir"], list(host.gpus) or known["gpus"]) if known else run.request
    reply = _first_check(run, last)
    sent = 0
    if reply.launch is None:
        reply, last, sent = _send_missing_and_launch(run, reply)
    check_started(reply.launch, last["plan"], run_id, exp.name, created=True, host=host.name, backend=run.backend)
    return Launched(
        run_id, host.name, yaml.safe_load(last["run_yaml"])["jobs"], code_hash=run.code_hash, files_sent=sent
    )


def _prepare(project: Project, transport: Transport, exp: Experiment, run_id: str, local_dir: Path) -> _Launch:
    """Everything the launch knows before it connects (the classes checked, the code hash
    and the data hashes computed)."""
    host = transport.host
    classes = classes_for(exp, project.root)
    backend = backends.for_host(host)
    for words in backend.warnings():
        output.warn(f"{host.name}: {words}")
    files = codesync.snapshot_files(project.root)
    code_hash = codesync.snapshot_hash(project.root, files)
    data = staging.local_data_files(exp, project.root)
    data_at = staging.staged_names(data)
    staging_name = f".staging-{code_hash}-{secrets.token_hex(6)}"  # this launch's own: another may send the same code
    request = {
        "code_hash": code_hash,
        "staging": staging_name,
        "modules": wanted_modules(exp),
        "tools": list(backend.tools),
        "list_gpus": not host.gpus,
        "data": sorted(set(data_at.values())),
        "run_dir": f"runs/{run_id}",
    }
    probe = hostlaunch.probe_request(backend, None)
    if probe:
        request["probe"] = probe
    return _Launch(
        project=project,
        transport=transport,
        exp=exp,
        run_id=run_id,
        local_dir=local_dir,
        classes=classes,
        backend=backend,
        files=files,
        code_hash=code_hash,
        data=data,
        data_at=data_at,
        staging_name=staging_name,
        request=request,
    )


def _planned_for(run: _Launch, workdir: str, gpus: List[str]) -> Dict:
    """Record the run locally for this workdir and these GPUs (before anything of it can
    reach the host: see launch()), and return the request that launches it."""
    planned = jobplan.plan_jobs(run.exp, run.classes)
    run.backend.place(planned, gpus)
    doc = _run_yaml(run, workdir, planned)
    text = yaml.safe_dump(doc, sort_keys=False)
    _save_local_record(run, workdir, gpus, text, doc["jobs"])
    atomic_write_text(run.local_dir / "run.yaml", text)
    host = run.transport.host
    plan = jobplan.launch_plan(
        run.run_id,
        host.python_or_default,
        hostops.run_dir(workdir, run.run_id),
        hostops.code_dir(workdir, run.code_hash),
        planned,
        run.backend,
    )
    return {
        **run.request,
        "workdir": workdir,
        "gpus": None if host.gpus else list(gpus),
        "plan": plan,
        "run_yaml": text,
    }


def resolved_experiment(exp: Experiment, local_data: Dict[str, Path]) -> Dict:
    """EXP as run.yaml's section before its host paths: data.name filled in from the local
    data file (LOCAL_DATA: staging.local_data_files) when the config leaves it empty, as
    eval.bands_dataset matches it."""
    from remote.data import dataset_name

    resolved = to_dict(exp)
    if not resolved["data"].get("name"):
        named = local_data.get("path")
        resolved["data"]["name"] = dataset_name(str(named) if named else exp.data.path, exp.data.source)
    return resolved


def _run_yaml(run: _Launch, workdir: str, planned: List["jobplan.PlannedJob"]) -> Dict:
    """run.yaml: the resolved experiment, its data paths the host's, and the planned jobs."""
    exp = run.exp
    resolved = resolved_experiment(exp, run.data)
    for key, rel in run.data_at.items():
        resolved["data"][key] = f"{workdir}/{rel}"
    if not resolved["data"]["classes"]:
        resolved["data"]["classes"] = run.classes
    return {
        "run_id": run.run_id,
        "code_hash": run.code_hash,
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": run.transport.host.name,
        "experiment": resolved,
        "jobs": [j.to_dict() for j in planned],
    }


def _save_local_record(run: _Launch, workdir: str, gpus: List[str], text: str, jobs: List[Dict]) -> None:
    """local.json for the run as launched to WORKDIR (TEXT: its run.yaml, JOBS: run.yaml's jobs)."""
    save_record(
        run.local_dir,
        {
            "run_id": run.run_id,
            "host": run.transport.host.name,
            "experiment": run.exp.name,
            "workdir": workdir,
            "code_hash": run.code_hash,
            "launched_at": time.time(),
            "gpus": list(gpus),
            "state": "launched",
            "backend": run.backend.name,
            "config_sha256": hashlib.sha256(text.encode()).hexdigest(),
            # Where the data the host reads came from: evaluation trains the yardsticks on it.
            "data_files": {
                key: {"local": str(path), "host": f"{workdir}/{run.data_at[key]}"} for key, path in run.data.items()
            },
            "planned_jobs": job_summary(jobs),  # `orch status` reads these instead of run.yaml's YAML
        },
    )


def _first_check(run: _Launch, last: Dict) -> "hostlaunch.Reply":
    """The first check_and_launch (it launches when warm).  A host that refuses before
    starting anything (the name taken there, a module missing) frees the name here too."""
    host = run.transport.host
    try:
        reply = hostlaunch.check_and_launch(run.transport, run.backend, last)
        state = reply.state
        run.transport.learn_tools(state.tools)
        hostlaunch.remember(run.project.root, host, reply)
        if reply.run_exists:
            where = hostops.run_dir(state.workdir, run.run_id)
            raise hostlaunch.RunOnHost(
                f"run {run.run_id!r} already exists on {host.name} ({where})", where, hint="pick another --name"
            )
        if reply.launch is None:
            # Jobs that could never run as the host's options ask (Slurm: a time over the
            # partition's limit) are refused before anything is submitted.
            hostlaunch.refuse_never_starting(run.backend, reply, host)
            try:
                check_host_python(run.transport, run.exp, state)
            except OrchError as exc:
                raise hostlaunch.NotLaunched(exc.message, exc.code, exc.hint) from None
    except hostlaunch.NotLaunched:
        shutil.rmtree(run.local_dir, ignore_errors=True)  # the host refused before starting anything: the name is free
        raise
    return reply


def _send_missing_and_launch(run: _Launch, reply: "hostlaunch.Reply"):
    """Cold: send what the first reply says is missing, then publish the code and launch.
    Returns the second reply, the request that launched, and the number of files sent."""
    # Nothing of the run is on the host: a record written for the guess goes until the
    # command that launches, so a failed transfer leaves no run that never was.
    for name in ("local.json", "run.yaml"):
        (run.local_dir / name).unlink(missing_ok=True)
    state, transport, sent = reply.state, run.transport, 0
    if not reply.code:
        sent = transport.push_tree(run.project.root, run.files, f"{state.workdir}/code/{run.staging_name}")
    for key, rel in sorted(run.data_at.items()):
        if rel in reply.missing_data:
            transport.push_file(run.data[key], f"{state.workdir}/{rel}")
            reply.missing_data.remove(rel)  # two keys may name one file
    hostlaunch.probe_changed(run.request, reply)  # checked by _first_check: launch on it
    last = _planned_for(run, state.workdir, state.gpus)
    if not reply.code:
        last["publish"] = run.staging_name
    launched = hostlaunch.check_and_launch(transport, run.backend, last)
    if launched.launch is None:
        host = transport.host
        raise OrchError(
            f"{host.name} did not launch {run.run_id}: " + _still_missing(launched, run.code_hash),
            ExitCode.REMOTE,
            hint=f"`orch run {run.exp.name}` again; if it persists, check "
            f"{state.workdir}/code and {state.workdir}/data on {host.name}",
        )
    return launched, last, sent


def _still_missing(reply: "hostlaunch.Reply", code_hash: str) -> str:
    what = ([] if reply.code else [f"code snapshot {code_hash}"]) + reply.missing_data
    if reply.run_exists:
        what.append("(its run folder appeared meanwhile)")
    return ("it still lacks " + ", ".join(what)) if what else "its facts changed while launching"


def check_started(
    result: Dict,
    plan: Dict,
    run_id: str,
    experiment: str,
    created: bool = False,
    host: str = "",
    backend=None,
) -> None:
    """Every planned job must be reported started: a launch that left one out never
    passes for a success (its jobs would die while `orch run` said "launched").
    ``created``: a new run (it exists now, here and on the host, whatever started)."""
    reported = {j.get("name"): j for j in result.get("jobs", []) if isinstance(j, dict)}
    problems, unanswered = [], []
    for item in plan["jobs"]:
        got = reported.get(item["name"])
        if got is None:
            problems.append(f"{item['name']}: the host helper did not report it")
        elif got.get("unanswered") is True:
            unanswered.append((item["name"], str(got.get("error") or "")))
        elif got.get("started") is not True:
            problems.append(f"{item['name']}: {got.get('error') or 'not started'}")
    if unanswered:
        # Not the jobs' fault and nothing recorded of them: the same jobs go in later.
        words = backend.unanswered_words if backend is not None else "the job scheduler"
        said = visible(unanswered[0][1])[:300]
        raise OrchError(
            (f"run {run_id} was created, but " if created else "")
            + f"{words} did not answer on {host or 'the host'}; retry later "
            f"(`orch run {experiment} --resume {run_id}` submits the jobs): "
            f"not submitted: {', '.join(n for n, _ in unanswered)} ({said})"
            + ("; " + "; ".join(problems) if problems else ""),
            ExitCode.REMOTE,
            hint=f"`orch status {run_id}` shows each job",
        )
    if problems:
        raise OrchError(
            (f"run {run_id} was created, but " if created else "") + "jobs did not start: " + "; ".join(problems),
            ExitCode.REMOTE,
            hint=f"`orch status {run_id}` shows each job; `orch logs {run_id} JOB` what it printed; "
            f"once the cause is fixed, `orch run {experiment} --resume {run_id}` starts the rest "
            "(a Slurm host's `slurm:` options are read again then)",
        )


def resume(project: Project, transport: Transport, run_id: str) -> List[str]:
    """Relaunch the jobs of RUN that are not done (failed, lost, cancelled, never started)."""
    local_dir = project.existing_run(run_id)
    record, doc = load_record(local_dir), load_resolved(local_dir)
    workdir = record["workdir"]
    check_config_unchanged(local_dir, record, workdir)
    backend = backends.for_record(record, transport.host)
    for words in backend.warnings():
        output.warn(f"{transport.host.name}: {words}")
    code_hash = record["code_hash"]
    staging_name = f".staging-{code_hash}-{secrets.token_hex(6)}"
    data_at = _recorded_data(record, workdir)
    request = {
        "code_hash": code_hash,
        "staging": staging_name,
        "tools": list(backend.tools),
        "run_dir": f"runs/{run_id}",
        "fresh": False,
        "workdir": workdir,
        "gpus": None,
        "data": sorted(data_at),  # a relaunched job reads them: the host must still have them
    }
    known = hostlaunch.known_host(project.root, transport.host) or {}
    probe = hostlaunch.probe_request(backend, known.get("probe"))
    if probe:
        request["probe"] = probe
    try:
        status = hostops.remote_status(transport, workdir, code_hash, run_id, backend)
    except OrchError as exc:
        if exc.code not in (ExitCode.REMOTE, ExitCode.RUN_STATE):
            raise
        # The host helper lives in the run's code snapshot: it may never have been published
        # (a launch interrupted before its last command) or been cleaned away.
        reply = hostlaunch.check_and_launch(transport, backend, request)
        if reply.code:
            raise
        _resend_code(project, transport, reply, record, run_id, staging_name)
        hostlaunch.check_and_launch(transport, backend, {**request, "publish": staging_name})
        status = hostops.remote_status(transport, workdir, code_hash, run_id, backend)
    from orchestrator.runs.state import rows_from_remote

    rows = rows_from_remote(status, doc["jobs"], backend)
    unknown = [r for r in rows if r.state == UNKNOWN]
    if unknown:
        # It may be running: starting it again could put two trainers in one folder.
        raise OrchError(
            "cannot resume " + "; ".join(f"{r.name}: its state is unknown ({r.reason})" for r in unknown),
            ExitCode.RUN_STATE,
            hint=f"look at those jobs' folders under {hostops.run_dir(workdir, run_id)}/jobs on the host; "
            "remove a job's bad status.json there to let --resume start it again",
        )
    # Not ended: running, waiting (for a job it requires, or requeued in Slurm's queue), or
    # pending (queued, not started): a second copy would run beside it.
    busy = [
        f"{r.name} ("
        + ", ".join(
            [r.state] + ([f"wrapper pid {r.owner}"] if r.owner is not None else []) + ([r.note] if r.note else [])
        )
        + ")"
        for r in rows
        if r.state in ACTIVE
    ]
    todo = [r.name for r in rows if r.state not in (DONE, *ACTIVE)]
    if not todo:
        if busy:
            raise OrchError(
                f"nothing to resume: {', '.join(busy)} still running or queued",
                ExitCode.RUN_STATE,
                hint=f"`orch cancel {run_id} JOB` stops a job first",
            )
        raise OrchError(
            f"nothing to resume: every job of {run_id} is done",
            ExitCode.RUN_STATE,
            hint=f"`orch fetch-results {run_id}`",
        )
    planned = [jobplan.PlannedJob(**j) for j in doc["jobs"] if j["name"] in todo]
    remote_run = hostops.run_dir(workdir, run_id)
    plan = jobplan.launch_plan(
        run_id, transport.host.python_or_default, remote_run, hostops.code_dir(workdir, code_hash), planned, backend
    )
    # The host's run.yaml may be missing (a launch interrupted before it was written, a run
    # folder deleted on the host): the jobs read their config from it, so it goes along.
    request.update(plan=plan, run_yaml=(local_dir / "run.yaml").read_text())
    reply = hostlaunch.check_and_launch(transport, backend, request)
    if reply.launch is None:
        # Jobs that could never run as the host's options now ask: nothing is submitted.
        hostlaunch.refuse_never_starting(backend, reply, transport.host)
        again = hostlaunch.probe_changed(request, reply)  # a cluster unlike the last launch's
        if reply.code and reply.missing_data:
            # The host lost the data (its workdir's data/ cleaned): send the same files again.
            _resend_data(transport, reply.missing_data, data_at, workdir, run_id)
            again = True
        if again:
            reply = hostlaunch.check_and_launch(transport, backend, request)
    if reply.launch is None:
        raise OrchError(
            f"{transport.host.name} did not relaunch {run_id}: " + _still_missing(reply, code_hash),
            ExitCode.REMOTE,
            hint=f"its workdir there is {reply.state.workdir}, the run's is {workdir}",
        )
    check_started(
        reply.launch, plan, run_id, record.get("experiment") or "EXPERIMENT", host=transport.host.name, backend=backend
    )
    # the states seen before the relaunch: `orch runs` must not show them as current
    update_record(local_dir, {"state": "launched"}, drop=("job_states", "job_states_at"))
    return todo


def _recorded_data(record: Dict, workdir: str) -> Dict[str, Path]:
    """The run's data files as launched: path under the workdir -> the local file it came
    from (local.json's data_files; runs recorded before it: none, nothing is checked)."""
    out = {}
    for item in (record.get("data_files") or {}).values():
        host, local = item.get("host") if isinstance(item, dict) else None, (item or {}).get("local")
        if isinstance(host, str) and isinstance(local, str) and host.startswith(workdir + "/data/"):
            out[host[len(workdir) + 1 :]] = Path(local)
    return out


def _resend_data(transport: Transport, missing: List[str], data_at: Dict[str, Path], workdir: str, run_id: str) -> None:
    """Send the run's data files the host no longer has, if the files here are still the
    ones launched (their content-addressed names say so)."""
    for rel in missing:
        local = data_at.get(rel)
        if local is None:
            continue  # not one of ours: check_and_launch says what is still missing
        if not local.is_file() or staging.staged_names({"f": local})["f"] != rel:
            raise OrchError(
                f"run {run_id}'s data file {workdir}/{rel} is not on {transport.host.name} any more, and "
                f"{local} here is {'gone' if not local.is_file() else 'not the same file'}",
                ExitCode.RUN_STATE,
                hint="put the launched file back at that path, or start a new run",
            )
        transport.push_file(local, f"{workdir}/{rel}")


def _resend_code(
    project: Project, transport: Transport, reply: "hostlaunch.Reply", record: Dict, run_id: str, staging_name: str
) -> None:
    """Send the run's code snapshot again, if the code here is still that code."""
    files = codesync.snapshot_files(project.root)
    if codesync.snapshot_hash(project.root, files) != record["code_hash"]:
        raise OrchError(
            f"run {run_id}'s code snapshot {record['code_hash']} is not on {transport.host.name}, and the "
            "code here has changed since",
            ExitCode.RUN_STATE,
            hint=f"launch it as a new run: `orch run {record.get('experiment') or 'EXPERIMENT'}`",
        )
    transport.learn_tools(reply.state.tools)
    transport.push_tree(project.root, files, f"{record['workdir']}/code/{staging_name}")
