"""Pull a run's job files into a staging folder, verify them there, then swap them in.

What a host sends is untrusted, and the verified copy on the laptop is precious:

- Files land only in a fresh folder inside the run folder, ``runs/<id>/.fetch-<pid>/``,
  made here; nothing planted earlier can be in it, and every file is created new.
- Nothing fetched is anything but a regular file (the transport's pull,
  orchestrator/transport/pull.py): rsync runs without -l/-D (links, devices and fifos are
  skipped, and named in its output); SFTP and `local` copies look first (lstat) and open
  with no-follow semantics.  Any such file is refused, by name.
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
from pathlib import Path
from typing import Dict, List, Sequence

from orchestrator.errors import ExitCode, OrchError
from orchestrator.transport.base import Transport
from orchestrator.transport.pull import Pulled, PullSpec, check_tree

RESULTS = ("status.json", "manifest.json", "scores.jsonl")  # fetched whole, verified
BOUNDED = ("log.txt", "progress.jsonl")  # fetched as a tail when big
TAIL_BYTES = 1 << 20


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


# --------------------------------------------------------------------------- pulling


def _cut_prefix(name: str, size: int, run_id: str) -> bytes:
    if name != "log.txt":
        return b""  # progress.jsonl stays JSON lines; the fetch message says it was cut
    return (
        f"[orch] log cut by fetch-results: these are the last {TAIL_BYTES >> 20} MB of {size} bytes; "
        f"`orch fetch-results {run_id} --full-logs` fetches all of it\n"
    ).encode()


def pull(
    transport: Transport, remote_jobs: str, stage: Path, seed: Path, jobs: Sequence[str], full_logs: bool, run_id: str
) -> Pulled:
    """Copy the host's ``remote_jobs/<job>/<file>`` for the planned JOBS into STAGE (the
    transport picks how: rsync seeded from SEED, SFTP, or a local copy)."""
    spec = PullSpec(
        dirs=jobs,
        whole=RESULTS,
        tail=BOUNDED,
        tail_bytes=TAIL_BYTES,
        full=full_logs,
        cut_note=lambda name, size: _cut_prefix(name, size, run_id),
    )
    try:
        pulled = transport.pull(remote_jobs, stage, seed, spec)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            from orchestrator.transport.diskspace import local_no_space

            raise local_no_space(stage.parent.parent, str(exc)) from None
        raise OrchError(f"fetching into {stage} failed: {exc}", ExitCode.RUN_STATE) from None
    check_tree(stage, pulled)
    pulled.refused = list(dict.fromkeys(pulled.refused))
    return pulled


# --------------------------------------------------------------------------- verifying


def verify_job(job_dir: Path, role: str) -> List[str]:
    """The files of one finished job against its manifest: the manifest has the contract's
    shape and lists every file the role must produce; each listed file is here, a regular
    file, of the listed size and sha256."""
    from orchestrator.contract.hostdocs import BadDocument, check_manifest, read_local
    from orchestrator.results.scores import ROLE_FILES
    from remote.files import sha256_file

    name = job_dir.name
    try:
        manifest = read_local(job_dir / "manifest.json", check_manifest)
    except BadDocument as exc:
        return [f"{name}: bad manifest.json: {exc}"]
    if manifest is None:
        return [f"{name}: no manifest.json (results incomplete)"]
    files = manifest["files"]
    problems = [
        f"{name}: manifest.json does not list {f}, which a {role} job must produce"
        for f in ROLE_FILES.get(role, ())
        if f not in files
    ]
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
    # An adaptive-draws run's class jobs only train: its score job is what scores.
    roles = ("score",) if any(job.get("role") == "score" for job in planned) else scores.SCORING_ROLES
    for job in planned:
        if job["name"] in done and job.get("role") in roles:
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
