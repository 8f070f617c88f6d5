"""Run one job's payload and keep its status.json true, whatever happens to the payload.

    python -m remote.wrapper --job-dir DIR [--requires JOB]... [--after JOB]... \
        [--requeueable [--max-requeues N]] [--gpu-queue DIR] -- CMD...

Standard library only: it runs before (and regardless of) torch.  tmux only hosts this
process; the exit code is recorded here, so a crash, a kill or a lost tmux session never
leaves the controller guessing.  --requires: wait until JOB is done (fail if it ended any
other way, e.g. the pretrain stage).  --after: wait until JOB has ended in any state
(the previous job on the same GPU).

One job folder, one live wrapper: the wrapper holds ``<job>/lock`` (an flock, which
dies with the process, so it is never stale) for its whole life and writes its pid in
it.  A second wrapper for the same folder - a `--resume` while the first still runs
behind a deleted tmux socket - finds the lock held and exits without touching
status.json.  remote/hostctl.py asks the lock whether a job is alive.

--gpu-queue DIR (tmux hosts; the controller sets $ORCH_GPU_QUEUE, its default): once the
job's dependencies allow a start, it queues for the GPUs of its CUDA_VISIBLE_DEVICES in
DIR's host-wide line per GPU (remote/gpuqueue.py) and holds them while its payload runs,
so jobs of different runs never share a GPU; while it waits, status.json's reason says its
place ("waiting for GPU 0: 2nd in line (behind run r1 job class-1)").

--requeueable (Slurm): the scheduler may stop the job and run it again, so a stop the user
did not ask for is recorded as `waiting`, not as an end, and the time-limit warning
(SIGUSR1) checkpoints the payload and requeues the job (class Requeue).
"""

from __future__ import annotations

import argparse
import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from typing import List, Optional, Tuple

from remote import backends, gpuqueue, warm
from remote.files import atomic_write_json, read_dict
from remote.jobstate import TERMINAL, attempt_s, dependency_dir, earlier_s

POLL_S = 1.0
SPARE_BYTES = 64 << 10  # room kept for the final status.json: a full disk must not hide how a job ended
LOW_SPACE_BYTES = 1 << 20  # less free than this when a job fails: the disk is the reason


def free_bytes(path: str) -> Optional[int]:
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize


def workdir_of(job_dir: str) -> str:
    """<workdir>/runs/<run>/jobs/<job> -> <workdir> (the layout of docs/CONTRACT.md)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(job_dir)))))


def no_space_reason(job_dir: str) -> str:
    """The words the controller shows for a full disk (orchestrator/transport/diskspace.py says the same)."""
    free = free_bytes(job_dir)
    return f"no space left on the host's {workdir_of(job_dir)} ({(free or 0) >> 20} MB free)"


def says_no_space(text: str) -> bool:
    return "No space left on device" in text or "[Errno 28]" in text or "Disk quota exceeded" in text


LOCK_NAME = "lock"
EXIT_OWNED = 75  # EX_TEMPFAIL: another live wrapper owns the job folder
# A reader (hostctl asking whether the lock is held) holds a shared lock for an instant:
# retry that long before concluding another wrapper owns the folder.
LOCK_RETRY_S = 3.0


def lock_path(job_dir: str) -> str:
    return os.path.join(job_dir, LOCK_NAME)


def lock_holder(job_dir: str) -> Optional[int]:
    """The pid of the live wrapper holding JOB_DIR's lock (0 if it has not written it yet),
    or None when no process holds it."""
    try:
        fd = os.open(lock_path(job_dir), os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            text = os.read(fd, 64).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else 0
        return None
    finally:
        os.close(fd)  # also drops the shared lock, if we took it


def take_lock(job_dir: str) -> Optional[int]:
    """Hold JOB_DIR's lock for this process's life and record our pid in it; return the
    fd, or None when another live process holds it."""
    fd = os.open(lock_path(job_dir), os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.time() + LOCK_RETRY_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            if time.time() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.05)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd  # not inheritable (PEP 446): the payload does not keep the folder owned


def earlier_run_s(job_dir: str) -> float:
    """The run time of the job's earlier attempts, from the record this attempt takes over:
    status.json (a requeue reruns the job in the same folder) or, on a resubmission,
    status.json.previous (hostctl launch set it aside).  An attempt that died unrecorded (a
    node failure) ran until its log was last written; one whose end or stop is recorded
    (Slurm's end time for a hard time limit) ran until then, however long its log was quiet."""
    for name in ("status.json", "status.json.previous"):
        prior = read_dict(os.path.join(job_dir, name))
        if prior:
            break
    if not prior:
        return 0.0
    now = time.time()
    try:
        until = os.path.getmtime(os.path.join(job_dir, "log.txt"))
    except OSError:
        until = now
    return earlier_s(prior) + attempt_s(prior, min(until, now), now)


class SupervisedJob:
    """The job folder this wrapper owns: its status.json, kept true whatever the payload does."""

    def __init__(self, job_dir: str):
        self.dir = job_dir
        self.status_path = os.path.join(job_dir, "status.json")
        self.spare_path = self.status_path + ".spare"
        self.disk_full = False  # a write of ours met ENOSPC
        self.status = {
            "state": "waiting",
            "pid": os.getpid(),
            "exit_code": None,
            "created": time.time(),
            "started": None,
            "ended": None,
            "gpu": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
            "reason": "",
        }
        before = earlier_run_s(job_dir)
        if before:
            self.status["earlier_s"] = round(before, 3)
        self.child: Optional[subprocess.Popen] = None
        self.signalled: Optional[int] = None

    def reserve(self) -> None:
        """Write the spare status file now, while there is room: its blocks are what the
        final status is written into if the disk is full by then.  (On a copy-on-write
        filesystem an overwrite needs new blocks too; there the spare only helps a little.)"""
        try:
            with open(self.spare_path, "wb") as fh:
                fh.write(b" " * SPARE_BYTES)
                fh.flush()
                os.fsync(fh.fileno())
        except OSError:
            self.disk_full = True  # no room even now: the end state may go unrecorded
            try:
                os.remove(self.spare_path)
            except OSError:
                pass

    def save(self, **changes) -> None:
        self.status.update(changes)
        try:
            atomic_write_json(self.status_path, self.status)
        except OSError as exc:
            if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
                raise
            self.disk_full = True
            if self.status["state"] in TERMINAL:
                try:
                    self._save_into_spare()
                except OSError as again:
                    print(
                        f"[orch] cannot record {self.status['state']} in {self.status_path}: {again}",
                        file=sys.stderr,
                        flush=True,
                    )
            # else: the last state recorded stands until the end state, which has its room
            return
        if self.status["state"] in TERMINAL:
            try:
                os.remove(self.spare_path)
            except OSError:
                pass

    def _save_into_spare(self) -> None:
        """On a full disk: overwrite the spare's own blocks in place (no new block needed),
        cut it to length and rename it over status.json."""
        if self.status.get("state") == "failed" and not str(self.status.get("reason", "")).startswith("no space"):
            self.status["reason"] = f"{no_space_reason(self.dir)}: {self.status.get('reason', '')}".rstrip(": ")
        data = json.dumps(self.status).encode()[:SPARE_BYTES]
        fd = os.open(self.spare_path, os.O_WRONLY)
        try:
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self.spare_path, self.status_path)

    def cancel_requested(self) -> bool:
        return os.path.exists(os.path.join(self.dir, "cancel"))

    def finish_after_signal(self, scheduler: Optional["Requeue"] = None) -> int:
        """Record how a signalled job ended.  Under a scheduler that stops and reruns jobs
        (``scheduler``, Slurm), a stop the user did not ask for is not an end: the job was
        checkpointed, and the scheduler either runs it again or says how it ended (hostctl
        records that, docs/CONTRACT.md)."""
        code = self.child.returncode if self.child is not None else None
        if self.cancel_requested():
            self.save(state="cancelled", ended=time.time(), exit_code=code, reason="cancelled by the user")
        elif scheduler is not None and scheduler.warned:
            return scheduler.requeue(self, code)
        elif scheduler is not None:
            self.save(
                state="waiting",
                stopped=time.time(),
                exit_code=code,
                reason=f"stopped by the scheduler (signal {self.signalled}): checkpointed; "
                "requeued or ended, as the scheduler says",
            )
        else:
            self.save(state="failed", ended=time.time(), exit_code=code, reason=f"killed by signal {self.signalled}")
        return 128 + (self.signalled or 15)


class Requeue:
    """--requeueable: the job runs under Slurm, which warns it (SIGUSR1, sbatch
    `--signal=B:USR1@N`) before its time limit.  On the warning the payload checkpoints
    (SIGTERM) and the wrapper asks Slurm to requeue the job, which then resumes from its
    checkpoint - at most ``limit`` times, so a job that never gets done is not rerun forever."""

    def __init__(self, limit: int, backend: backends.Backend):
        self.limit = limit
        self.backend = backend
        # times the scheduler has rerun this submission (what the limit bounds), and the run's
        # job over all its submissions
        self.count, self.total = backend.requeue_counts(os.environ)
        self.job_id = backend.own_handle(os.environ)
        self.warned = False

    def requeue(self, job: "SupervisedJob", code: Optional[int]) -> int:
        if code == 0:  # it finished before the warning took effect
            job.save(state="done", ended=time.time(), exit_code=0, reason="")
            return 0
        if self.count >= self.limit or not self.job_id:
            job.save(
                state="failed",
                ended=time.time(),
                exit_code=code,
                reason=f"stopped at Slurm's time-limit warning (slurm.warn_before before slurm.time) again after "
                f"{self.count} requeue{'' if self.count == 1 else 's'} of Slurm job {self.job_id or '?'}, the most "
                f"the host's slurm.max_requeues ({self.limit}) allows one submission: the job needs more time; "
                "give it a longer slurm.time or a higher slurm.max_requeues, then --resume",
            )
            return 1
        # Recorded before the requeue (Slurm stops this process as part of it: nothing may
        # follow that matters), as the count it makes: the reason's number and `requeues`
        # are one number, the times the job has been requeued.
        before = job.status.get("requeues") or 0
        job.save(
            state="waiting",
            stopped=time.time(),
            exit_code=code,
            requeues=before + 1,
            requeue_counted=True,  # hostctl: this requeue is in `requeues` already
            reason=f"stopped before its time limit (checkpointed if training had begun); requeued ({before + 1})",
        )
        try:
            self.backend.requeue(self.job_id)
        except backends.BackendError as exc:
            job.save(
                state="failed",
                ended=time.time(),
                requeues=before,
                reason=f"stopped at Slurm's time-limit warning; Slurm refused to requeue it: {str(exc)[:200]}",
            )
            return 1
        return 0


def failure_reason(code: int, tail: bytes, job: Optional["SupervisedJob"] = None) -> str:
    """`exit code N: <the payload's last error line>` (its one-line `error: ...` if any),
    after "no space left on the host's <workdir> (N MB free)" when the disk is why."""
    text = tail.decode("utf-8", "replace")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error:") or "Error:" in line]
    last = (errors or lines or [""])[-1]
    reason = f"exit code {code}: {last[:200]}" if last else f"exit code {code}"
    if job is not None:
        free = free_bytes(job.dir)
        if job.disk_full or says_no_space(text) or (free is not None and free < LOW_SPACE_BYTES):
            reason = f"{no_space_reason(job.dir)}: {reason}"
    return reason


class Log:
    """log.txt, append only; a write that fails (a full disk) stops the logging, never the
    wrapper: the job's end must still be recorded."""

    def __init__(self, path: str, job: "SupervisedJob"):
        self.job = job
        self.fh = open(path, "ab", buffering=0)

    def write(self, data: bytes) -> None:
        if self.fh is None:
            return
        try:
            self.fh.write(data)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                self.job.disk_full = True
            self.close()

    def line(self, text: str) -> None:
        self.write(f"{text}\n".encode())

    def close(self) -> None:
        if self.fh is not None:
            try:
                self.fh.close()
            except OSError:
                pass
            self.fh = None


def wait_for(job: SupervisedJob, requires: List[str], after: List[str]) -> Optional[str]:
    """Block until dependencies allow a start; return a failure reason, or None to go."""
    pending = [(name, True) for name in requires] + [(name, False) for name in after]
    while pending:
        still = []
        for name, must_succeed in pending:
            status = read_dict(os.path.join(dependency_dir(job.dir, name), "status.json"))
            state = status.get("state")
            if state not in TERMINAL:
                still.append((name, must_succeed))
            elif must_succeed and state != "done":
                return f"required job {name} ended {state}"
        pending = still
        if pending:
            if job.signalled is not None:
                return None
            names = [name for name, _ in pending]
            why = f"waiting for job{'s' if len(names) > 1 else ''} {', '.join(names)} to end"
            if why != job.status.get("reason"):  # `orch status`: waiting (waiting for job pretrain to end)
                job.save(reason=why)
            time.sleep(POLL_S)
    return None


def queue_for_gpus(job: SupervisedJob, queue_dir: str) -> Tuple[Optional[gpuqueue.Held], str]:
    """Wait in the host-wide line of each GPU the job sees (none for a CPU job) and take
    them: (the held GPUs, "") - or (None, "") when a signal ended the wait, or (None, a
    failure reason) when the queue cannot be used."""
    gpus = gpuqueue.devices(job.status["gpu"])
    if not gpus:
        return None, ""
    run_id = os.path.basename(os.path.dirname(os.path.dirname(os.path.abspath(job.dir))))
    me = {"pid": os.getpid(), "run": run_id, "job": os.path.basename(os.path.abspath(job.dir))}

    def report(reason: str) -> None:
        if reason != job.status.get("reason"):
            job.save(reason=reason)

    try:
        held = gpuqueue.wait_turn(queue_dir, gpus, me, stop=lambda: job.signalled is not None, report=report)
    except OSError as exc:
        reason = f"cannot queue for GPU {','.join(gpus)} in {queue_dir}: {exc}"
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            reason = f"{no_space_reason(job.dir)}: {reason}"
        return None, reason
    return held, ""


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--" not in argv:
        print("usage: python -m remote.wrapper --job-dir DIR [--requires J] [--after J] -- CMD...", file=sys.stderr)
        return 2
    split = argv.index("--")
    parser = argparse.ArgumentParser(prog="remote.wrapper")
    parser.add_argument("--job-dir", required=True)
    parser.add_argument("--requires", action="append", default=[])
    parser.add_argument("--after", action="append", default=[])
    parser.add_argument("--requeueable", action="store_true", help="Slurm may stop and rerun the job (see Requeue)")
    parser.add_argument("--max-requeues", type=int, default=5)
    # The controller sets ORCH_GPU_QUEUE (tmux jobs with a GPU): an option would stop the
    # older wrapper of a resumed run's snapshot from starting at all.
    parser.add_argument(
        "--gpu-queue",
        default=os.environ.get("ORCH_GPU_QUEUE", ""),
        help="the host-wide GPU queue folder (default: $ORCH_GPU_QUEUE; tmux hosts)",
    )
    opts = parser.parse_args(argv[:split])
    command = argv[split + 1 :]
    os.makedirs(opts.job_dir, exist_ok=True)
    if take_lock(opts.job_dir) is None:
        holder = lock_holder(opts.job_dir)
        print(
            f"remote.wrapper: {opts.job_dir} is owned by a live wrapper (pid {holder}); not starting a second one",
            file=sys.stderr,
        )
        return EXIT_OWNED
    job = SupervisedJob(opts.job_dir)
    job.reserve()
    scheduler = Requeue(opts.max_requeues, backends.get(backends.REQUEUEING, "")) if opts.requeueable else None
    if scheduler is not None:
        job.status["requeues"] = scheduler.total

    def on_signal(signum, _frame):
        if scheduler is not None and signum == signal.SIGUSR1:
            scheduler.warned = True  # the time limit is near: checkpoint, then requeue
        if job.signalled is None or signum != signal.SIGUSR1:
            job.signalled = signum
        if job.child is not None and job.child.poll() is None:
            try:
                os.killpg(job.child.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT) + ((signal.SIGUSR1,) if scheduler else ()):
        signal.signal(sig, on_signal)

    job.save()
    try:  # taken over: its earlier attempts' run time is in earlier_s now
        os.remove(job.status_path + ".previous")
    except OSError:
        pass
    reason = wait_for(job, opts.requires, opts.after)
    held = None
    if opts.gpu_queue and not reason and job.signalled is None:
        held, reason = queue_for_gpus(job, opts.gpu_queue)
    try:
        if job.signalled is not None:
            return job.finish_after_signal(scheduler)
        if reason:
            job.save(state="failed", ended=time.time(), reason=reason)
            return 1
        return run_payload(job, command, scheduler, held)
    finally:
        if held is not None:
            held.release()  # after the end state is recorded: the next job starts after it


def run_payload(
    job: SupervisedJob, command: List[str], scheduler: Optional[Requeue], held: Optional[gpuqueue.Held]
) -> int:
    """Run the payload (holding ``held``'s GPUs) to its end and record how it ended."""
    log = Log(os.path.join(job.dir, "log.txt"), job)
    try:
        log.line(f"[orch] {time.strftime('%Y-%m-%d %H:%M:%S')} start: {' '.join(command)}")
        keep = tuple(held.fds) if held is not None else ()
        started = time.time()  # before the start: a worker still importing torch is start-up too
        try:
            # A new process group, so a signal reaches the payload and its workers.
            # The payload inherits the GPU locks: a payload whose wrapper is killed keeps
            # its GPU taken until it ends too.  Forked by the host's warm worker when it
            # may be (torch already imported; remote/warm.py), else started cold.
            job.child = warm.forked(command, keep, say=log.line) or subprocess.Popen(
                command,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=keep,
            )
        except OSError as exc:
            log.line(f"[orch] cannot start: {exc}")
            job.save(state="failed", ended=time.time(), exit_code=127, reason=f"cannot start: {exc}")
            return 127
        if job.signalled is not None:
            # The signal came while the payload was being started, before on_signal could
            # pass it on: pass it on now, or the payload would run as if never stopped.
            try:
                os.killpg(job.child.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        job.save(state="running", started=started, reason="")
        if isinstance(job.child, warm.WarmChild):
            log.line(f"[orch] forked by the warm worker: pid {job.child.pid}, torch already imported")
        assert job.child.stdout is not None
        out = sys.stdout.buffer
        tail = b""  # the end of the output, for a failure reason status can show
        while True:
            try:
                chunk = job.child.stdout.read1(65536)
            except InterruptedError:
                continue
            if not chunk:
                break
            log.write(chunk)
            tail = (tail + chunk)[-4096:]
            try:
                out.write(chunk)
                out.flush()
            except OSError:
                pass  # the tmux pane is gone; the log file still gets everything
        code = job.child.wait()
        if job.signalled is None and code < 0:
            job.signalled = -code
        if job.signalled is not None and not (scheduler is not None and code == 0):
            log.line(f"[orch] stopped by signal {job.signalled}")
            log.close()
            return job.finish_after_signal(scheduler)
        log.line(f"[orch] {time.strftime('%Y-%m-%d %H:%M:%S')} exit {code}")
    finally:
        log.close()
    lost = getattr(job.child, "lost", "")
    job.save(
        state="done" if code == 0 else "failed",
        ended=time.time(),
        exit_code=code,
        reason=lost or ("" if code == 0 else failure_reason(code, tail, job)),
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
