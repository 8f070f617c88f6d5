"""Host-side helper the controller calls over SSH: one round trip per operation.

    python3 -S -m remote.hostctl status --run-dir R --workdir W [--backend B]
    python3 -S -m remote.hostctl status-all --run-dir R [--run-dir R]... --workdir W [--backend B]
    python3 -S -m remote.hostctl launch --workdir W < plan.json
    python3 -S -m remote.hostctl cancel --run-dir R --workdir W [--job J]... [--backend B]
    python3 -S -m remote.hostctl follow --job-dir D [--job-dir D]... [--lines N] [--backend B] [--no-follow]

Standard library only (any python3 on the host will do; torch is not needed).  status,
launch and cancel print one JSON document on stdout (docs/CONTRACT.md, "hostctl");
follow streams log text until the jobs end (--no-follow: their last lines, once).  What is
the same for every way of running a job lives here (the job folder, status.json, the
wrapper's lock, the cancel marker); how a job is started, found and stopped is the job
backend's (remote/backends/).  Commands are run as argv lists, never through a shell; the
one shell string, the job command the backend starts, was quoted by the controller.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional

from remote import backends
from remote.files import BadFile, atomic_write_json, load_json, open_regular, parse_json, read_dict
from remote.jobstate import DONE, TERMINAL, dependency_dir
from remote.wrapper import LOW_SPACE_BYTES, earlier_run_s, free_bytes, lock_holder, no_space_reason

# How long launch waits for a new wrapper's first status.json (it writes it first thing).
START_WAIT_S = 10.0
HANDLE_FILE = "backend.json"  # which backend started the job, and its handle there


def last_line(path: str, max_bytes: int = 8192) -> Optional[dict]:
    """The last complete line of a JSONL file as JSON, reading only its tail; None when
    the file is absent or holds no complete line yet.  BadFile when the file is not a
    regular file (a fifo must not hang status) or its last complete line is not JSON:
    an older line is never passed off as the job's latest progress.  A trailing fragment
    without its newline (a line being appended, or cut off by a crash) is not a line yet."""
    fd = open_regular(path)
    if fd is None:
        return None
    try:
        # From one byte before the tail: whether that byte is a newline tells a whole
        # first line from a cut one.
        start = max(0, os.fstat(fd).st_size - max_bytes - 1)
        os.lseek(fd, start, os.SEEK_SET)
        data = os.read(fd, max_bytes + 1)
    except OSError as exc:
        raise BadFile(f"unreadable ({exc.strerror})") from None
    finally:
        os.close(fd)
    data = data[: data.rfind(b"\n") + 1]  # complete lines only
    if start > 0:
        data = data[data.find(b"\n") + 1 :]  # the line the tail starts in the middle of
    lines = [line for line in data.splitlines() if line.strip()]
    if not lines:
        if start > 0:
            raise BadFile(f"its last line is longer than {max_bytes} bytes")
        return None
    try:
        return parse_json(lines[-1])
    except BadFile as exc:
        raise BadFile(f"last line {exc}") from None


def _read(reader, path: str):
    """(document, None), or (None, what is wrong) for a file that is there but unreadable."""
    try:
        return reader(path), None
    except BadFile as exc:
        return None, str(exc)


def job_handle(job_dir: str, backend: backends.Backend, run_id: str) -> Optional[str]:
    """The handle the backend gave the job when it started it (None: never started).
    A tmux job started before backend.json existed is found by its session name."""
    doc = read_dict(os.path.join(job_dir, HANDLE_FILE))
    if doc.get("backend") == backend.name and isinstance(doc.get("handle"), str):
        return doc["handle"]
    if not doc:
        return backend.handle_before_records(run_id, os.path.basename(os.path.normpath(job_dir)))
    return None


def _job_dirs(run_dir: str, names: List[str]) -> List[str]:
    jobs_dir = os.path.join(run_dir, "jobs")
    if not names:
        names = sorted(os.listdir(jobs_dir)) if os.path.isdir(jobs_dir) else []
    return [os.path.join(jobs_dir, n) for n in names]


def cmd_status(opts) -> dict:
    return run_states([opts.run_dir], backends.get(opts.backend, opts.workdir))[0]


def cmd_status_all(opts) -> dict:
    """`status` of many runs (a study's) in one process: the backend is asked once for the
    jobs of all of them (one `tmux list-sessions`, one `squeue`), not once per run."""
    return {"replies": run_states(opts.run_dir, backends.get(opts.backend, opts.workdir))}


def run_states(run_dirs: List[str], backend: backends.Backend) -> List[dict]:
    found = []
    handles = {}  # "<i>/<job>" -> handle: job names repeat across runs, the keys must not
    for i, run_dir in enumerate(run_dirs):
        run_id = os.path.basename(os.path.normpath(run_dir))
        dirs = [d for d in _job_dirs(run_dir, []) if os.path.isdir(d)]
        for d in dirs:
            handle = job_handle(d, backend, run_id)
            if handle is not None:
                handles[f"{i}/{os.path.basename(d)}"] = handle
        found.append((run_dir, dirs))
    held = backend.alive(handles) if handles else {}
    return [
        {
            "run_dir": run_dir,
            "exists": os.path.isdir(run_dir),
            "now": time.time(),
            "backend": backend.name,
            "jobs": [
                _job_state(d, held.get(key), backend, handles.get(key))
                for d in dirs
                for key in [f"{i}/{os.path.basename(d)}"]
            ],
        }
        for i, (run_dir, dirs) in enumerate(found)
    ]


def _job_state(
    d: str, held: Optional[dict], backend: Optional[backends.Backend] = None, handle: Optional[str] = None
) -> dict:
    info = dict(held or {"alive": False})
    alive = bool(info.pop("alive", False))
    ended = info.pop("ended", None)
    # "No status.json" and "a status.json that cannot be read" are different answers:
    # the first is a job not started yet (or lost), the second is unknown (CONTRACT.md).
    status, status_error = _read(load_json, os.path.join(d, "status.json"))
    progress, progress_error = _read(last_line, os.path.join(d, "progress.jsonl"))
    owner = lock_holder(d)
    recordable = status_error is None and (status is None or isinstance(status, dict))
    open_end = not alive and owner is None and recordable and (status or {}).get("state") not in TERMINAL
    if open_end and not ended and backend and handle and "state" not in info and not info.get("unreachable"):
        # The backend has forgotten the job (Slurm after MinJobAge, with no accounting to
        # ask): what the scheduler left in the job folder may still say how it ended.
        since = (status or {}).get("started") or (status or {}).get("created") or 0
        ended = backend.ended_by_files(d, handle, since if isinstance(since, (int, float)) else 0)
        if not ended and status is None:
            # Never started, and forgotten: Slurm cancels a job whose afterok dependency
            # failed (DependencyNeverSatisfied) and then forgets it, leaving nothing in its
            # folder; the job it required still says why.
            ended = _required_not_done(d)
    if ended and open_end:
        # The backend saw the job end in a way its wrapper could not record (a time
        # limit, a node failure, an scancel by hand): record it now, so the state outlives
        # the backend's memory.  Never over a status.json orch cannot read: that stays as
        # found, for a person.
        status = _record_end(d, status, ended, backend)
    status = _requeued_while_queued(status, info)
    carried: Dict[str, float] = {}
    if status is None and status_error is None:
        _carry_count(d, carried, backend)  # queued again after a --resume: what it ran and was requeued
    log = os.path.join(d, "log.txt")
    return {
        **carried,
        "name": os.path.basename(d),
        "status": status,
        "status_error": status_error,
        "progress": progress,
        "progress_error": progress_error,
        "alive": alive,
        # The pid of the live wrapper that owns the folder (None: nobody): a job whose
        # backend lost sight of it (a deleted tmux socket) is still running, not lost.
        "owner": owner,
        "backend": info,
        "manifest": os.path.exists(os.path.join(d, "manifest.json")),
        "log_bytes": os.path.getsize(log) if os.path.exists(log) else 0,
    }


def _required_not_done(job_dir: str) -> Optional[dict]:
    """The end of a job that never started because a job it requires (backend.json's
    `requires`) ended other than done; None when none of them did (or nothing says)."""
    required = read_dict(os.path.join(job_dir, HANDLE_FILE)).get("requires")
    for name in required if isinstance(required, list) else []:
        if not isinstance(name, str) or not name:
            continue
        state = read_dict(os.path.join(dependency_dir(job_dir, name), "status.json")).get("state")
        if state in TERMINAL and state != DONE:
            return {
                "state": "failed",
                "reason": f"a job it requires did not end done ({name}: {state}); it never started",
            }
    return None


def _record_end(job_dir: str, status, ended: dict, backend: Optional[backends.Backend]) -> dict:
    doc = (
        dict(status)
        if isinstance(status, dict)
        else {"pid": None, "exit_code": None, "created": None, "started": None, "gpu": ""}
    )
    # When it ended, where the backend knows (Slurm's end time): not when orch noticed.
    at, now = ended.get("at"), time.time()
    at = at if isinstance(at, (int, float)) and not isinstance(at, bool) and 0 < at <= now else now
    doc.update(state=ended.get("state", "failed"), ended=at, reason=str(ended.get("reason", "")))
    _carry_count(job_dir, doc, backend)
    try:
        atomic_write_json(os.path.join(job_dir, "status.json"), doc)
    except OSError:
        pass  # a full disk: shown as it is now, recorded by a later status
    return doc


def _is_count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**9


def _carry_count(job_dir: str, doc: dict, backend: Optional[backends.Backend]) -> None:
    """A job whose wrapper has not run in this attempt (queued, cancelled while queued, or
    refused) keeps the requeues and the run time of the job's earlier attempts, which its
    folder carries (a Slurm job's batch script; status.json.previous, set aside by launch)."""
    if backend is not None and not _is_count(doc.get("requeues")):
        earlier = backend.earlier_requeues(job_dir)
        if earlier:
            doc["requeues"] = earlier
    if not doc.get("started") and "earlier_s" not in doc:
        ran = earlier_run_s(job_dir)
        if ran:
            doc["earlier_s"] = round(ran, 3)


def _requeued_while_queued(status, info: dict):
    """STATUS as shown while Slurm holds the job queued again after an attempt of it ran (a
    requeue the wrapper did not ask for: `scontrol requeue`, a node failure, preemption): that
    requeue counts now, not only once the next attempt's wrapper starts."""
    if not (info.get("queued") and isinstance(status, dict) and status.get("started")):
        return status
    if status.get("state") in TERMINAL or status.get("requeue_counted"):
        return status  # ended, or the wrapper asked for this requeue and counted it
    recorded = status.get("requeues") if _is_count(status.get("requeues")) else 0
    if str(status.get("reason") or "").endswith(f"requeued ({recorded})"):
        return status  # an older wrapper that counted its own requeue (no requeue_counted yet)
    return {**status, "requeues": recorded + 1}


def cmd_launch(opts) -> dict:
    """Start each planned job through the backend; report what happened.

    A job counts as started once its wrapper has written status.json (its first act) -
    or, on a backend with a queue, once it is queued - so a wrapper that cannot even start
    (a code snapshot gone, a folder owned by another live wrapper) is reported, not
    announced as launched."""
    return launch(json.load(sys.stdin), opts.workdir)


def launch(plan: dict, workdir: str) -> dict:
    """cmd_launch's work, for a caller that has the plan already (the controller's
    check-and-launch program, which runs in-process to spare a second interpreter)."""
    backend = backends.get(plan.get("backend") or "tmux", workdir, plan.get("options"))
    run_id = plan.get("run_id") or ""
    results: Dict[str, dict] = {}
    handles: Dict[str, str] = dict(plan.get("handles") or {})  # jobs already done, for dependencies
    launched = []
    unanswered = ""  # the scheduler did not answer a submission: the rest are not tried now
    for item in plan["jobs"]:
        item.setdefault("run_id", run_id)
        name, job_dir = item["name"], item["job_dir"]
        if unanswered:
            results[name] = {"name": name, "started": False, "error": unanswered, "unanswered": True}
            continue
        owner = lock_holder(job_dir)
        if owner is not None:
            results[name] = {
                "name": name,
                "started": False,
                "error": f"job {name} is still running: its wrapper (pid {owner}) holds {job_dir}/lock "
                "(its backend does not show it, e.g. the tmux socket was deleted)",
            }
            continue
        os.makedirs(job_dir, exist_ok=True)
        # Set the previous attempt's state aside (not deleted): if the job does not start,
        # it is put back and the run's record stays truthful.
        status_path = os.path.join(job_dir, "status.json")
        # The job's requeues so far go on counting in its new attempt (a backend that
        # requeues, Slurm, passes them to the job): its wrapper's count, or the one its
        # last submission carried when no wrapper of it ran (cancelled while queued).
        earlier = read_dict(status_path).get("requeues")
        earlier = max(earlier if _is_count(earlier) else 0, backend.earlier_requeues(job_dir))
        if earlier:
            item["earlier_requeues"] = earlier
        if os.path.exists(status_path):
            os.replace(status_path, status_path + ".previous")
        try:
            handle = backend.submit(item, handles)
        except backends.Refused as exc:
            # Nothing of it runs, and nothing will: the refusal is the job's end, kept in its
            # folder for status (`failed (sbatch refused it: ...)`) and for --resume.
            results[name] = {"name": name, "started": False, "error": str(exc)}
            _record_end(job_dir, None, {"state": "failed", "reason": str(exc)}, backend)
            continue
        except backends.Unanswered as exc:
            # Slurm's controller down or busy: no end of the job, nothing recorded (the
            # controller says to retry; --resume submits it).
            unanswered = str(exc)
            results[name] = {"name": name, "started": False, "error": unanswered, "unanswered": True}
            _put_back(job_dir)
            continue
        except backends.BackendError as exc:
            results[name] = {"name": name, "started": False, "error": str(exc)}
            _put_back(job_dir)
            continue
        handles[name] = handle
        # `requires`: what status says of a job the scheduler forgot before it started
        # (_required_not_done).
        record = {
            "backend": backend.name,
            "handle": handle,
            "submitted": time.time(),
            "requires": list(item.get("requires") or []),
        }
        atomic_write_json(os.path.join(job_dir, HANDLE_FILE), record)
        launched.append(item)
    if backend.starts_at_once:
        _wait_started(backend, launched, handles, results)
    for item in launched:
        results.setdefault(item["name"], {"name": item["name"], "started": True, "error": ""})
        results[item["name"]]["handle"] = handles[item["name"]]
        job_dir = item["job_dir"]
        if results[item["name"]]["started"]:
            # A queued job's wrapper has not run yet: it reads the run time of the job's earlier
            # attempts from status.json.previous when it starts (and removes it then).
            stale_files = ("cancel", "status.json.previous") if backend.starts_at_once else ("cancel",)
            for stale in stale_files:
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
    return {"backend": backend.name, "jobs": [results[item["name"]] for item in plan["jobs"]]}


def _wait_started(
    backend: backends.Backend, launched: List[dict], handles: Dict[str, str], results: Dict[str, dict]
) -> None:
    deadline = time.time() + START_WAIT_S
    pending = list(launched)
    while pending:
        held = backend.alive({item["name"]: handles[item["name"]] for item in pending})
        still = []
        for item in pending:
            verdict = _started(item, bool((held.get(item["name"]) or {}).get("alive")))
            if verdict is None:
                still.append(item)
            else:
                results[item["name"]] = verdict
        pending = still
        if pending:
            if time.time() >= deadline:
                break  # slow to start but still held by the backend: it is on its way
            time.sleep(0.05)


def _started(item: dict, alive: bool) -> Optional[dict]:
    """Whether the job's new wrapper is up: a result, or None while we cannot tell yet."""
    name, job_dir = item["name"], item["job_dir"]
    status = (
        read_dict(os.path.join(job_dir, "status.json")) or None
    )  # read after alive: one that wrote it and ended counts
    if status is not None:
        state = status.get("state")
        if state in ("failed", "cancelled"):
            return {
                "name": name,
                "started": False,
                "error": f"{state} at once: {status.get('reason') or 'see log.txt'}",
            }
        return {"name": name, "started": True, "error": ""}
    if not alive:
        owner = lock_holder(job_dir)
        why = (
            f"its folder is owned by another live wrapper (pid {owner})"
            if owner is not None
            else "the wrapper did not start (see log.txt; is the code snapshot there?)"
        )
        return {"name": name, "started": False, "error": f"the job ended at once: {why}"}
    return None


def _put_back(job_dir: str) -> None:
    status_path = os.path.join(job_dir, "status.json")
    previous = status_path + ".previous"
    if os.path.exists(previous) and not os.path.exists(status_path):
        os.replace(previous, status_path)


def cmd_cancel(opts) -> dict:
    run_id = os.path.basename(os.path.normpath(opts.run_dir))
    backend = backends.get(opts.backend, opts.workdir)
    dirs = _job_dirs(opts.run_dir, opts.job)
    handles = {os.path.basename(d): h for d in dirs for h in [job_handle(d, backend, run_id)] if h is not None}
    held = backend.alive(handles) if handles else {}
    unreachable = [str(i["unreachable"]) for i in held.values() if i.get("unreachable")]
    if unreachable:
        # Without the scheduler nothing can be stopped, and a job it still runs must not be
        # recorded cancelled: change nothing, say so.
        raise backends.Unanswered(f"{unreachable[0]}; nothing was cancelled (try again once it answers)")
    results = []
    for d in dirs:
        name = os.path.basename(d)
        status = read_dict(os.path.join(d, "status.json"))
        if status.get("state") in TERMINAL:
            results.append({"name": name, "state": status["state"], "changed": False})
            continue
        os.makedirs(d, exist_ok=True)
        open(os.path.join(d, "cancel"), "w").close()
        info = held.get(name) or {}
        # A job still queued has no wrapper yet: nobody will write `cancelled` but us.
        was_alive = bool(info.get("alive")) and not info.get("queued")
        if name in handles:
            backend.stop(handles[name])
        # A wrapper its backend cannot show (a deleted tmux socket) still owns the folder:
        # signal it directly - only that pid, only while it holds the lock, and only where
        # jobs run on this machine (a compute node's pid is some other process here).
        owner = lock_holder(d)
        signalled = False
        if owner and owner == status.get("pid") and backend.same_host:
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
                results.append(
                    {
                        "name": name,
                        "state": status.get("state") or "running",
                        "changed": False,
                        "error": f"its wrapper (pid {owner}) is still stopping",
                    }
                )
                continue
            if info.get("queued"):
                # Queued: never started, or requeued after it had run (its status.json says so).
                why = "while it waited in Slurm's queue to run again" if status else "before it started"
            else:
                why = "(no wrapper of it was left running to record it)"
            status = _requeued_while_queued(status, info)
            status.update(state="cancelled", ended=time.time(), reason=f"cancelled by the user {why}")
            _carry_count(d, status, backend)
            atomic_write_json(os.path.join(d, "status.json"), status)
        results.append({"name": name, "state": status["state"], "changed": True})
    return {"jobs": results}


# --------------------------------------------------------------------------- follow

FOLLOW_POLL_S = 0.5


ASK_BACKEND_EVERY_S = 5.0  # a job waiting in a Slurm queue for hours: squeue now and then, not twice a second


def _ended(job_dir: str, backend: backends.Backend, run_id: str, asked: Optional[Dict[str, tuple]] = None) -> bool:
    """No process of the job is left: an end state is recorded and no wrapper holds the
    folder, or nobody holds it at all (a lost job).  ``asked``: the backend's last answer
    per job, reused for ASK_BACKEND_EVERY_S where a backend call costs (a scheduler)."""
    if lock_holder(job_dir) is not None:
        return False
    if read_dict(os.path.join(job_dir, "status.json")).get("state") in TERMINAL:
        return True
    handle = job_handle(job_dir, backend, run_id)
    if handle is None:
        return True
    if asked is not None and not backend.starts_at_once:
        when, alive = asked.get(job_dir, (0.0, True))
        if time.time() - when < ASK_BACKEND_EVERY_S:
            return not alive
    alive = bool((backend.alive({"j": handle}).get("j") or {}).get("alive"))
    if asked is not None:
        asked[job_dir] = (time.time(), alive)
    return not alive


def _tail_start(path: str, lines: int) -> int:
    """The offset of the last LINES lines of PATH (0 when shorter; its end for LINES 0 or
    less: the loop below would step past the end of a last line without a newline)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            if lines <= 0:
                return size
            fh.seek(max(0, size - 65536 * max(1, lines // 100 + 1)))
            data = fh.read()
    except OSError:
        return 0
    cut = len(data)
    for _ in range(lines + (1 if data.endswith(b"\n") else 0)):
        cut = data.rfind(b"\n", 0, cut)
        if cut < 0:
            return size - len(data)
    return size - len(data) + cut + 1


def _scheduler_output(out, job_dir: str, lines: int, backend: backends.Backend) -> None:
    """A job that ended without a log.txt never got as far as orch's wrapper (a failed
    `module load` in the batch script): its scheduler's output says why, so show its end."""
    if backend.output_file is None:
        return
    path = os.path.join(job_dir, backend.output_file)
    if os.path.exists(os.path.join(job_dir, "log.txt")) or not os.path.isfile(path):
        return
    try:
        with open(path, "rb") as fh:
            fh.seek(_tail_start(path, lines))
            data = fh.read(1 << 20)
    except OSError:
        return
    name = os.path.basename(os.path.normpath(job_dir))
    out.write(
        f"\n==> {name}: no log.txt (orch's wrapper never ran); "
        f"{backend.output_words}, {backend.output_file} <==\n".encode()
    )
    out.write(data)
    out.flush()


UNANSWERED_MARK = "orch-unanswered"  # on stderr (exit 2): the scheduler did not answer, nothing changed


def _run_dir_of(job_dir: str) -> str:
    """The run folder of JOB_DIR (RUN/jobs/JOB)."""
    return os.path.dirname(os.path.dirname(os.path.normpath(job_dir)))


def _run_id_of(job_dir: str) -> str:
    return os.path.basename(_run_dir_of(job_dir))


def _ends(job_dirs: List[str], backend: backends.Backend) -> Dict[str, dict]:
    """The status.json of each job that ended other than done, by folder: `orch logs` says
    that end as its last line, since a job stopped from outside (Slurm's time limit, an
    scancel, a node failure) leaves its log cut mid-line with no end of its own.  An end the
    backend saw that no status has recorded yet is recorded first, as status does (one
    question to the backend for all of them)."""
    found: Dict[str, dict] = {}
    ask: Dict[str, str] = {}
    for d in job_dirs:
        status = read_dict(os.path.join(d, "status.json"))
        if status.get("state") in TERMINAL:
            found[d] = status
        elif lock_holder(d) is None:  # no wrapper left to record an end: the backend may know one
            handle = job_handle(d, backend, _run_id_of(d))
            if handle is not None:
                ask[d] = handle
    held = backend.alive(ask) if ask else {}
    for d, handle in ask.items():
        status = _job_state(d, held.get(d), backend, handle)["status"]
        if isinstance(status, dict) and status.get("state") in TERMINAL:
            found[d] = status
    return {d: s for d, s in found.items() if s.get("state") != DONE}


def _end_line(job_dir: str, status: dict) -> str:
    """`[orch] JOB ended STATE at TIME: REASON`, one line (the reason is the host's text)."""
    ended = status.get("ended")
    at = (
        time.strftime(" at %Y-%m-%d %H:%M:%S", time.localtime(ended))
        if isinstance(ended, (int, float)) and not isinstance(ended, bool) and 0 < ended < 1e11
        else ""
    )
    reason = " ".join(str(status.get("reason") or "").split())
    name = os.path.basename(os.path.normpath(job_dir))
    return f"[orch] {name} ended {status.get('state')}{at}" + (f": {reason}" if reason else "") + "\n"


OUTPUT_MARK = "orch-output-file"  # on stderr: a job shown by its scheduler's output (no log.txt)
NO_RUN_RC, NO_LOG_RC = 3, 1  # --no-follow: the run's folder is gone; no job has a log to show


def cmd_tail(opts) -> int:
    """`follow --no-follow` (`orch logs` without -f): the last lines of each job's log.txt - or,
    for a job without one, of its scheduler's own output (a job that died before orch's wrapper
    ran: a failed `module load`), named on stderr as ``OUTPUT_MARK JOB FILE WORDS``.  tail(1)
    prints them, so a job's lines come whole however long they are."""
    backend = backends.get(opts.backend, opts.workdir)
    if not os.path.isdir(_run_dir_of(opts.job_dir[0])):
        return NO_RUN_RC
    files = []
    for d in opts.job_dir:
        out = os.path.join(d, backend.output_file) if backend.output_file else None
        if os.path.exists(os.path.join(d, "log.txt")):
            files.append(os.path.join(d, "log.txt"))
        elif out and os.path.exists(out):
            files.append(out)
            name = os.path.basename(os.path.normpath(d))
            sys.stderr.write(f"{OUTPUT_MARK} {name} {backend.output_file} {backend.output_words}\n")
    if not files:
        return NO_LOG_RC
    sys.stderr.flush()
    rc = subprocess.call(
        ["tail", "-n", str(opts.lines), "--", *files], stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    ends = _ends(opts.job_dir, backend)
    if ends:  # how the jobs that did not end done ended, after their last lines
        lines = "".join(_end_line(d, ends[d]) for d in opts.job_dir if d in ends)
        sys.stdout.write(("\n" if len(files) > 1 else "") + lines)
        sys.stdout.flush()
    return rc


def cmd_follow(opts) -> int:
    """Print the last lines of each job's log.txt, then what they append, until every job
    has ended (whatever backend runs it: the wrapper's files are the truth).  Several jobs:
    a `==> JOB <==` line whenever the output switches job, as tail(1) does."""
    backend = backends.get(opts.backend, opts.workdir)
    out = sys.stdout.buffer
    offsets: Dict[str, int] = {}
    last_job = None
    for d in opts.job_dir:
        offsets[d] = _tail_start(os.path.join(d, "log.txt"), opts.lines)
    done: set = set()
    asked: Dict[str, tuple] = {}
    while True:
        for d in opts.job_dir:
            if d in done:
                continue
            finished = _ended(d, backend, _run_id_of(d), asked)
            try:
                with open(os.path.join(d, "log.txt"), "rb") as fh:
                    fh.seek(offsets[d])
                    data = fh.read(1 << 20)
            except OSError:
                data = b""
            if data:
                if len(opts.job_dir) > 1 and last_job != d:
                    out.write(f"\n==> {os.path.basename(os.path.normpath(d))} <==\n".encode())
                    last_job = d
                out.write(data)
                out.flush()
                offsets[d] += len(data)
            elif finished:  # read once more after it ended: nothing is lost at the end
                done.add(d)
                _scheduler_output(out, d, opts.lines, backend)
                end = _ends([d], backend).get(d)
                if end:  # a log cut off by a stop from outside says how the job ended
                    if len(opts.job_dir) > 1 and last_job != d:
                        out.write(f"\n==> {os.path.basename(os.path.normpath(d))} <==\n".encode())
                        last_job = d
                    out.write(_end_line(d, end).encode())
                    out.flush()
        if len(done) == len(opts.job_dir):
            return 0
        time.sleep(FOLLOW_POLL_S)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="remote.hostctl")
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("status", "status-all", "cancel", "launch", "follow"):
        p = sub.add_parser(name)
        p.add_argument("--workdir", required=True)
        if name in ("status", "cancel"):
            p.add_argument("--run-dir", required=True)
        if name == "status-all":
            p.add_argument("--run-dir", action="append", required=True)
        if name != "launch":
            p.add_argument("--backend", default="tmux", choices=backends.NAMES)
        if name == "cancel":
            p.add_argument("--job", action="append", default=[])
        if name == "follow":
            p.add_argument("--job-dir", action="append", required=True)
            p.add_argument("--lines", type=int, default=40)
            p.add_argument("--no-follow", action="store_true", help="print the last lines once and end")
    opts = parser.parse_args(argv)
    opts.workdir = os.path.abspath(opts.workdir)
    if opts.cmd == "follow":
        try:
            return cmd_tail(opts) if opts.no_follow else cmd_follow(opts)
        except (KeyboardInterrupt, BrokenPipeError):
            return 0
    handlers: Dict = {"status": cmd_status, "status-all": cmd_status_all, "launch": cmd_launch, "cancel": cmd_cancel}
    try:
        reply = handlers[opts.cmd](opts)
    except backends.Unanswered as exc:
        # Marked, so the controller can say it in the user's words (retry later).
        print(f"error: {UNANSWERED_MARK} {exc}", file=sys.stderr)
        return 2
    except backends.BackendError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    json.dump(reply, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
