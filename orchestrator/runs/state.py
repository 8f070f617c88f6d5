"""Pure: the host's raw job files -> what a user sees (state, progress, ETA)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from remote.jobstate import (
    ACTIVE,
    CANCELLED,
    DONE,
    FAILED,
    LOST,
    PENDING,
    RUNNING,
    UNKNOWN,
    WAITING,
    elapsed_s,
    is_gpu,
)

# A run's own states (run_state): a job's word when every job agrees on it, or one of these.
EMPTY = "empty"  # no jobs planned
MIXED = "mixed"  # none of those: the jobs disagree, none failed, was lost or cancelled (done + unknown)


@dataclass
class StatusRow:
    """One job as `orch status` shows it: its state (remote/jobstate.py) and last progress."""

    name: str
    state: str  # one of remote.jobstate.SHOWN
    gpu: str = ""
    phase: str = ""
    step: Optional[int] = None
    total: Optional[int] = None
    loss: Optional[float] = None
    tokens_per_s: Optional[float] = None
    eta_s: Optional[float] = None
    elapsed_s: Optional[float] = None
    exit_code: Optional[int] = None
    reason: str = ""
    has_results: bool = False
    note: str = ""  # e.g. "tmux socket gone", or what a scheduler says of it: shown after the state
    owner: Optional[int] = None  # pid of the live wrapper that owns the job folder, if any
    backend: Dict = field(default_factory=dict)  # what the job backend knows (a session, a queue state)
    requeues: int = 0  # times a scheduler stopped and reran the job (Slurm requeues)
    device: str = ""  # what the job's last progress line says it ran on ("cuda", "cpu"), if it says

    @property
    def gpu_unused(self) -> bool:
        """Given a GPU, but running on the CPU: asked for (train.device: cpu), or torch cannot use
        the GPU (train.device: auto; remote/train.py says why in the job's log)."""
        return is_gpu(self.gpu) and self.device == "cpu"

    def to_dict(self) -> Dict:
        return asdict(self)


def job_row(raw: Dict, now: float, planned_gpu: str, backend) -> StatusRow:
    """``raw``: one job of a `hostctl status` reply as hostdocs.check_status_reply left it
    (a job whose documents broke the contract carries ``bad`` and shows as unknown).
    ``backend``: the run's JobBackend, which words what its scheduler knows of a job."""
    if raw.get("bad"):
        return StatusRow(
            name=raw["name"], state=UNKNOWN, gpu=planned_gpu, reason=raw["bad"], has_results=bool(raw.get("manifest"))
        )
    # No status.json (queued again after a --resume): what hostctl carried from the job's
    # earlier attempts (its requeues, its run time) stands in.
    status = raw.get("status") or {k: raw[k] for k in ("requeues", "earlier_s") if k in raw}
    progress = raw.get("progress") or {}
    info = raw.get("backend") or {}
    state = status.get("state") or PENDING
    alive = raw.get("alive", False)  # the job backend still holds it (a tmux session, a queued Slurm job)
    owner = raw.get("owner")  # a live wrapper holds the job folder's lock (remote/wrapper.py)
    note = backend.detail(info) if alive else ""
    if owner is not None and not alive and state in ACTIVE:
        # Its backend does not show it (a deleted tmux socket) but the wrapper lives:
        # still running, never lost - resuming it would start a second trainer.
        state = WAITING if state == PENDING else state
        alive, note = True, backend.lost_sight
    reason = status.get("reason", "") or ""
    if state in ACTIVE and not alive:
        # The wrapper would have recorded an end state; the backend no longer holds the job
        # and no wrapper holds the folder (host rebooted, wrapper SIGKILLed, an interrupted
        # launch that never started it): `--resume` may start it again.
        state, reason = LOST, lost_reason(status, info, backend)
    return StatusRow(
        name=raw["name"],
        state=state,
        gpu=status.get("gpu", planned_gpu) or planned_gpu,
        phase=progress.get("phase", ""),
        step=progress.get("step"),
        total=progress.get("total"),
        loss=progress.get("loss"),
        tokens_per_s=progress.get("tokens_per_s"),
        eta_s=progress.get("eta_s") if state == RUNNING else None,
        elapsed_s=elapsed_s(status, now),
        exit_code=status.get("exit_code"),
        reason=reason,
        has_results=bool(raw.get("manifest")),
        note=note,
        owner=owner if isinstance(owner, int) else None,
        backend=dict(info),
        requeues=status.get("requeues") or 0,
        device=progress.get("device") or "",
    )


def lost_reason(status: Dict, info: Dict, backend) -> str:
    """Why a job is lost, in words: what its backend no longer shows (``backend.gone``) and
    the last record its folder has, for a person deciding whether to `--resume` it."""
    gone = backend.gone(info)
    if not gone:  # no handle recorded: the launch never handed it to the backend
        return "it never started: the launch did not start it (`--resume` starts it)"
    if not status.get("state"):
        return f"{gone} and it left no end record: never started"
    said = str(status.get("reason") or "")
    return f"{gone} and it left no end record: last record: {status['state']}" + (f" ({said})" if said else "")


def never_starting(rows: List[StatusRow], backend) -> List[str]:
    """The jobs the scheduler holds queued and will never start ("JOB (why)"): a run with one
    cannot end, so a watch stops there instead of waiting for good."""
    return [
        f"{r.name} ({r.note})" if r.note else r.name
        for r in rows
        if r.state == PENDING and backend.never_starts(r.backend)
    ]


def rows_from_remote(remote: Dict, planned: List[Dict], backend) -> List[StatusRow]:
    """Rows for every planned job, in plan order (a job with no folder yet is lost: never
    started, so `--resume` starts it)."""
    by_name = {j["name"]: j for j in remote.get("jobs", [])}
    now = remote.get("now", 0.0)
    rows = []
    for job in planned:
        raw = by_name.get(job["name"], {"name": job["name"]})
        rows.append(job_row(raw, now, job.get("gpu", ""), backend))
    return rows


def run_state(rows: List[StatusRow]) -> str:
    states = {r.state for r in rows}
    if not rows:
        return EMPTY
    if states == {DONE}:
        return DONE
    if states & set(ACTIVE):
        return RUNNING
    if FAILED in states or LOST in states:
        return FAILED
    if CANCELLED in states:
        return CANCELLED
    return MIXED


def shown_state(rows: List[StatusRow]) -> str:
    """run_state in words for a person: a run whose unfinished jobs are all queued (pending)
    or all wait (for a job they require, a GPU, a requeue) says so instead of "running".
    Scripts keep run_state (`status --json`'s "state", --watch's end): "running" there
    means "not ended yet", which a queued run is."""
    state = run_state(rows)
    if state != RUNNING or any(r.state == RUNNING for r in rows):
        return state
    idle = [r for r in rows if r.state in ACTIVE]
    return PENDING if all(r.state == PENDING for r in idle) else WAITING


def listed_state(recorded: Optional[str], rows: List[StatusRow]) -> Optional[str]:
    """The state `orch runs` shows, from local.json's state and the rows' last known states.

    Until results are fetched, local.json says "launched" whatever happened since; the job
    states `orch status` last saw (or fetched status files) are newer, so they decide once
    every job has one. Fetched runs stay "fetched"; a partial fetch shows a failure.
    """
    states = {r.state for r in rows}
    if recorded in (None, "launched") and rows and UNKNOWN not in states:
        return shown_state(rows)
    if recorded != "fetched" and states & {FAILED, CANCELLED, LOST}:
        return FAILED if states & {FAILED, LOST} else CANCELLED
    return recorded


def rows_from_local(run_dir: Path, planned: List[Dict], backend) -> List[StatusRow]:
    """Rows from fetched files (for `orch runs` without contacting the host)."""
    from orchestrator.contract.hostdocs import BadDocument, check_manifest, check_status, read_local

    rows = []
    for job in planned:
        d = run_dir / "jobs" / job["name"]
        raw: Dict = {"name": job["name"], "alive": False, "manifest": (d / "manifest.json").is_file()}
        try:
            raw["status"] = read_local(d / "status.json", check_status)
        except BadDocument as exc:
            raw["status"], raw["bad"] = None, f"bad status.json: {exc}"
        row = job_row(raw, 0.0, job.get("gpu", ""), backend)
        if raw["status"] is None:
            row.state = UNKNOWN
        elif row.state == LOST:
            row.state = (raw["status"] or {}).get("state", UNKNOWN)  # last known, not fetched since
            row.reason = str((raw["status"] or {}).get("reason") or "")
        if raw["manifest"]:  # what the job ran on, as its last progress line says it on the host
            try:
                row.device = str((read_local(d / "manifest.json", check_manifest) or {}).get("device") or "")
            except BadDocument:
                pass  # `orch eval` says what is wrong with it
        rows.append(row)
    return rows


def results_missing(run_dir: Path, planned: List[Dict]) -> List[str]:
    """The jobs of a fetched run whose results are not in RUN_DIR/jobs any more (removed by
    hand): those that score (the score job of an adaptive-draws run, else every job but
    pretrain) without a manifest.json.  `orch eval` refuses such a run; `orch runs` says so."""
    from orchestrator.contract.hostdocs import scoring_roles

    roles = scoring_roles(planned)
    return [
        j["name"]
        for j in planned
        if j.get("role", "class") in roles and not (run_dir / "jobs" / j["name"] / "manifest.json").is_file()
    ]


def fmt_duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def unanswered(rows: List[StatusRow]) -> str:
    """What a scheduler that could not be asked said (slurmctld down), "" when it answered:
    the rows then show what the job files say, and the jobs keep running without it.  The
    words are the host's, printed on a line of their own: on one line, controls escaped."""
    from orchestrator.terminal import visible

    for r in rows:
        said = r.backend.get("unreachable") if isinstance(r.backend, dict) else None
        if said:
            return (
                f"{visible(str(said))}: the states shown are what the job files say; the jobs keep running; "
                "ask again later"
            )
    return ""
