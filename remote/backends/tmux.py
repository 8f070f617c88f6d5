"""tmux: each job in its own detached session of one tmux server per workdir.

tmux only hosts the process: the wrapper inside records how the job ends, so a session
that vanishes without an end state is a job nobody holds any more (docs/CONTRACT.md).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import subprocess
from typing import Dict, List, Optional

from remote.backends.base import Backend, BackendError


def tmux_socket(workdir: str) -> str:
    """<workdir>/tmux.sock, unless that is too long for a unix socket (~107 bytes): then
    /tmp/orch-<hash of that path>.sock, still one per workdir.  A pure function of the
    absolute workdir, so the controller computes the same path (bootstrap, tests)."""
    path = posixpath.join(workdir, "tmux.sock")
    if len(path.encode()) <= 100:
        return path
    return f"/tmp/orch-{hashlib.sha256(path.encode()).hexdigest()[:16]}.sock"


def session_name(run_id: str, job: str) -> str:
    """The session of a run's job.  No '.' or ':' in names: tmux rewrites them, and then
    a live job would look gone (orchestrator/config/project.py keeps names free of them)."""
    return f"orch-{run_id}-{job}"


def current_server() -> str:
    """The socket of the tmux server this process runs in ("" outside tmux)."""
    tmux = os.environ.get("TMUX", "")
    return tmux.rsplit(",", 2)[0] if tmux.count(",") >= 2 else ""


def start_session(server: str, name: str, command: str) -> bool:
    """Start COMMAND (shell text) as the detached session NAME of the tmux server SERVER (a
    socket path); False when it did not start (tmux missing, a session of that name)."""
    try:
        proc = subprocess.run(
            ["tmux", "-S", server, "new-session", "-d", "-s", name, command], capture_output=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return proc.returncode == 0


class TmuxBackend(Backend):
    name = "tmux"
    starts_at_once = True

    def __init__(self, workdir: str, options: Optional[dict] = None):
        super().__init__(workdir, options)
        self.sock = tmux_socket(os.path.abspath(workdir))

    def tmux(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-S", self.sock, *args], capture_output=True, text=True)

    def sessions(self) -> List[str]:
        if not os.path.exists(self.sock):
            return []
        proc = self.tmux("list-sessions", "-F", "#{session_name}")
        return proc.stdout.split() if proc.returncode == 0 else []

    def submit(self, job: dict, handles: Dict[str, str]) -> str:
        session = job.get("session") or session_name(job["run_id"], job["name"])
        if session in self.sessions():
            raise BackendError("already running")
        # No `-c DIR`: tmux expands #(...) in it.  The command does its own `cd`.
        proc = self.tmux("new-session", "-d", "-s", session, job["command"])
        if proc.returncode != 0:
            raise BackendError(proc.stderr.strip() or "tmux new-session failed")
        return session

    def alive(self, handles: Dict[str, str]) -> Dict[str, dict]:
        live = set(self.sessions())
        return {name: {"alive": handle in live, "session": handle} for name, handle in handles.items()}

    def stop(self, handle: str) -> None:
        self.tmux("kill-session", "-t", "=" + handle)

    def handle_before_records(self, run_id: str, job: str) -> Optional[str]:
        return session_name(run_id, job)  # a session's name is its run's and job's

    def describe(self, handle: str) -> str:
        return f"tmux -S {self.sock} attach -t {handle}"

    def required_tools(self) -> List[str]:
        return ["tmux"]
