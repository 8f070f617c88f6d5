"""A study's record and the state of its runs: what `orch study status` reads and shows.

Kept apart from study.py (launch, resume, report) so that `orch study status` loads no
experiment or study config machinery (no YAML, no pydantic): the record is JSON, the run
states come from local.json files and one host round trip per host (issue 14's status
benchmark; commands/quickstatus.py's quick path).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

from orchestrator import backends
from orchestrator.config.project import Project, copy_of
from orchestrator.contract import records
from orchestrator.errors import ExitCode, OrchError
from orchestrator.runs import hostctl as hostops
from orchestrator.runs.state import rows_from_local, rows_from_remote, shown_state, unanswered
from orchestrator.transport.base import Transport

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

    def to_dict(self) -> Dict:
        return asdict(self)


def _view(entry: Dict, rows, local_state: Optional[str] = None, host: str = "") -> RunView:
    view = RunView(entry["member"], entry["seed"], entry["run_id"], local_state or shown_state(rows), host=host)
    view.jobs = len(rows)
    view.ran_on_cpu = [r.name for r in rows if r.gpu_unused]
    view.note = unanswered(rows)
    view.jobs_done = sum(r.state == "done" for r in rows)
    running = [r for r in rows if r.state == "running"]
    if running:
        slow = min(running, key=lambda r: (r.step or 0) / (r.total or 1))
        view.progress = f"{slow.name} {slow.phase or 'running'}" + (f" {slow.step}/{slow.total}" if slow.total else "")
        etas = [r.eta_s for r in running if r.eta_s is not None]
        view.eta_s = max(etas) if etas else None
    bad = [r for r in rows if r.state in ("failed", "lost", "cancelled", "unknown")]
    if bad:
        view.reason = f"{bad[0].name} {bad[0].state}" + (f": {bad[0].reason}" if bad[0].reason else "")
    waiting = [r for r in rows if r.state in ("waiting", "pending") and (r.reason or r.note)]
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
    for entry in record["runs"]:
        run_dir = project.runs / entry["run_id"]
        if not (run_dir / "local.json").is_file():
            views[entry["run_id"]] = RunView(entry["member"], entry["seed"], entry["run_id"], "not launched")
            continue
        other = copy_of(run_dir)
        if other is not None:  # its record is another run's: asking the host by its name would mislead
            views[entry["run_id"]] = RunView(
                entry["member"], entry["seed"], entry["run_id"], "unknown", reason=copied(run_dir, other)
            )
            continue
        local = records.load_record(run_dir)
        jobs = records.planned_jobs(run_dir, local)  # local.json's copy: no YAML to parse
        if local.get("state") == "fetched":
            views[entry["run_id"]] = _view(entry, rows_from_local(run_dir, jobs), "fetched", local.get("host", ""))
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
            if isinstance(reply, OrchError):
                views[run_id] = RunView(entry["member"], entry["seed"], run_id, "unknown", reason=reply.message)
            elif not reply.get("exists"):
                views[run_id] = RunView(
                    entry["member"],
                    entry["seed"],
                    run_id,
                    "lost",
                    reason=f"not on {host} (deleted there, or its launch was interrupted)",
                )
            else:
                rows = rows_from_remote(reply, jobs, backend)
                states = {r.name: r.state for r in rows}  # `orch runs` and the report read them
                records.note_states(project.runs / run_id, local, states)
                views[run_id] = _view(entry, rows, host=host)
    return [views[e["run_id"]] for e in record["runs"]]


def copied(run_dir: Path, other: str) -> str:
    """Why a study's run folder that holds another run's record is not that run."""
    return (
        f"{run_dir} is a copy of run {other}'s folder (its local.json names {other}), not this run: "
        f"put this run's own folder back, or move the copy out of runs/"
    )


def ready_to_fetch(view: RunView) -> bool:
    return view.state == "done"


def resumable(view: RunView) -> bool:
    return view.state in ("failed", "cancelled", "lost", "mixed")
