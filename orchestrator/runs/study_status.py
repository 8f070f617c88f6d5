"""A study's record and the state of its runs: what `orch study status` reads and shows.

Kept apart from study.py (launch, resume, report) so that `orch study status` loads no
experiment or study config machinery (no YAML, no pydantic): the record is JSON, the run
states come from local.json files and one host round trip per host (issue 14's status
benchmark; commands/quickstatus.py's quick path).

Each run of study.json that was launched keeps what its local.json said of where it runs
(``launched``: host, workdir, code snapshot, backend, run.yaml's sha256, planned jobs): a
run whose folder here was deleted is still known as launched, its host is still asked,
and `orch study fetch` restores the folder from the host's copy (runs/restore.py).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

from orchestrator import backends
from orchestrator.config.project import Project, copy_of
from orchestrator.contract import records
from orchestrator.errors import ExitCode, OrchError
from orchestrator.localfiles import atomic_write_text, writing
from orchestrator.runs import hostops
from orchestrator.runs.state import MIXED, rows_from_local, rows_from_remote, shown_state, unanswered
from orchestrator.transport.base import Transport
from remote.jobstate import ACTIVE, CANCELLED, DONE, FAILED, LOST, NO_RESULTS, PENDING, RUNNING, UNKNOWN, WAITING

RECORD = "study.json"


def record_path(project: Project, name: str) -> Path:
    return project.study_dir(name) / RECORD


def load_record(project: Project, name: str) -> Dict:
    path = record_path(project, name)
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise OrchError(
            f"study {name!r} has not been launched ({path} does not exist)",
            ExitCode.RUN_STATE,
            hint=f"`orch study run {name}` launches it",
        ) from None
    except (OSError, ValueError) as exc:
        raise OrchError(f"{path} is unreadable: {exc}", ExitCode.RUN_STATE) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("runs"), list):
        raise OrchError(f"{path} is not a study record (no runs)", ExitCode.RUN_STATE)
    return doc


# What study.json keeps of a launched run's local.json (the entry's "launched"): enough to
# reach the run on its host and to rebuild local.json when runs/RUN/ is gone.
LAUNCH_KEYS = (
    "host",
    "workdir",
    "code_hash",
    "backend",
    "config_sha256",
    "launched_at",
    "experiment",
    "gpus",
    "data_files",
    "planned_jobs",
)


def launch_facts(entry: Dict) -> Optional[Dict]:
    """ENTRY's launch facts (a run of study.json), or None: not launched, or launched before
    study.json kept them."""
    facts = entry.get("launched")
    if isinstance(facts, dict) and all(isinstance(facts.get(k), str) and facts[k] for k in records.WHERE_KEYS):
        return facts
    return None


def has_record(project: Project, run_id: str) -> bool:
    return (project.runs / run_id / "local.json").is_file()


def launched(project: Project, entry: Dict) -> bool:
    """Whether ENTRY's run was launched: its folder is here, or study.json says so."""
    return (project.runs / entry["run_id"]).exists() or launch_facts(entry) is not None


def update_record(project: Project, name: str, change: Callable[[Dict], bool]) -> Dict:
    """Apply CHANGE to study.json as it is now, under a lock (two commands of one study each
    add their own runs' facts), and write it when CHANGE says it changed something."""
    import fcntl

    path = record_path(project, name)
    with writing(path):
        lock = open(path.with_name(".study.json.lock"), "a")
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        doc = load_record(project, name)
        if change(doc):
            atomic_write_text(path, json.dumps(doc, indent=2) + "\n")
    return doc


def note_launched(project: Project, name: str, locals_by_run: Dict[str, Dict], fresh: bool = False) -> None:
    """Keep in study.json where each run of LOCALS_BY_RUN (run id -> its local.json) was
    launched, for runs whose entry does not say it yet (FRESH: they were launched just now,
    whatever an earlier launch of the name recorded)."""

    def change(doc: Dict) -> bool:
        changed = False
        for entry in doc["runs"]:
            local = locals_by_run.get(entry.get("run_id"))
            if local is not None and (fresh or launch_facts(entry) is None):
                entry["launched"] = {k: local[k] for k in LAUNCH_KEYS if k in local}
                changed = True
        return changed

    if locals_by_run and record_path(project, name).is_file():  # none: a launch without a study record
        update_record(project, name, change)


def files_changed(record: Dict) -> bool:
    """Whether the study file or its base experiment's file differ from the bytes study.json
    was written from (records older than these hashes: whether there is a file to compare)."""
    files = record.get("files")
    if not isinstance(files, dict) or not files:
        return isinstance(record.get("file"), str) and bool(record["file"])
    for path, digest in files.items():
        try:
            if hashlib.sha256(Path(path).read_bytes()).hexdigest() != digest:
                return True
        except OSError:
            return True
    return False


def _jobs_listed(jobs: object) -> bool:
    """Whether JOBS is a launch facts' planned_jobs (a list of {"name": ...})."""
    return isinstance(jobs, list) and all(isinstance(j, dict) and isinstance(j.get("name"), str) for j in jobs)


def no_record(name: str, host: str) -> str:
    """Why a launched run of study NAME has no folder here, and how to get it back."""
    return f"no local record; launched on {host}: `orch study fetch {name}` restores its folder from {host}"


@dataclass
class RunView:
    """One run of a study as `orch study status` shows it."""

    member: str
    seed: int
    run_id: str
    state: str  # not launched | running | done | failed | cancelled | fetched | unknown | ...
    jobs_done: int = 0
    jobs: int = 0
    progress: str = ""  # the least advanced running job: "class-0 train 40/100"
    eta_s: Optional[float] = None
    reason: str = ""
    note: str = ""  # the run's scheduler did not answer (slurmctld down): states are the files'
    # jobs given a GPU that ran on the CPU (torch there cannot use it), as `orch status` shows them
    ran_on_cpu: List[str] = field(default_factory=list)
    host: str = ""
    # jobs that ended badly (failed, lost, cancelled) in a run read from its host: what
    # `orch run EXP --resume RUN` relaunches, even while the run's other jobs still run
    to_resume: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict:
        return asdict(self)


def _view(entry: Dict, rows, local_state: Optional[str] = None, host: str = "") -> RunView:
    view = RunView(entry["member"], entry["seed"], entry["run_id"], local_state or shown_state(rows), host=host)
    view.jobs = len(rows)
    view.ran_on_cpu = [r.name for r in rows if r.gpu_unused]
    view.note = unanswered(rows)
    view.jobs_done = sum(r.state == DONE for r in rows)
    if local_state is None:
        view.to_resume = [r.name for r in rows if r.state not in (DONE, UNKNOWN, *ACTIVE)]
    running = [r for r in rows if r.state == RUNNING]
    if running:
        slow = min(running, key=lambda r: (r.step or 0) / (r.total or 1))
        # The pretrain job's phase is "pretrain" too: said once.
        words = [slow.name] + ([slow.phase or "running"] if slow.phase != slow.name else [])
        view.progress = " ".join(words) + (f" {slow.step}/{slow.total}" if slow.total else "")
        etas = [r.eta_s for r in running if r.eta_s is not None]
        view.eta_s = max(etas) if etas else None
    bad = [r for r in rows if r.state in NO_RESULTS]
    if bad:
        view.reason = f"{bad[0].name} {bad[0].state}" + (f": {bad[0].reason}" if bad[0].reason else "")
    waiting = [r for r in rows if r.state in (WAITING, PENDING) and (r.reason or r.note)]
    if not view.progress and waiting:
        first = waiting[0]
        view.progress = f"{first.name}: " + "; ".join(x for x in (first.reason, first.note) if x)
    return view


def run_entries(record: Dict, members: Optional[List[str]] = None) -> List[Dict]:
    return [r for r in record["runs"] if not members or r["member"] in members]


def status(project: Project, record: Dict, transport_for: Callable[[str], Transport]) -> List[RunView]:
    """Every run of the study: fetched ones from their local files, the others from their
    host, one SSH round trip per host (hostctl status of all its runs at once)."""
    views: Dict[str, RunView] = {}
    by_host: Dict[str, List] = {}
    unnoted: Dict[str, Dict] = {}  # runs launched before study.json kept their launch facts
    for entry in record["runs"]:
        run_dir = project.runs / entry["run_id"]
        if not (run_dir / "local.json").is_file():
            facts = launch_facts(entry)
            if facts is None:
                views[entry["run_id"]] = RunView(entry["member"], entry["seed"], entry["run_id"], "not launched")
                continue
            jobs = facts.get("planned_jobs")
            if not _jobs_listed(jobs):
                why = no_record(record["name"], facts["host"])
                views[entry["run_id"]] = RunView(entry["member"], entry["seed"], entry["run_id"], UNKNOWN, reason=why)
                continue
            by_host.setdefault(facts["host"], []).append((entry, facts, jobs))  # the host may still have it
            continue
        other = copy_of(run_dir)
        if other is not None:  # its record is another run's: asking the host by its name would mislead
            views[entry["run_id"]] = RunView(
                entry["member"], entry["seed"], entry["run_id"], UNKNOWN, reason=copied(run_dir, other)
            )
            continue
        local = records.load_record(run_dir)
        if launch_facts(entry) is None:
            unnoted[entry["run_id"]] = local
        jobs = records.planned_jobs(run_dir, local)  # local.json's copy: no YAML to parse
        if local.get("state") == "fetched":
            views[entry["run_id"]] = _view(
                entry, rows_from_local(run_dir, jobs, backends.for_record(local)), "fetched", local.get("host", "")
            )
            continue
        by_host.setdefault(local["host"], []).append((entry, local, jobs))
    for host, items in by_host.items():
        transport = transport_for(host)
        asked = [
            (local["workdir"], local["code_hash"], entry["run_id"], backends.for_record(local))
            for entry, local, _ in items
        ]
        try:
            replies = hostops.remote_status_many(transport, asked)
        except OrchError as exc:
            replies = {entry["run_id"]: exc for entry, _, _ in items}
        for (entry, local, jobs), (_, _, run_id, backend) in zip(items, asked):
            reply = replies.get(run_id)
            here = has_record(project, run_id)
            if isinstance(reply, OrchError):
                views[run_id] = RunView(entry["member"], entry["seed"], run_id, UNKNOWN, reason=reply.message)
            elif not reply.get("exists"):
                views[run_id] = RunView(
                    entry["member"],
                    entry["seed"],
                    run_id,
                    LOST,
                    reason=f"not on {host} (deleted there, or its launch was interrupted)"
                    if here
                    else f"no local record, and not on {host} either: `orch study resume {record['name']}` "
                    "launches it again",
                )
                continue
            else:
                rows = rows_from_remote(reply, jobs, backend)
                if here:
                    states = {r.name: r.state for r in rows}  # `orch runs` and the report read them
                    records.note_states(project.runs / run_id, local, states)
                views[run_id] = _view(entry, rows, host=host)
            if not here:
                view = views[run_id]
                view.reason = "; ".join(x for x in (no_record(record["name"], host), view.reason) if x)
    if unnoted:
        try:  # so that a folder deleted later stays known as launched (never in the way of a status)
            note_launched(project, record["name"], unnoted)
        except OrchError:
            pass
    return [views[e["run_id"]] for e in record["runs"]]


def copied(run_dir: Path, other: str) -> str:
    """Why a study's run folder that holds another run's record is not that run."""
    return (
        f"{run_dir} is a copy of run {other}'s folder (its local.json names {other}), not this run: "
        f"put this run's own folder back, or move the copy out of runs/"
    )


def ready_to_fetch(view: RunView) -> bool:
    return view.state == DONE


def resumable(view: RunView) -> bool:
    """What `orch study resume` relaunches: a run that ended badly, or one with a job that did
    while its others still run (as `orch run EXP --resume RUN` would: it relaunches the jobs
    that ended badly and leaves the running ones be)."""
    return view.state in (FAILED, CANCELLED, LOST, MIXED) or bool(view.to_resume)
