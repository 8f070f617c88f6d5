"""Pull a run's job files into a staging folder, verify them there, then swap them in.

What a host sends is untrusted, and the verified copy on the laptop is precious:

- Files land only in a fresh folder inside the run folder, ``runs/<id>/.fetch-<pid>/``,
  made here; nothing planted earlier can be in it, and every file is created new.
- Nothing fetched is anything but a regular file.  rsync runs without -l/-D (links,
  devices and fifos are skipped, and named in its output); SFTP and `local` copies look
  first (lstat) and open with no-follow semantics.  Any such file is refused, by name.
- Verification (the manifest's sizes and hashes, and the completeness rule of
  docs/CONTRACT.md) runs on the staged copy; only then does it replace
  ``runs/<id>/jobs``, by rename.  A failure or Ctrl-C leaves the previous copy as it was.
- rsync seeds the staging folder from the verified copy (--link-dest: hard links, never
  written to, since rsync writes a changed file as a new one), so unchanged files are
  not sent again.
- Logs and progress files are fetched as their last TAIL_BYTES unless asked for whole;
  a cut log starts with a line saying so.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from orchestrator.transport import shell
from orchestrator.errors import ExitCode, OrchError
from orchestrator.transport.hostfiles import NOT_REGULAR, LocalSource, Source, SftpSource
from orchestrator.transport.base import Transport

RESULTS = ("status.json", "manifest.json", "scores.jsonl")  # fetched whole, verified
BOUNDED = ("log.txt", "progress.jsonl")  # fetched as a tail when big
TAIL_BYTES = 1 << 20



@dataclass
class Pulled:
    refused: List[str] = field(default_factory=list)  # "job/file: why", for the verification message
    cut: Dict[str, int] = field(default_factory=dict)  # "job/file" -> its size on the host


# --------------------------------------------------------------------------- staging


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(run_dir: Path) -> None:
    """Undo what an interrupted fetch left: put a set-aside verified copy back, remove
    staging folders whose fetch is gone."""
    for stage in run_dir.glob(".fetch-*"):
        try:
            pid = int(stage.name.split("-", 1)[1])
        except ValueError:
            pid = -1
        if pid != os.getpid() and pid > 0 and _alive(pid):
            continue  # another fetch of this run is at work
        previous = stage / "previous"
        if previous.is_dir() and not os.path.lexists(run_dir / "jobs"):
            os.rename(previous, run_dir / "jobs")
        shutil.rmtree(stage, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange) == 0:
        return True
    if ctypes.get_errno() in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()), str(b))


class Staging:
    """runs/<id>/.fetch-<pid>/jobs: where a fetch writes, until swap_in()."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.target = run_dir / "jobs"
        recover(run_dir)
        self.dir = run_dir / f".fetch-{os.getpid()}"
        self.dir.mkdir(mode=0o700)
        self.jobs = self.dir / "jobs"
        self.jobs.mkdir()

    def swap_in(self) -> None:
        """Make the staged jobs folder THE jobs folder; the old one ends up in the staging folder."""
        if os.path.lexists(self.target):
            if _exchange(self.jobs, self.target):
                return
            os.rename(self.target, self.dir / "previous")  # recover() puts it back if we die here
        os.rename(self.jobs, self.target)

    def discard(self) -> None:
        recover(self.run_dir)


def kept_note(run_dir: Path) -> str:
    """What a failed or interrupted fetch leaves, in words."""
    where = run_dir / "jobs"
    if where.is_dir():
        return f"the previous verified copy in {where} is untouched"
    return f"nothing was kept ({where} holds no earlier copy)"


# --------------------------------------------------------------------------- writing


def _create(path: Path) -> int:
    """A new file in the staging folder: never an existing one, never through a link."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _cut_prefix(name: str, size: int, run_id: str) -> bytes:
    if name != "log.txt":
        return b""  # progress.jsonl stays JSON lines; the fetch message says it was cut
    return (f"[orch] log cut by fetch-results: these are the last {TAIL_BYTES >> 20} MB of {size} bytes; "
            f"`orch fetch-results {run_id} --full-logs` fetches all of it\n").encode()


def _from_line_start(data: bytes) -> bytes:
    cut = data.find(b"\n")
    return data[cut + 1:] if 0 <= cut < len(data) - 1 else data


# --------------------------------------------------------------------------- pulling


def _copy(source: Source, job: str, name: str, size: int, dest: Path, full_logs: bool, run_id: str,
          pulled: Pulled) -> None:
    fd = _create(dest / name)
    try:
        if name in BOUNDED and not full_logs and size > TAIL_BYTES:
            pulled.cut[f"{job}/{name}"] = size
            tail: List[bytes] = []
            source.read(job, name, size - TAIL_BYTES, TAIL_BYTES, tail.append)
            _write_all(fd, _cut_prefix(name, size, run_id) + _from_line_start(b"".join(tail)))
        else:
            source.read(job, name, 0, size, lambda data: _write_all(fd, data))
    finally:
        os.close(fd)


def _pull_files(source: Source, stage: Path, jobs: Sequence[str], full_logs: bool, run_id: str) -> Pulled:
    """SFTP and `local`: look at each entry (lstat) before reading it; refuse what is not a
    regular file; read a big log's tail only."""
    pulled = Pulled()
    present = source.jobs()
    for job in jobs:
        if job not in present:
            continue  # not started yet
        if not present[job]:
            pulled.refused.append(f"{job}: not a directory on the host (a link?): refused")
            continue
        files = source.files(job)
        dest = stage / job
        dest.mkdir()
        for name in RESULTS + BOUNDED:
            if name not in files:
                continue
            regular, size = files[name]
            if not regular:
                pulled.refused.append(f"{job}/{name}: {NOT_REGULAR}")
                continue
            try:
                _copy(source, job, name, size, dest, full_logs, run_id, pulled)
            except OrchError as exc:
                if NOT_REGULAR not in exc.message:
                    raise
                pulled.refused.append(exc.message)
    return pulled


def _rsync_pull(transport: Transport, remote_jobs: str, stage: Path, seed: Path, jobs: Sequence[str],
                names: Sequence[str], max_size: Optional[int]) -> str:
    from orchestrator.transport.files import run_rsync

    # Exactly the planned jobs' files: `/job` matches the folder (or a link standing in for
    # it, which rsync then names as skipped), `/job/name` each file.
    filters = []
    for job in jobs:
        filters += [f"--include=/{job}"] + [f"--include=/{job}/{n}" for n in names]
    filters.append("--exclude=*")
    # -r -t and nothing of -a's -l -p -o -g -D: a link, device or fifo is skipped and named.
    argv = ["rsync", "-r", "-t", "--no-links", "--no-devices", "--no-specials", "--checksum", "--info=skip1",
            "--prune-empty-dirs"]
    if seed.is_dir():
        argv.append(f"--link-dest={seed.resolve()}")  # unchanged files: hard links to the verified copy
    if max_size is not None:
        argv.append(f"--max-size={max_size}")
    argv += [*filters, "-e", shell.join(transport.rsync_rsh()), transport.rsync_target(remote_jobs + "/"), f"{stage}/"]
    proc = run_rsync(transport, argv, push=False, local_dir=stage)
    return proc.stdout + proc.stderr


def _pull_rsync(transport: Transport, remote_jobs: str, stage: Path, seed: Path, jobs: Sequence[str],
                full_logs: bool, run_id: str) -> Pulled:
    pulled = Pulled()
    if full_logs:
        out = _rsync_pull(transport, remote_jobs, stage, seed, jobs, RESULTS + BOUNDED, None)
    else:
        out = _rsync_pull(transport, remote_jobs, stage, seed, jobs, RESULTS, None)
        out += _rsync_pull(transport, remote_jobs, stage, seed, jobs, BOUNDED, TAIL_BYTES)
    for job in jobs:
        if f'skipping non-regular file "{job}"' in out:
            pulled.refused.append(f"{job}: not a directory on the host (a link?): refused")
        for name in RESULTS + BOUNDED:
            if f'skipping non-regular file "{job}/{name}"' in out:
                pulled.refused.append(f"{job}/{name}: {NOT_REGULAR}")
    over = [(job, name) for job in jobs for name in BOUNDED if f"{job}/{name} is over max-size" in out]
    if over:
        source = SftpSource(transport, remote_jobs)
        for job, name in over:
            found = source.lstat(job, name)
            if found is None:
                continue
            regular, size = found
            if not regular:
                pulled.refused.append(f"{job}/{name}: {NOT_REGULAR}")
                continue
            (stage / job).mkdir(exist_ok=True)
            _copy(source, job, name, size, stage / job, False, run_id, pulled)
    return pulled


def _check_tree(stage: Path, pulled: Pulled) -> None:
    """After any transfer: the staging folder holds job folders of regular files, nothing else."""
    for job in stage.iterdir():
        if not stat.S_ISDIR(os.lstat(job).st_mode):
            pulled.refused.append(f"{job.name}: {NOT_REGULAR}")
            os.unlink(job)
            continue
        for entry in job.iterdir():
            if not stat.S_ISREG(os.lstat(entry).st_mode):
                pulled.refused.append(f"{job.name}/{entry.name}: {NOT_REGULAR}")
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    os.unlink(entry)


def pull(transport: Transport, remote_jobs: str, stage: Path, seed: Path, jobs: Sequence[str], rsync: bool,
         full_logs: bool, run_id: str) -> Pulled:
    """Copy the host's ``remote_jobs/<job>/<file>`` for the planned JOBS into STAGE."""
    try:
        if transport.host.is_local:
            pulled = _pull_files(LocalSource(transport._local(remote_jobs)), stage, jobs, full_logs, run_id)  # noqa: SLF001
        elif rsync:
            pulled = _pull_rsync(transport, remote_jobs, stage, seed, jobs, full_logs, run_id)
        else:
            pulled = _pull_files(SftpSource(transport, remote_jobs), stage, jobs, full_logs, run_id)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            from orchestrator.transport.diskspace import local_no_space

            raise local_no_space(stage.parent.parent, str(exc)) from None
        raise OrchError(f"fetching into {stage} failed: {exc}", ExitCode.RUN_STATE) from None
    _check_tree(stage, pulled)
    pulled.refused = list(dict.fromkeys(pulled.refused))
    return pulled


# --------------------------------------------------------------------------- verifying


def verify_job(job_dir: Path, role: str) -> List[str]:
    """The files of one finished job against its manifest: the manifest has the contract's
    shape and lists every file the role must produce; each listed file is here, a regular
    file, of the listed size and sha256."""
    from remote.files import sha256_file

    from orchestrator.results.scores import ROLE_FILES
    from orchestrator.contract.hostdocs import BadDocument, check_manifest, read_local

    name = job_dir.name
    try:
        manifest = read_local(job_dir / "manifest.json", check_manifest)
    except BadDocument as exc:
        return [f"{name}: bad manifest.json: {exc}"]
    if manifest is None:
        return [f"{name}: no manifest.json (results incomplete)"]
    files = manifest["files"]
    problems = [f"{name}: manifest.json does not list {f}, which a {role} job must produce"
                for f in ROLE_FILES.get(role, ()) if f not in files]
    for fname, meta in files.items():
        path = job_dir / fname
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            problems.append(f"{name}/{fname}: missing")
            continue
        if not stat.S_ISREG(st.st_mode):
            problems.append(f"{name}/{fname}: not a regular file")
        elif st.st_size != meta["size"]:
            problems.append(f"{name}/{fname}: size {st.st_size} != manifest {meta['size']}")
        elif sha256_file(str(path)) != meta["sha256"]:
            problems.append(f"{name}/{fname}: sha256 does not match the manifest")
    return problems


def verify(run_dir: Path, stage: Path, planned: Sequence[Dict], done: Sequence[str], complete: bool) -> List[str]:
    """Problems with the staged copy of a run's results (empty: verified).

    Each finished scoring job's files against its manifest, then the completeness rule
    (docs/CONTRACT.md): the whole merge when every scoring job is done, else each finished
    job on its own and the same test texts in each."""
    from orchestrator.results import scores

    problems: List[str] = []
    for job in planned:
        if job["name"] in done and job.get("role") in scores.SCORING_ROLES:
            problems += verify_job(stage / job["name"], job["role"])
    if problems:
        return problems
    try:
        run = scores.load_run(run_dir, jobs_dir=stage)
        if complete:
            scores.load_scores(run)
        else:
            scores.check_partial(run, list(done))
    except OrchError as exc:
        problems.append(exc.message)
    return problems
