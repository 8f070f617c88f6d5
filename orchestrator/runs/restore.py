"""Rebuild a study run's folder here from its host, when runs/RUN/ was deleted.

A study's record keeps what each launched run's local.json said (study.json's
``launched``: host, workdir, code snapshot, backend, run.yaml's sha256, planned jobs,
data files); the host keeps the run's run.yaml.  Together they are the run's local record
again: local.json from study.json, run.yaml from the host.

The host is untrusted: its run.yaml is read without following links, no bigger than
MAX_RUN_YAML, and taken only when its sha256 is the one recorded at launch (then it is
byte for byte the file orch wrote) and it names this run and snapshot.  A record without
that sha256 (study.json older than it) restores nothing: the host's file could not be
told from another, and the message says how to recover by hand.  Only
runs/RUN/run.yaml and runs/RUN/local.json are written, and never over a file of the
user's: a run.yaml already here must be the same bytes.  The jobs' results then come as
for any run, by `orch fetch-results` (fetch.py's checks).
"""

from __future__ import annotations

import hashlib
import time
from typing import Dict, List, Optional, Tuple

from orchestrator.config.project import NAME_RE, Project
from orchestrator.contract import records
from orchestrator.errors import ExitCode, OrchError
from orchestrator.localfiles import atomic_write_bytes, writing
from orchestrator.runs import hostops
from orchestrator.transport.base import Transport

MAX_RUN_YAML = 8 << 20  # a run.yaml of thousands of jobs is well under this


class NotOnHost(OrchError):
    """The host has no run.yaml for the run: deleted there too (or never written)."""


def find_launched(project: Project, run_id: str) -> Optional[Tuple[Dict, Dict]]:
    """(study.json, the run's entry) of the study that launched RUN_ID and recorded where,
    or None."""
    from orchestrator.runs.study_status import launch_facts, load_record

    found = project.launched_in_study(run_id)
    if found is None:
        return None
    record = load_record(project, found[0])
    entry = next(e for e in record["runs"] if e.get("run_id") == run_id)
    return (record, entry) if launch_facts(entry) is not None else None


def _read_run_yaml(transport: Transport, runs_dir: str, run_id: str) -> bytes:
    """The host's RUNS_DIR/RUN_ID/run.yaml, read without following a link at its name."""
    where = f"{runs_dir}/{run_id}/run.yaml"
    source = transport.source(runs_dir)
    found = source.lstat(run_id, "run.yaml")
    if found is None:
        raise NotOnHost(f"{transport.host.name} has no {where}", ExitCode.RUN_STATE)
    regular, size = found
    if not regular:
        raise OrchError(f"{where} on {transport.host.name} is not a regular file (a link?): refused", ExitCode.REMOTE)
    if size > MAX_RUN_YAML:
        raise OrchError(
            f"{where} on {transport.host.name} is {size} bytes, over the {MAX_RUN_YAML >> 20} MB of any run.yaml: "
            "refused",
            ExitCode.REMOTE,
        )
    data = bytearray()
    source.read(run_id, "run.yaml", 0, MAX_RUN_YAML + 1, data.extend)
    if len(data) > MAX_RUN_YAML:
        raise OrchError(f"{where} on {transport.host.name} grew past {MAX_RUN_YAML >> 20} MB: refused", ExitCode.REMOTE)
    return bytes(data)


def _check(data: bytes, run_id: str, facts: Dict, where: str) -> None:
    """DATA (the host's run.yaml) must be the one launched: the sha256 recorded at launch,
    and this run's id and snapshot, with jobs."""
    import yaml

    if hashlib.sha256(data).hexdigest() != facts["config_sha256"]:
        raise OrchError(
            f"{where} is not the run.yaml launched (its sha256 is not the one study.json recorded): not restored",
            ExitCode.RUN_STATE,
            hint="the run on the host was changed or replaced since its launch; look at it there",
        )
    try:
        doc = yaml.load(data.decode("utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise OrchError(f"{where} is not a run.yaml: {str(exc)[:200]}", ExitCode.RUN_STATE) from None
    jobs = doc.get("jobs") if isinstance(doc, dict) else None
    if (
        not isinstance(doc, dict)
        or doc.get("run_id") != run_id
        or doc.get("code_hash") != facts["code_hash"]
        or not isinstance(doc.get("experiment"), dict)
        or not isinstance(jobs, list)
        or not all(isinstance(j, dict) and NAME_RE.fullmatch(str(j.get("name"))) for j in jobs)
    ):
        raise OrchError(
            f"{where} is not run {run_id}'s run.yaml (its run_id, code_hash or jobs are not the launched run's): "
            "not restored",
            ExitCode.RUN_STATE,
        )


def restore(project: Project, transport: Transport, record: Dict, entry: Dict) -> bool:
    """Rebuild runs/RUN/ (run.yaml, local.json) for ENTRY, a run of study RECORD launched on
    TRANSPORT's host; False when its local.json is here already (nothing to do).  NotOnHost
    when the host has no run.yaml for it."""
    from orchestrator.runs.study_status import LAUNCH_KEYS, launch_facts

    run_id = entry["run_id"]
    facts = launch_facts(entry)
    if facts is None:
        raise OrchError(f"study {record['name']} does not record where run {run_id} was launched", ExitCode.RUN_STATE)
    run_dir = project.run_dir(run_id)
    if (run_dir / "local.json").is_file():
        return False
    remote = hostops.run_dir(facts["workdir"], run_id)
    where = f"{remote}/run.yaml on {facts['host']}"
    if not isinstance(facts.get("config_sha256"), str):
        raise OrchError(
            f"study {record['name']} records no sha256 of run {run_id}'s run.yaml (its record is older than the "
            f"launch records orch restores a run's folder from), so {where} cannot be checked: not restored",
            ExitCode.RUN_STATE,
            hint=f"to keep its results, put runs/{run_id} back from a backup; to launch it again, remove it on "
            f"{facts['host']} (`rm -rf {remote}` there), then `orch study resume {record['name']}`",
        )
    data = _read_run_yaml(transport, remote.rsplit("/", 1)[0], run_id)
    _check(data, run_id, facts, where)
    mine = run_dir / "run.yaml"
    with writing(run_dir):
        run_dir.mkdir(parents=True, exist_ok=True)
    try:
        here: Optional[bytes] = mine.read_bytes()
    except FileNotFoundError:
        here = None
    if here is not None and here != data:
        raise OrchError(
            f"{mine} is here without local.json and is not the run.yaml {run_id} was launched with: not restored",
            ExitCode.RUN_STATE,
            hint=f"move it away; then `orch study fetch {record['name']}` restores the launched one",
        )
    if here is None:
        atomic_write_bytes(mine, data)
    local = {"run_id": run_id, **{k: facts[k] for k in LAUNCH_KEYS if k in facts}}
    local.update(
        state="launched",
        study={"name": record["name"], "member": entry["member"], "seed": entry["seed"]},
        restored={"from": facts["host"], "at": time.time()},
    )
    records.save_record(run_dir, local)  # last: a restore stopped before it is done again
    return True


def restore_for_fetch(project: Project, run_id: str, trust: bool, say) -> None:
    """`orch fetch-results RUN` of a study run whose folder here was deleted: restore it from
    its host first (nothing to do for any other run)."""
    if (project.run_dir(run_id) / "local.json").is_file():
        return
    found = find_launched(project, run_id)
    if found is None:
        return
    from orchestrator.transport.connect import open_transport

    record, entry = found
    host = entry["launched"]["host"]
    with open_transport(project, host, trust) as transport:
        try:
            restore(project, transport, record, entry)
        except NotOnHost as exc:
            raise OrchError(
                f"run {run_id} of study {record['name']} has no folder here, and {exc.message}: "
                "deleted there too, nothing to fetch",
                ExitCode.RUN_STATE,
                hint=f"`orch study resume {record['name']}` launches it again",
            ) from None
    say(f"restored {project.runs / run_id} from {host} (study.json's launch record and {host}'s run.yaml)")


def restore_missing(project: Project, record: Dict, transport_for, say, only: Optional[List[str]] = None) -> List[str]:
    """Restore every launched run of RECORD (or of ONLY) whose local.json is gone; say what
    was restored, and what could not be (a run the host lost too is left to `study status`).
    Returns the problems, "RUN: why"."""
    from orchestrator.runs.study_status import launch_facts

    problems = []
    for entry in record["runs"]:
        run_id = entry["run_id"]
        facts = launch_facts(entry)
        if facts is None or (only is not None and run_id not in only):
            continue
        if (project.runs / run_id / "local.json").is_file():
            continue
        try:
            restore(project, transport_for(facts["host"]), record, entry)
        except NotOnHost:
            continue  # status says it: no local record, and not on the host either
        except OrchError as exc:
            if exc.code == ExitCode.INTERRUPTED:
                raise
            problems.append(f"{run_id}: {exc.message}")
            say(f"{run_id}: {exc.message}")
            continue
        host = facts["host"]
        say(f"restored {project.runs / run_id} from {host} (study.json's launch record and {host}'s run.yaml)")
    return problems
