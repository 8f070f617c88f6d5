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
import stat
import subprocess
import sys
import time
from typing import Dict, List, Optional

from remote.wrapper import (LOW_SPACE_BYTES, TERMINAL, free_bytes, no_space_reason, read_dict, read_json,
                            write_json)


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
            "manifest": os.path.exists(os.path.join(d, "manifest.json")),
            "log_bytes": os.path.getsize(log) if os.path.exists(log) else 0,
        })
    return {"run_dir": run_dir, "exists": os.path.isdir(run_dir), "now": time.time(), "jobs": jobs}


def cmd_launch(opts) -> dict:
    """Start each planned job in its own detached tmux session; report what happened."""
    plan = json.load(sys.stdin)
    results = []
    alive = set(live_sessions(opts.sock))
    for item in plan["jobs"]:
        name, session, job_dir = item["name"], item["session"], item["job_dir"]
        if session in alive:
            results.append({"name": name, "started": False, "error": "already running"})
            continue
        os.makedirs(job_dir, exist_ok=True)
        # Set the previous attempt's state aside (not deleted): if tmux refuses to start
        # the job, it is put back and the run's record stays truthful.
        status_path = os.path.join(job_dir, "status.json")
        previous = status_path + ".previous"
        if os.path.exists(status_path):
            os.replace(status_path, previous)
        proc = tmux(opts.sock, "new-session", "-d", "-s", session, "-c", item["cwd"], item["command"])
        # new-session returns 0 even when the command dies at once: look again.
        ok = proc.returncode == 0
        error = proc.stderr.strip()
        if ok and tmux(opts.sock, "has-session", "-t", "=" + session).returncode != 0:
            time.sleep(0.2)
            status = read_dict(status_path)
            ok = status.get("state") in ("running", "waiting", "done", "failed")
            error = "" if ok else "tmux session ended at once (see log.txt)"
        if ok:
            for stale in ("cancel", "status.json.previous"):
                try:
                    os.remove(os.path.join(job_dir, stale))
                except FileNotFoundError:
                    pass
        elif os.path.exists(previous) and not os.path.exists(status_path):
            os.replace(previous, status_path)
        free = free_bytes(job_dir)
        if not ok and free is not None and free < LOW_SPACE_BYTES:
            error = f"{no_space_reason(job_dir)}" + (f": {error}" if error else "")
        results.append({"name": name, "started": ok, "error": error})
    return {"jobs": results}


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
        # The wrapper records `cancelled` itself on SIGHUP; give it a moment - unless its
        # session was already gone (a lost job): then nobody is left to write it.
        deadline = time.time() + (15 if was_alive else 0)
        while time.time() < deadline:
            status = read_dict(os.path.join(d, "status.json"))
            if status.get("state") in TERMINAL:
                break
            time.sleep(0.2)
        if status.get("state") not in TERMINAL:
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
