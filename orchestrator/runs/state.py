"""Pure: the host's raw job files -> what a user sees (state, progress, ETA)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional

TERMINAL = ("done", "failed", "cancelled")


@dataclass
class JobRow:
    name: str
    state: str  # pending | waiting | running | done | failed | cancelled | lost
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
    note: str = ""  # e.g. "tmux socket gone": shown after the state
    owner: Optional[int] = None  # pid of the live wrapper that owns the job folder, if any

    def to_dict(self) -> Dict:
        return asdict(self)


def job_row(raw: Dict, now: float, planned_gpu: str = "") -> JobRow:
    """``raw``: one job of a `hostctl status` reply as hostdocs.check_status_reply left it
    (a job whose documents broke the contract carries ``bad`` and shows as unknown)."""
    if raw.get("bad"):
        return JobRow(name=raw["name"], state="unknown", gpu=planned_gpu, reason=raw["bad"],
                      has_results=bool(raw.get("manifest")))
    status = raw.get("status") or {}
    progress = raw.get("progress") or {}
    state = status.get("state") or "pending"
    alive = raw.get("alive", False)
    owner = raw.get("owner")  # a live wrapper holds the job folder's lock (remote/wrapper.py)
    note = ""
    if owner is not None and not alive and state in ("waiting", "running", "pending"):
        # Its tmux session is not visible (the socket was deleted) but the wrapper lives:
        # still running, never lost - resuming it would start a second trainer.
        state = "waiting" if state == "pending" else state
        alive, note = True, "tmux socket gone"
    if state in ("waiting", "running") and not alive:
        # The wrapper would have recorded an end state; its tmux session is gone
        # without one and no wrapper holds the folder (host rebooted, wrapper SIGKILLed).
        state = "lost"
    if state == "pending":
        # No status yet: a live session is a wrapper starting up; no session means the
        # job never started (an interrupted launch) and `--resume` should start it.
        state = "waiting" if alive else "lost"
    started, ended = status.get("started"), status.get("ended")
    elapsed = None
    if started:
        elapsed = (ended or now) - started
    return JobRow(
        name=raw["name"],
        state=state,
        gpu=status.get("gpu", planned_gpu) or planned_gpu,
        phase=progress.get("phase", ""),
        step=progress.get("step"),
        total=progress.get("total"),
        loss=progress.get("loss"),
        tokens_per_s=progress.get("tokens_per_s"),
        eta_s=progress.get("eta_s") if state == "running" else None,
        elapsed_s=elapsed,
        exit_code=status.get("exit_code"),
        reason=status.get("reason", "") or "",
        has_results=bool(raw.get("manifest")),
        note=note,
        owner=owner if isinstance(owner, int) else None,
    )


def rows_from_remote(remote: Dict, planned: List[Dict]) -> List[JobRow]:
    """Rows for every planned job, in plan order (a job with no folder yet is pending)."""
    by_name = {j["name"]: j for j in remote.get("jobs", [])}
    now = remote.get("now", 0.0)
    rows = []
    for job in planned:
        raw = by_name.get(job["name"], {"name": job["name"]})
        rows.append(job_row(raw, now, job.get("gpu", "")))
    return rows


def run_state(rows: List[JobRow]) -> str:
    states = {r.state for r in rows}
    if not rows:
        return "empty"
    if states == {"done"}:
        return "done"
    if states & {"running", "waiting", "pending"}:
        return "running"
    if "failed" in states or "lost" in states:
        return "failed"
    if "cancelled" in states:
        return "cancelled"
    return "mixed"


def listed_state(recorded: Optional[str], rows: List[JobRow]) -> Optional[str]:
    """The state `orch runs` shows, from local.json's state and the rows' last known states.

    Until results are fetched, local.json says "launched" whatever happened since; the job
    states `orch status` last saw (or fetched status files) are newer, so they decide once
    every job has one. Fetched runs stay "fetched"; a partial fetch shows a failure.
    """
    states = {r.state for r in rows}
    if recorded in (None, "launched") and rows and "unknown" not in states:
        return run_state(rows)
    if recorded != "fetched" and states & {"failed", "cancelled", "lost"}:
        return "failed" if states & {"failed", "lost"} else "cancelled"
    return recorded


def rows_from_local(run_dir: Path, planned: List[Dict]) -> List[JobRow]:
    """Rows from fetched files (for `orch runs` without contacting the host)."""
    from orchestrator.runs.hostdocs import BadDocument, check_status, read_local

    rows = []
    for job in planned:
        d = run_dir / "jobs" / job["name"]
        raw: Dict = {"name": job["name"], "alive": False, "manifest": (d / "manifest.json").is_file()}
        try:
            raw["status"] = read_local(d / "status.json", check_status)
        except BadDocument as exc:
            raw["status"], raw["bad"] = None, f"bad status.json: {exc}"
        row = job_row(raw, 0.0, job.get("gpu", ""))
        if raw["status"] is None:
            row.state = "unknown"
        elif row.state == "lost":
            row.state = (raw["status"] or {}).get("state", "unknown")  # last known, not fetched since
        rows.append(row)
    return rows


def fmt_duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    seconds = int(max(0, seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
