"""Host-side helper the controller calls over SSH: one round trip per operation.

    python3 -m remote.hostctl status --run-dir R --workdir W
    python3 -m remote.hostctl launch --workdir W < plan.json
    python3 -m remote.hostctl cancel --run-dir R --workdir W [--job J]...

Standard library only (any python3 on the host will do; torch is not needed).  Output is
one JSON document on stdout.  Commands are run as argv lists, never through a shell;
the one shell string, the job command that tmux runs, was quoted by the controller.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import stat
import subprocess
import sys
import time
from typing import Dict, List, Optional

from remote.wrapper import (LOW_SPACE_BYTES, TERMINAL, free_bytes, lock_holder, no_space_reason, read_dict,
                            read_json, write_json)

# How long launch waits for a new wrapper's first status.json (it writes it first thing).
START_WAIT_S = 10.0


def tmux_socket(workdir: str) -> str:
    """<workdir>/tmux.sock, unless that is too long for a unix socket (~107 bytes): then
    /tmp/orch-<hash of that path>.sock, still one per workdir.  A pure function of the
    absolute workdir, so the controller (bootstrap) computes the same path."""
    import hashlib
    import posixpath

    path = posixpath.join(workdir, "tmux.sock")
    if len(path.encode()) <= 100:
        return path
    return f"/tmp/orch-{hashlib.sha256(path.encode()).hexdigest()[:16]}.sock"


def tmux(sock: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["tmux", "-S", sock, *args], capture_output=True, text=True)


def live_sessions(sock: str) -> List[str]:
    if not os.path.exists(sock):
        return []
    proc = tmux(sock, "list-sessions", "-F", "#{session_name}")
    return proc.stdout.split() if proc.returncode == 0 else []


def last_line(path: str, max_bytes: int = 8192) -> Optional[dict]:
    """The last complete JSON line of a file, reading only its tail."""
    try:
        # O_NONBLOCK and a regular-file check: a fifo in a job folder must not hang status.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        size = os.fstat(fd).st_size
        os.lseek(fd, max(0, size - max_bytes), os.SEEK_SET)
        lines = os.read(fd, max_bytes).splitlines()
    except OSError:
        return None
    finally:
        os.close(fd)
    for raw in reversed(lines):
        try:
            return json.loads(raw)
        except ValueError:
            continue
    return None


def session_name(run_id: str, job: str) -> str:
    return f"orch-{run_id}-{job}"


def cmd_status(opts) -> dict:
    run_dir = opts.run_dir
    run_id = os.path.basename(os.path.normpath(run_dir))
    jobs_dir = os.path.join(run_dir, "jobs")
    alive = set(live_sessions(opts.sock))
    jobs = []
    names = sorted(os.listdir(jobs_dir)) if os.path.isdir(jobs_dir) else []
    for name in names:
        d = os.path.join(jobs_dir, name)
        if not os.path.isdir(d):
            continue
        log = os.path.join(d, "log.txt")
        jobs.append({
            "name": name,
            "status": read_json(os.path.join(d, "status.json")),
            "progress": last_line(os.path.join(d, "progress.jsonl")),
            "alive": session_name(run_id, name) in alive,
            # The pid of the live wrapper that owns the folder (None: nobody): a job whose
            # tmux socket was deleted is still running, not lost.
            "owner": lock_holder(d),
            "manifest": os.path.exists(os.path.join(d, "manifest.json")),
            "log_bytes": os.path.getsize(log) if os.path.exists(log) else 0,
        })
    return {"run_dir": run_dir, "exists": os.path.isdir(run_dir), "now": time.time(), "jobs": jobs}


def cmd_launch(opts) -> dict:
    """Start each planned job in its own detached tmux session; report what happened.

    A job counts as started once its wrapper has written status.json (its first act), so
    a wrapper that cannot even start - a code snapshot gone, a folder owned by another
    live wrapper - is reported, not announced as launched."""
    plan = json.load(sys.stdin)
    results: Dict[str, dict] = {}
    alive = set(live_sessions(opts.sock))
    launched = []
    for item in plan["jobs"]:
        name, session, job_dir = item["name"], item["session"], item["job_dir"]
        if session in alive:
            results[name] = {"name": name, "started": False, "error": "already running"}
            continue
        owner = lock_holder(job_dir)
        if owner is not None:
            results[name] = {"name": name, "started": False,
                             "error": f"job {name} is still running: its wrapper (pid {owner}) holds {job_dir}/lock "
                                      "(its tmux session is not visible, e.g. the tmux socket was deleted)"}
            continue
        os.makedirs(job_dir, exist_ok=True)
        # Set the previous attempt's state aside (not deleted): if the job does not start,
        # it is put back and the run's record stays truthful.
        status_path = os.path.join(job_dir, "status.json")
        if os.path.exists(status_path):
            os.replace(status_path, status_path + ".previous")
        # No `-c DIR`: tmux expands #(...) in it.  The command does its own `cd`.
        proc = tmux(opts.sock, "new-session", "-d", "-s", session, item["command"])
        if proc.returncode != 0:
            results[name] = {"name": name, "started": False, "error": proc.stderr.strip() or "tmux new-session failed"}
            _put_back(job_dir)
            continue
        launched.append(item)
    deadline = time.time() + START_WAIT_S
    pending = list(launched)
    while pending:
        still = []
        for item in pending:
            verdict = _started(opts.sock, item)
            if verdict is None:
                still.append(item)
            else:
                results[item["name"]] = verdict
        pending = still
        if pending:
            if time.time() >= deadline:
                break
            time.sleep(0.05)
    for item in pending:  # slow to start but its session is alive: it is on its way
        results[item["name"]] = {"name": item["name"], "started": True, "error": ""}
    for item in launched:
        job_dir = item["job_dir"]
        if results[item["name"]]["started"]:
            for stale in ("cancel", "status.json.previous"):
                try:
                    os.remove(os.path.join(job_dir, stale))
                except FileNotFoundError:
                    pass
        else:
            _put_back(job_dir)
    for item in plan["jobs"]:  # a job that did not start on a full disk says so
        result = results[item["name"]]
        free = None if result["started"] else free_bytes(item["job_dir"])
        if free is not None and free < LOW_SPACE_BYTES:
            result["error"] = no_space_reason(item["job_dir"]) + (f": {result['error']}" if result["error"] else "")
    return {"jobs": [results[item["name"]] for item in plan["jobs"]]}


def _started(sock: str, item: dict) -> Optional[dict]:
    """Whether the job's new wrapper is up: a result, or None while we cannot tell yet."""
    name, job_dir = item["name"], item["job_dir"]
    status_path = os.path.join(job_dir, "status.json")
    gone = tmux(sock, "has-session", "-t", "=" + item["session"]).returncode != 0
    status = read_dict(status_path) or None  # read after has-session: a wrapper that wrote it and ended counts
    if status is not None:
        state = status.get("state")
        if state in ("failed", "cancelled"):
            return {"name": name, "started": False, "error": f"{state} at once: {status.get('reason') or 'see log.txt'}"}
        return {"name": name, "started": True, "error": ""}
    if gone:
        owner = lock_holder(job_dir)
        why = (f"its folder is owned by another live wrapper (pid {owner})" if owner is not None
               else "the wrapper did not start (see log.txt; is the code snapshot there?)")
        return {"name": name, "started": False, "error": f"tmux session ended at once: {why}"}
    return None


def _put_back(job_dir: str) -> None:
    status_path = os.path.join(job_dir, "status.json")
    previous = status_path + ".previous"
    if os.path.exists(previous) and not os.path.exists(status_path):
        os.replace(previous, status_path)


def cmd_cancel(opts) -> dict:
    run_dir = opts.run_dir
    run_id = os.path.basename(os.path.normpath(run_dir))
    jobs_dir = os.path.join(run_dir, "jobs")
    if opts.job:
        names = opts.job
    else:
        names = sorted(os.listdir(jobs_dir)) if os.path.isdir(jobs_dir) else []
    results = []
    alive = set(live_sessions(opts.sock))
    for name in names:
        d = os.path.join(jobs_dir, name)
        status = read_dict(os.path.join(d, "status.json"))
        if status.get("state") in TERMINAL:
            results.append({"name": name, "state": status["state"], "changed": False})
            continue
        os.makedirs(d, exist_ok=True)
        open(os.path.join(d, "cancel"), "w").close()
        session = session_name(run_id, name)
        was_alive = session in alive
        tmux(opts.sock, "kill-session", "-t", "=" + session)
        # A wrapper whose tmux session we cannot see (its socket deleted) still owns the
        # folder: signal it directly - only that pid, and only while it holds the lock.
        owner = lock_holder(d)
        signalled = False
        if owner and owner == status.get("pid"):
            try:
                os.kill(owner, signal.SIGTERM)
                signalled = True
            except ProcessLookupError:
                pass
        # The wrapper records `cancelled` itself; give it a moment - unless nobody is left
        # to write it (a lost job).
        deadline = time.time() + (15 if (was_alive or signalled or owner is not None) else 0)
        while time.time() < deadline:
            status = read_dict(os.path.join(d, "status.json"))
            if status.get("state") in TERMINAL and lock_holder(d) is None:
                break
            time.sleep(0.2)
        if status.get("state") not in TERMINAL:
            owner = lock_holder(d)
            if owner is not None:
                results.append({"name": name, "state": status.get("state") or "running", "changed": False,
                                "error": f"its wrapper (pid {owner}) is still stopping"})
                continue
            status.update(state="cancelled", ended=time.time(), reason="cancelled by the user (wrapper gone)")
            write_json(os.path.join(d, "status.json"), status)
        results.append({"name": name, "state": status["state"], "changed": True})
    return {"jobs": results}


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="remote.hostctl")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("status")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--workdir", required=True)
    p = sub.add_parser("launch")
    p.add_argument("--workdir", required=True)
    p = sub.add_parser("cancel")
    p.add_argument("--run-dir", required=True)
    p.add_argument("--workdir", required=True)
    p.add_argument("--job", action="append", default=[])
    opts = parser.parse_args(argv)
    opts.sock = tmux_socket(os.path.abspath(opts.workdir))
    handlers: Dict = {"status": cmd_status, "launch": cmd_launch, "cancel": cmd_cancel}
    json.dump(handlers[opts.cmd](opts), sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
