"""The local run record: runs/<id>/run.yaml (what was launched) and local.json (what orch
knows about it since), read and written in one place.

Everything that reads a run folder (launch, resume, fetch, status, evaluation) goes
through these functions, so they sit below all of them and import nothing of theirs.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Sequence

from orchestrator.config.project import Project, safe_name
from orchestrator.errors import ExitCode, OrchError
from orchestrator.localfiles import atomic_write_text, writing

if TYPE_CHECKING:
    from remote.spec import Experiment


def new_run_id(project: Project, exp: "Experiment") -> str:
    """EXPERIMENT-YYYYmmdd-HHMMSS, with -2, -3... when a sweep launches within a second."""
    base = f"{safe_name(exp.name)[:40]}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
    run_id, n = base, 1
    while project.run_dir(run_id).exists():
        n += 1
        run_id = f"{base}-{n}"
    return run_id


# What a command needs of local.json to reach the run on its host.
WHERE_KEYS = ("host", "workdir", "code_hash")


def load_record(run_dir: Path, *, to_reach: bool = True) -> Dict:
    """RUN_DIR's local.json.  ``to_reach``: the command goes to the run's host, so the record
    must say where the run is (WHERE_KEYS); `orch runs` lists whatever is there."""
    path = run_dir / "local.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise OrchError(f"{path} is missing: not a run launched by orch", ExitCode.RUN_STATE) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise OrchError(
            f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}", ExitCode.RUN_STATE, hint=restore_hint(path)
        ) from None
    try:
        record = json.loads(text)
    except ValueError as exc:  # cut short (a full disk, a copy stopped halfway) or hand-edited
        raise OrchError(
            f"{path} is damaged: not valid JSON ({exc})", ExitCode.RUN_STATE, hint=restore_hint(path)
        ) from None
    if not isinstance(record, dict):
        raise OrchError(
            f"{path} is not a run record: a JSON object was expected, found {type(record).__name__}",
            ExitCode.RUN_STATE,
            hint=restore_hint(path),
        )
    wanted = WHERE_KEYS if to_reach else [k for k in WHERE_KEYS if k in record]
    bad = [k for k in wanted if not isinstance(record.get(k), str) or not record[k]]
    if bad:
        raise OrchError(
            f"{path} does not say where the run is: {', '.join(repr(k) for k in bad)} "
            "missing or not a non-empty string",
            ExitCode.RUN_STATE,
            hint=restore_hint(path),
        )
    return record


def restore_hint(path: Path) -> str:
    """How to get a damaged runs/RUN/local.json back.  A study's run has its launch record
    in study.json, from which a fetch rebuilds a missing local.json (runs/restore.py);
    another run's only copy is this one."""
    run_dir = path.parent
    try:
        study = Project(run_dir.parent.parent).launched_in_study(run_dir.name)
    except OSError:
        study = None
    if study is not None:
        return (
            f"run {run_dir.name} was launched by study {study[0]}, which recorded its launch: move the file "
            f"aside (`mv {path} {path}.damaged`) and `orch fetch-results {run_dir.name}` (or `orch study fetch "
            f"{study[0]}`) writes it again from that record"
        )
    return (
        "orch writes this file at launch and no other copy exists: restore it from a backup "
        "(it names the run's host, workdir and code snapshot; docs/CONTRACT.md), or launch the run again"
    )


def load_resolved(run_dir: Path) -> Dict:
    import yaml  # here: `orch runs` and `status` pay for it only when they read a record

    path = run_dir / "run.yaml"
    try:
        # libyaml's safe loader when there is one: a run.yaml of many jobs loads 10x faster.
        doc = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except (OSError, yaml.YAMLError) as exc:
        raise OrchError(f"{path} is unreadable: {exc}", ExitCode.RUN_STATE, hint=run_yaml_hint(run_dir)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("jobs"), list) or "experiment" not in doc:
        # A file cut short is often still YAML, just without its end (the jobs come last).
        missing = [k for k in ("experiment", "jobs") if not isinstance(doc, dict) or k not in doc]
        raise OrchError(
            f"{path} is not a run record (no {' or '.join(missing) or 'list of jobs'}): cut short or edited",
            ExitCode.RUN_STATE,
            hint=run_yaml_hint(run_dir),
        )
    return doc


def run_yaml_hint(run_dir: Path) -> str:
    """How to get a damaged runs/RUN/run.yaml back: the host keeps the file orch wrote at
    launch, and local.json its sha256; a study's run is rebuilt by a fetch (runs/restore.py)."""
    name = run_dir.name
    try:
        study = Project(run_dir.parent.parent).launched_in_study(name)
    except OSError:
        study = None
    if study is not None:
        return (
            f"run {name} was launched by study {study[0]}: move its records aside (`mv {run_dir}/run.yaml "
            f"{run_dir}/run.yaml.damaged; mv {run_dir}/local.json {run_dir}/local.json.damaged`) and "
            f"`orch fetch-results {name}` restores both from the study's launch record and the host's copy "
            "(checked against the sha256 recorded at launch)"
        )
    try:
        record = json.loads((run_dir / "local.json").read_text(encoding="utf-8"))
        host, workdir, sha = record["host"], record["workdir"], record.get("config_sha256")
    except (OSError, ValueError, TypeError, KeyError):
        return "the host keeps the same file as <workdir>/runs/" + name + "/run.yaml: copy it back here"
    return (
        f"host {host} keeps the file orch wrote at launch: copy {workdir}/runs/{name}/run.yaml from it to {run_dir}"
        + (f" (its sha256 must be {sha}, local.json's config_sha256)" if isinstance(sha, str) else "")
    )


def config_edited(run_dir: Path, record: Dict) -> bool:
    """Whether RUN_DIR/run.yaml differs from the one written at launch (local.json's
    config_sha256; runs recorded before it was kept: never)."""
    import hashlib

    want = record.get("config_sha256")
    if not isinstance(want, str):
        return False
    try:
        return hashlib.sha256((run_dir / "run.yaml").read_bytes()).hexdigest() != want
    except OSError:
        return True


def check_config_unchanged(run_dir: Path, record: Dict, workdir: str) -> None:
    """Refuse to relaunch jobs of a run whose run.yaml was edited here: the jobs read their
    config from it, so the relaunched ones would train under another config than the
    finished ones, and the run would report one config for both."""
    if config_edited(run_dir, record):
        raise OrchError(
            f"{run_dir / 'run.yaml'} was changed after the run was launched (its sha256 is not the "
            "one local.json recorded): resuming would run its jobs under another config than its finished jobs",
            ExitCode.RUN_STATE,
            hint=f"put the launched file back (the host keeps it as {workdir}/runs/{run_dir.name}/run.yaml); "
            "to run the edited config, start a new run from an experiment file",
        )


def planned_jobs(run_dir: Path, record: Dict) -> List[Dict]:
    """The run's jobs in plan order, with what `orch status` needs of each (name, gpu):
    from local.json's ``planned_jobs`` (written at launch, so that status parses no YAML),
    else from run.yaml (runs recorded before local.json kept them, or a record edited by hand)."""
    jobs = record.get("planned_jobs")
    if (
        isinstance(jobs, list)
        and jobs
        and all(
            isinstance(j, dict) and isinstance(j.get("name"), str) and isinstance(j.get("gpu", ""), str) for j in jobs
        )
    ):
        return jobs
    return load_resolved(run_dir)["jobs"]


def job_summary(jobs: List[Dict]) -> List[Dict]:
    """What local.json keeps of run.yaml's jobs for planned_jobs()."""
    return [{"name": j["name"], "gpu": j.get("gpu", "") or ""} for j in jobs]


def save_record(run_dir: Path, record: Dict) -> None:
    """Write RECORD whole: for a record being made (launch).  A later change to a record
    goes through update_record, which cannot undo another command's change."""
    atomic_write_text(run_dir / "local.json", json.dumps(record, indent=2) + "\n")


def note_states(run_dir: Path, record: Dict, states: Dict[str, str]) -> None:
    """Keep the job states a command just saw (status, study status, cancel) in local.json,
    for `orch runs` (no SSH), with when they were seen; RECORD, the caller's copy, follows."""
    import time

    if record.get("job_states") != states:
        record.update(update_record(run_dir, {"job_states": states, "job_states_at": time.time()}))


def update_record(run_dir: Path, changes: Dict, drop: Sequence[str] = ()) -> Dict:
    """Set CHANGES' keys (and remove DROP's) in RUN_DIR's local.json as it is now, under a
    lock, and return the record written.  Two commands on one run (a `status --watch`
    beside a fetch or a cancel) each change only their own keys: saving a copy read
    earlier would put back what the other wrote meanwhile (a fetch's "partial" became
    "launched" again)."""
    import fcntl

    with writing(run_dir / "local.json"):  # a read-only or full disk: one message, as the write's
        lock = open(run_dir / ".local.json.lock", "a")
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        record = load_record(run_dir, to_reach=False)
        record.update(changes)
        for key in drop:
            record.pop(key, None)
        save_record(run_dir, record)
    return record
