"""A host-wide first-come-first-served line per GPU, for jobs of different runs (tmux hosts).

Standard library only (remote/wrapper.py uses it before torch exists).  Within one run the
controller already gives each GPU's jobs turns (``--after``); this is what keeps the jobs
of *different* runs that share a workdir off each other's GPUs.  Under
``<queue>/<gpu>/`` (``<queue>`` = ``<workdir>/gpu-queue``, docs/CONTRACT.md):

    lock               flock held by the job that has the GPU: its wrapper and its payload,
                       which inherits the descriptor, so the GPU stays taken while a payload
                       whose wrapper was killed still runs on it; holds who has it (JSON)
    counter            the last ticket number; flock'd for an instant while one is drawn
    NNNNNNNNNNNN.ticket  one waiting wrapper's place in line (JSON), flock'd by it for its
                       life: a ticket nobody holds is a dead waiter's, and is removed

Each lock is an flock, so it dies with its processes: a killed waiter or holder never
blocks the line, and a pid reused by some other process means nothing (liveness is asked
of the lock, never of the pid).  A waiter that is first among the live tickets takes the
GPU's lock when it is free, then gives up its ticket.  A job that needs several GPUs
takes them one after another in one fixed order (``devices``), so two such jobs never
hold one each while waiting for the other's.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import time
from typing import Callable, Dict, List, Optional

POLL_S = 0.5
TICKET = re.compile(r"^(\d{12})\.ticket$")
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_BUSY = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


def devices(visible: str) -> List[str]:
    """The GPUs of a CUDA_VISIBLE_DEVICES value, each once, in the one order every job takes
    them in (numbers numerically, then names); [] for none (a CPU job: no queue)."""
    ids = {part.strip() for part in (visible or "").split(",") if part.strip()}
    return sorted(ids, key=lambda d: (0, int(d), "") if d.isdigit() else (1, 0, d))


def slot(gpu: str) -> str:
    """GPU id -> its folder name under the queue ("0", "GPU-3f2a..."); an id that is no safe
    file name gets a digest of itself."""
    return gpu if _SAFE.match(gpu) else "gpu-" + hashlib.sha256(gpu.encode()).hexdigest()[:16]


def _try_lock(fd: int, kind: int) -> bool:
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
        return True
    except OSError as exc:
        if exc.errno not in _BUSY:
            raise
        return False


def _read_json(fd: int) -> Dict:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _write_json(fd: int, doc: Dict) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(doc).encode(), 0)


def who(doc: Dict) -> str:
    """A holder or waiter as a status reason names it: "run r1 job class-1"."""
    run, job = doc.get("run"), doc.get("job")
    if isinstance(run, str) and isinstance(job, str) and run and job:
        return f"run {run[:80]} job {job[:64]}"
    pid = doc.get("pid")
    return f"pid {pid}" if isinstance(pid, int) else "another process"


def ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def waiting_reason(gpu: str, ahead: List[Dict], holder: Optional[Dict]) -> str:
    """status.json's reason while a job waits: "waiting for GPU 0: 2nd in line (behind run
    r1 job class-1)".  Its place counts the job on the GPU and the live tickets before it."""
    first = [holder] if holder is not None else []
    line = first + ahead
    if not line:
        return f"waiting for GPU {gpu}: next in line"
    more = f" and {len(line) - 1} more" if len(line) > 1 else ""
    return f"waiting for GPU {gpu}: {ordinal(len(line) + 1)} in line (behind {who(line[0])}{more})"


class Line:
    """One GPU's line under the queue folder."""

    def __init__(self, queue_dir: str, gpu: str):
        self.gpu = gpu
        self.dir = os.path.join(queue_dir, slot(gpu))
        os.makedirs(self.dir, exist_ok=True)

    # -- tickets

    def take_ticket(self, me: Dict) -> "Ticket":
        """A place at the end of the line: a ticket numbered after every ticket there, locked
        by us before it is visible (made under a hidden name and renamed), so no reader ever
        sees a live waiter's ticket unlocked."""
        counter = os.open(os.path.join(self.dir, "counter"), os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(counter, fcntl.LOCK_EX)
            text = os.pread(counter, 32, 0).decode("ascii", "replace").strip()
            present = [int(m.group(1)) for m in map(TICKET.match, os.listdir(self.dir)) if m]
            seq = max([int(text) if text.isdigit() else 0] + present) + 1
            for name in os.listdir(self.dir):
                if name.startswith(".ticket-"):  # a drawer killed mid-draw (we hold the counter now)
                    _unlink(os.path.join(self.dir, name))
            tmp = os.path.join(self.dir, f".ticket-{os.getpid()}")
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                _write_json(fd, dict(me, taken=time.time()))
                path = os.path.join(self.dir, f"{seq:012d}.ticket")
                os.replace(tmp, path)
            except BaseException:
                os.close(fd)
                _unlink(tmp)
                raise
            os.ftruncate(counter, 0)
            os.pwrite(counter, f"{seq}\n".encode(), 0)
        finally:
            os.close(counter)  # and with it the flock
        return Ticket(fd, path, seq)

    def ahead(self, ticket: "Ticket") -> List[Dict]:
        """The live tickets before ours, first first; a dead waiter's ticket is removed."""
        live = []
        for name in sorted(os.listdir(self.dir)):
            m = TICKET.match(name)
            if not m or int(m.group(1)) >= ticket.seq:
                continue
            doc = self._live_ticket(os.path.join(self.dir, name))
            if doc is not None:
                live.append(doc)
        return live

    def _live_ticket(self, path: str) -> Optional[Dict]:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None  # its waiter moved on
        try:
            if not _try_lock(fd, fcntl.LOCK_SH):
                return _read_json(fd)
            # Nobody holds it: its waiter died.  Remove it - unless the name now belongs to a
            # newer ticket (same name, another file).
            try:
                if os.stat(path).st_ino == os.fstat(fd).st_ino:
                    os.unlink(path)
            except FileNotFoundError:
                pass
            return None
        finally:
            os.close(fd)

    # -- the GPU itself

    def _lock_fd(self, flags: int) -> int:
        return os.open(os.path.join(self.dir, "lock"), flags | os.O_CREAT, 0o644)

    def try_take(self, me: Dict) -> Optional[int]:
        """The GPU's lock, if it is free: its fd (to be inherited by the payload), else None."""
        fd = self._lock_fd(os.O_RDWR)
        if not _try_lock(fd, fcntl.LOCK_EX):
            os.close(fd)
            return None
        _write_json(fd, dict(me, since=time.time()))
        return fd

    def holder(self) -> Optional[Dict]:
        """Who has the GPU (the lock's record), or None when it is free."""
        fd = self._lock_fd(os.O_RDONLY)
        try:
            if _try_lock(fd, fcntl.LOCK_SH):
                return None
            return _read_json(fd)
        finally:
            os.close(fd)  # drops our shared lock, if we took it


class Ticket:
    def __init__(self, fd: int, path: str, seq: int):
        self.fd, self.path, self.seq = fd, path, seq

    def give_up(self) -> None:
        if self.fd < 0:
            return
        _unlink(self.path)  # while still locked: nobody mistakes it for a dead waiter's
        os.close(self.fd)
        self.fd = -1


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class Held:
    """The GPU locks a job holds; ``fds`` go to its payload (``Popen(pass_fds=...)``)."""

    def __init__(self, gpus: List[str], fds: List[int]):
        self.gpus, self.fds = gpus, fds

    def release(self) -> None:
        while self.fds:
            os.close(self.fds.pop())


def wait_turn(
    queue_dir: str,
    gpus: List[str],
    me: Dict,
    stop: Callable[[], bool],
    report: Callable[[str], None],
    poll_s: float = POLL_S,
) -> Optional[Held]:
    """Queue for each of ``gpus`` (in ``devices`` order) and take it in turn.  ``me``: who
    we are (``pid``, ``run``, ``job``), for the others' reasons; ``report``: called with
    our waiting reason each time we look; ``stop``: polled, and when true we leave every
    line and give back what we took (returns None).  Else every GPU is held."""
    fds: List[int] = []
    try:
        for gpu in gpus:
            fd = _take_one(Line(queue_dir, gpu), me, stop, report, poll_s)
            if fd is None:
                break
            fds.append(fd)
        else:
            held, fds = Held(list(gpus), fds), []
            return held
        return None
    finally:
        for fd in fds:  # stopped (or failed) part way: give back what we took
            os.close(fd)


def _take_one(line: Line, me: Dict, stop, report, poll_s: float) -> Optional[int]:
    ticket = line.take_ticket(me)
    try:
        while not stop():
            ahead = line.ahead(ticket)
            if not ahead:
                fd = line.try_take(me)
                if fd is not None:
                    return fd
            holder = line.holder()
            if not ahead and holder is None:
                time.sleep(0.05)  # free a moment ago: someone only looked at the lock
                continue
            report(waiting_reason(line.gpu, ahead, holder))
            time.sleep(poll_s)
        return None
    finally:
        ticket.give_up()
