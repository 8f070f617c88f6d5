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
  a cut log starts with a line saying so.  Asked for whole (--full-logs), each comes whole
  only up to FULL_LOG_BYTES (one bigger keeps its tail, and the message says so) and no
  bigger than the largest of its size class the first pass saw (plus LOG_GROWTH), and
  only if the sum of those bounds fits in this disk's free space with RESERVE_BYTES to
  spare (else nothing more is fetched, and the message says how much).
- Nothing fills the laptop's disk: status.json and manifest.json come first, each at most
  DOC_BYTES; the result files then come no bigger than the largest those manifests
  declare, and only if that many of that size fit in this disk's free space with
  RESERVE_BYTES to spare (else nothing more is fetched and the message says how much).
  A result file (or whole log) the verified copy already holds, by the declared sha256
  (a log: by its size, in a job folder whose status.json and manifest.json are the host's
  bytes), is hard-linked from it and never sent, so what a host sends is always what was
  counted.
- A fetch never drops what the local copy holds (merge.py): a job whose results are here
  but not finished on the host keeps its local folder, a job whose results changed there
  has the local folder kept aside in ``runs/<id>/previous/<time>/``, the user's files under
  ``jobs/`` stay; all of it hard-linked into the staged copy before the swap.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
import stat
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from orchestrator import backends
from orchestrator.config.project import Project
from orchestrator.contract.hostdocs import RESULT_FILES
from orchestrator.contract.records import load_record, load_resolved, update_record
from orchestrator.errors import ExitCode, OrchError
from orchestrator.localfiles import writing
from orchestrator.results.room import memory_shortfall, size_words
from orchestrator.runs import hostops
from orchestrator.runs.merge import (
    BOUNDED,
    DOC_BYTES,
    DOCS,
    Merge,
    apply_merge,
    drop_aside,
    move_evaluation,
    plan_merge,
    read_regular,
    regular_size,
    restore_evaluation,
    set_aside,
)
from orchestrator.runs.previous import earlier, earlier_line, fetch_lock
from orchestrator.transport.base import Transport
from orchestrator.transport.hostfiles import NOT_REGULAR
from orchestrator.transport.pull import Pulled, PullSpec, check_tree
from remote.jobstate import DONE, UNKNOWN

# DOCS (status.json, manifest.json) come first, whole up to DOC_BYTES; then RESULT_FILES
# (the contract's, hostdocs.py), as big as the manifests declare; BOUNDED (the logs) come as
# a tail when big (merge.py names them all: what a fetch writes into a job's folder)
TAIL_BYTES = 1 << 20
RESERVE_BYTES = 256 << 20  # the free space a fetch leaves on this machine's disk at least
# The most --full-logs takes of one log: a log this big is read with `orch logs` on the
# host, not copied to a laptop (a runaway or hostile job writes logs without end).
FULL_LOG_BYTES = 1 << 30
LOG_GROWTH = TAIL_BYTES  # what a log may grow by between a fetch's first pass and its whole-logs pass


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


def untouched_note(run_dir: Path) -> str:
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
    transport picks how: rsync seeded from SEED, SFTP, or a local copy): the documents and
    log tails, then the result files their manifests declare, then (``full_logs``) the
    logs whole (those the tails left cut, up to FULL_LOG_BYTES each)."""
    docs = PullSpec(
        dirs=jobs,
        names=DOCS + BOUNDED,
        max_bytes=DOC_BYTES,
        tail=BOUNDED,
        cut_note=lambda name, size: _cut_prefix(name, size, run_id),
    )
    pulled = _pull(transport, remote_jobs, stage, seed, docs)
    declared = declared_results(stage, jobs)
    if declared:
        held = link_held(stage, seed, declared)
        sizes = {job: size for job, (size, _) in declared.items()}
        new = {job: size for job, size in sizes.items() if job not in held}
        check_room(stage, sizes, new)
        if new:
            results = PullSpec(dirs=list(new), names=RESULT_FILES, max_bytes=max(1, *new.values()))
            _merge(pulled, _pull(transport, remote_jobs, stage, seed, results))
    if full_logs and pulled.cut:
        _pull_whole_logs(transport, remote_jobs, stage, seed, pulled)
    check_tree(stage, pulled)
    pulled.refused = list(dict.fromkeys(pulled.refused))
    return pulled


def _pull_whole_logs(transport: Transport, remote_jobs: str, stage: Path, seed: Path, pulled: Pulled) -> None:
    """--full-logs: fetch whole the logs the first pass cut, into a folder of their own;
    each that arrives replaces its tail.  Their sizes are known from that pass: each may
    come as big as its transfer's bound (whole_log_transfers: its own size class's largest
    and LOG_GROWTH more, since a running job's log grows meanwhile; never more than
    FULL_LOG_BYTES), and the sum of those bounds is what the room check counts.  One the
    verified copy holds whole, of the same attempt, is linked from it, not sent
    (_link_whole).  A log over the limit (or one that grew past its bound meanwhile) keeps
    its tail and is named in ``pulled.over_cap``: the fetch goes on, since a log is no result."""
    wanted = {key: size for key, size in pulled.cut.items() if size <= FULL_LOG_BYTES}
    pulled.over_cap.update({key: size for key, size in pulled.cut.items() if size > FULL_LOG_BYTES})
    for key in [key for key, size in wanted.items() if _link_whole(seed, stage, key, size)]:
        del wanted[key], pulled.cut[key]
    if not wanted:
        return
    transfers = whole_log_transfers(wanted)
    check_log_room(stage, wanted, transfers)
    whole = stage.parent / "whole-logs"
    whole.mkdir(exist_ok=True)
    for name, bound, jobs in transfers:
        got = _pull(transport, remote_jobs, whole, seed, PullSpec(dirs=jobs, names=(name,), max_bytes=bound))
        check_tree(whole, got)
        pulled.refused += [line for line in got.refused if NOT_REGULAR in line]
    refused = {line.split(": ", 1)[0] for line in pulled.refused}
    for key, size in wanted.items():
        if key in refused:
            continue
        if (whole / key).is_file():
            os.replace(whole / key, stage / key)
            del pulled.cut[key]
        else:  # grew past its bound since the first pass (or went away): its tail stays
            pulled.over_cap[key] = size


def whole_log_transfers(wanted: Dict[str, int]) -> List[Tuple[str, int, List[str]]]:
    """How --full-logs fetches the logs WANTED ("job/name" -> size the first pass saw): as
    (name, bound, jobs) transfers, each of one file name and one size class (sizes within a
    factor of two), its bound the class's largest plus LOG_GROWTH (at most FULL_LOG_BYTES).
    A transfer pulls exactly its jobs' files of that name, none bigger than its bound, so
    each log counts for its own class's bound, not for the largest of the run's: one 1 GiB
    log beside fifteen of 2 MB asks for about 1 GiB, not 16."""
    classes: Dict[Tuple[str, int], List[str]] = {}
    for key, size in sorted(wanted.items()):
        job, name = key.split("/", 1)
        classes.setdefault((name, max(1, size).bit_length()), []).append(job)
    transfers = []
    for (name, _), jobs in sorted(classes.items()):
        largest = max(wanted[f"{job}/{name}"] for job in jobs)
        transfers.append((name, min(FULL_LOG_BYTES, largest + LOG_GROWTH), jobs))
    return transfers


def _link_whole(seed: Path, stage: Path, key: str, size: int) -> bool:
    """Put the verified copy's log KEY ("job/name"), when it is the host's whole log, in
    place of its staged tail; False when it is not.  The whole log is a regular file of the
    host's SIZE in a job folder whose status.json and manifest.json are the bytes the host
    has now: the same attempt of the job (a rerun writes a new status.json), so a log of the
    same length from an earlier attempt is never put beside a new attempt's results."""
    job = key.split("/", 1)[0]
    if regular_size(seed / key) != size:
        return False
    status = read_regular(seed / job / "status.json")
    if status is None or status != read_regular(stage / job / "status.json"):
        return False
    if read_regular(seed / job / "manifest.json") != read_regular(stage / job / "manifest.json"):
        return False
    temp = stage / (key + ".whole")
    try:
        os.link(seed / key, temp)
        os.replace(temp, stage / key)
    except OSError:  # no hard links here: it is sent, and counted
        return False
    return True


def _merge(into: Pulled, more: Pulled) -> None:
    into.refused += more.refused
    into.cut.update(more.cut)


def _pull(transport: Transport, remote_jobs: str, stage: Path, seed: Path, spec: PullSpec) -> Pulled:
    try:
        return transport.pull(remote_jobs, stage, seed, spec)
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            from orchestrator.transport.diskspace import local_no_space

            raise local_no_space(stage.parent.parent, str(exc)) from None
        raise OrchError(f"fetching into {stage} failed: {exc}", ExitCode.RUN_STATE) from None


def declared_results(stage: Path, jobs: Sequence[str]) -> Dict[str, Tuple[int, str]]:
    """Job -> (size, sha256) its staged manifest declares for its result file (jobs without
    a readable one are left out: verification names what is wrong with them)."""
    from orchestrator.contract.hostdocs import BadDocument, check_manifest, read_local

    found = {}
    for job in jobs:
        try:
            manifest = read_local(stage / job / "manifest.json", check_manifest)
        except BadDocument:
            continue
        meta = (manifest or {}).get("files", {}).get(RESULT_FILES[0])
        if meta is not None:
            found[job] = (meta["size"], meta["sha256"])
    return found


def link_held(stage: Path, seed: Path, declared: Dict[str, Tuple[int, str]]) -> List[str]:
    """The jobs whose result file the verified copy SEED already holds with the declared
    sha256: hard-linked into STAGE from there, never sent again.  Sending them would let a
    host that serves other bytes than it declares write them here, beyond what the room
    check counted (a job held here counts for nothing)."""
    from remote.files import sha256_file

    held = []
    for job, (size, digest) in declared.items():
        mine = seed / job / RESULT_FILES[0]
        if regular_size(mine) != size or sha256_file(str(mine)) != digest:
            continue
        try:
            os.link(mine, stage / job / RESULT_FILES[0])
        except OSError:  # no hard links here: it is sent, and counted
            continue
        held.append(job)
    return held


def check_room(stage: Path, declared: Dict[str, int], new: Dict[str, int]) -> None:
    """Refuse, before any is sent, result files that could leave this disk with less than
    RESERVE_BYTES free, or that this machine has not the memory to check (results/room.py).
    DECLARED: every job's declared size; NEW: those to be sent (the rest are here already,
    link_held).  On disk, each new file may come as big as the largest of them (one limit
    per transfer), so that is what each counts for."""
    limit = max(new.values(), default=0)
    need = len(new) * limit
    free = shutil.disk_usage(stage).free
    if need and need + RESERVE_BYTES > free:
        biggest = max(new, key=lambda job: new[job])
        raise OrchError(
            f"this run's results may take up to {size_words(need)} here ({len(new)} x {size_words(limit)}: "
            f"the largest {RESULT_FILES[0]} the host declares, {biggest}'s), and this machine has "
            f"{size_words(free)} free where they would go ({stage.parent.parent}); nothing more was fetched "
            f"(a fetch leaves {size_words(RESERVE_BYTES)} free)",
            ExitCode.RUN_STATE,
            hint="free space there and fetch again (if that size is wrong, look at the manifest.json on the host)",
        )
    short = memory_shortfall(sum(declared.values()))
    if short:  # a fetch checks what it pulled by reading it all
        raise OrchError(
            f"this run's results are too big for this machine: {short}; nothing more was fetched",
            ExitCode.RUN_STATE,
            hint="fetch and evaluate the run on a machine with more memory (if that size is wrong, look at the "
            "manifest.json files on the host)",
        )


def check_log_room(stage: Path, sizes: Dict[str, int], transfers: Sequence[Tuple[str, int, List[str]]]) -> None:
    """Refuse, before any is sent, whole logs (SIZES: ``"job/name"`` -> size on the host)
    that could leave this disk with less than RESERVE_BYTES free: each may come as big as
    its transfer's bound (whole_log_transfers), so that is what each counts for."""
    need = sum(bound * len(jobs) for _, bound, jobs in transfers)
    free = shutil.disk_usage(stage).free
    if need and need + RESERVE_BYTES > free:
        biggest = max(sizes, key=lambda key: sizes[key])
        counts: Dict[int, int] = {}
        for _, bound, jobs in transfers:
            counts[bound] = counts.get(bound, 0) + len(jobs)
        each = ", ".join(
            f"{n} log{'s' if n > 1 else ''} x {size_words(bound)}" for bound, n in sorted(counts.items(), reverse=True)
        )
        raise OrchError(
            f"this run's whole logs may take up to {size_words(need)} here ({each}: the "
            f"largest, {biggest}, is {size_words(sizes[biggest])} on the host and may grow meanwhile), and this "
            f"machine has {size_words(free)} free where they would go ({stage.parent.parent}); nothing more was "
            f"fetched (a fetch leaves {size_words(RESERVE_BYTES)} free)",
            ExitCode.RUN_STATE,
            hint="free space there and fetch again, or fetch without --full-logs (the last "
            f"{TAIL_BYTES >> 20} MB of each log)",
        )


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
    from orchestrator.contract.hostdocs import scoring_roles
    from orchestrator.results import scores

    problems: List[str] = []
    roles = scoring_roles(planned)
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


# --------------------------------------------------------------------------- a run's fetch


def fetch(project: Project, transport: Transport, run_id: str, partial: bool, full_logs: bool = False) -> Dict:
    """Pull RUN's job files, verify them, and only then replace runs/<id>/jobs (see above).

    Whatever goes wrong, Ctrl-C included, the previous verified copy stays as it was, and
    the message says so."""
    local_dir = project.existing_run(run_id)
    untouched = untouched_note(local_dir)
    done: Dict[str, bool] = {}
    try:
        with fetch_lock(local_dir):  # `orch runs --drop-previous` waits for it (runs/previous.py)
            return _fetch(project, transport, run_id, local_dir, partial, full_logs, untouched, done)
    except KeyboardInterrupt:
        if done.get("swapped"):  # only the old copy's removal was left (a later fetch finishes it)
            raise OrchError(
                f"interrupted after the fetch of {run_id} put the new copy in {local_dir / 'jobs'}",
                ExitCode.INTERRUPTED,
                hint=f"`orch eval {run_id}` evaluates it",
            ) from None
        raise OrchError(
            f"interrupted: the fetch of {run_id} stopped; {untouched}",
            ExitCode.INTERRUPTED,
            hint=f"`orch fetch-results {run_id}` fetches again",
        ) from None


def _fetch(
    project: Project,
    transport: Transport,
    run_id: str,
    local_dir: Path,
    partial: bool,
    full_logs: bool,
    untouched: str,
    done: Dict[str, bool],
) -> Dict:
    """fetch()'s work; DONE["swapped"] is set once the new copy replaced the old one."""
    from orchestrator.runs.state import run_state

    record, doc = load_record(local_dir), load_resolved(local_dir)
    rows = _host_rows(transport, run_id, local_dir, record, doc)
    unfinished = _unfinished(rows, local_dir, partial)
    again = f"`orch fetch-results {run_id}` fetches again"
    with writing(local_dir / "jobs"):  # it makes its folder and clears a stopped fetch's
        staging = Staging(local_dir)
    try:
        pulled = _pull_verified(
            transport, run_id, local_dir, record, doc, staging, rows, unfinished, full_logs, untouched
        )
        merge, complete = _merge_local(local_dir, staging.jobs, doc["jobs"], rows, untouched, pulled.cut)
        aside, moved = _swap_in(local_dir, staging, merge, done)
    except OrchError as exc:
        if untouched in exc.message:
            raise
        raise OrchError(f"{exc.message}; {untouched}", exc.code, hint=exc.hint or again) from None
    except OSError as exc:  # keeping the local copy (links, a full disk): nothing was replaced
        raise OrchError(
            f"fetching {run_id} failed while keeping the local copy: {exc}; {untouched}", ExitCode.RUN_STATE, hint=again
        ) from None
    else:  # recorded before the old copy is removed: a Ctrl-C there leaves the record right
        _record_fetched(local_dir, rows, complete)
    finally:
        staging.discard()
    return {
        "complete": complete,
        "rows": rows,
        "state": run_state(rows),
        "cut": {key: size for key, size in pulled.cut.items() if key not in merge.whole},  # whole here: not cut
        "over_cap": pulled.over_cap,
        "kept": {job: next(r.state for r in rows if r.name == job) for job in merge.kept_results()},
        "changed": merge.changed,
        "previous": aside,
        "moved": moved,
    }


def _host_rows(transport: Transport, run_id: str, local_dir: Path, record: Dict, doc: Dict) -> List:
    """The run's jobs as the host sees them now (one status round trip)."""
    from orchestrator.runs.state import rows_from_remote

    backend = backends.for_record(record)
    status = hostops.remote_status(transport, record["workdir"], record["code_hash"], run_id, backend)
    if not status.get("exists"):
        raise hostops.not_on_host(local_dir, record, status.get("run_dir"))
    return rows_from_remote(status, doc["jobs"], backend)


def _unfinished(rows: List, local_dir: Path, partial: bool) -> List:
    """The scoring jobs not done on the host; refused unless PARTIAL."""
    # The pretrain job produces a checkpoint, not scores.
    scored = [r for r in rows if r.name != "pretrain"]
    unfinished = [r for r in scored if r.state != DONE]
    if unfinished and not partial:
        kept = [r.name for r in unfinished if (local_dir / "jobs" / r.name / "manifest.json").is_file()]
        raise OrchError(
            "run is not complete: "
            + ", ".join(
                f"{r.name} is {r.state}" + (f" ({r.reason})" if r.state == UNKNOWN else "") for r in unfinished
            ),
            ExitCode.RUN_STATE,
            hint="wait (`orch status --watch`), resume failed jobs, or fetch what exists with --partial"
            + (
                f" (which keeps the results of {', '.join(kept)} fetched before, in {local_dir / 'jobs'})"
                if kept
                else ""
            ),
        )
    return unfinished


def _pull_verified(
    transport: Transport,
    run_id: str,
    local_dir: Path,
    record: Dict,
    doc: Dict,
    staging: Staging,
    rows: List,
    unfinished: List,
    full_logs: bool,
    untouched: str,
) -> Pulled:
    """Pull the host's job files into STAGING and verify them there; refuse (naming each
    problem, and UNTOUCHED: what the fetch leaves) a copy that fails."""
    pulled = pull(
        transport,
        hostops.run_dir(record["workdir"], run_id) + "/jobs",
        staging.jobs,
        local_dir / "jobs",
        [j["name"] for j in doc["jobs"]],
        full_logs,
        run_id,
    )
    refused = {line.split(": ", 1)[0] for line in pulled.refused}
    problems = pulled.refused + [
        line  # a file refused above is not also "missing"
        for line in verify(
            local_dir, staging.jobs, doc["jobs"], [r.name for r in rows if r.state == DONE], not unfinished
        )
        if line.split(": ", 1)[0] not in refused
    ]
    if problems:
        raise OrchError(
            "fetched results failed verification:\n  " + "\n  ".join(problems) + f"\n{untouched}",
            ExitCode.RUN_STATE,
            hint=f"`orch fetch-results {run_id}` fetches again once the host's files are mended",
        )
    return pulled


def _swap_in(
    local_dir: Path, staging: Staging, merge: Merge, done: Dict[str, bool]
) -> Tuple[Optional[Path], List[str]]:
    """Keep the changed jobs' old copy and its evaluation aside, then swap the staged copy in.
    Returns the previous/<time> folder (None: nothing set aside) and the evaluation files
    moved there."""
    aside = set_aside(merge, local_dir)
    moved: List[str] = []
    try:
        if aside is not None:  # before the swap: no evaluation is ever beside results it was not made from
            moved = move_evaluation(local_dir, aside)
        staging.swap_in()
        done["swapped"] = True
    except BaseException:
        if aside is not None:  # nothing was replaced: put the evaluation back, drop the links
            restore_evaluation(local_dir, aside, moved)
            drop_aside(aside)
        raise
    return aside, moved


def _record_fetched(local_dir: Path, rows: List, complete: bool) -> None:
    # only the fetch's own keys: a command that changed the record meanwhile keeps its change
    update_record(
        local_dir,
        {
            "state": "fetched" if complete else "partial",
            "fetched_at": time.time(),
            "job_states": {r.name: r.state for r in rows},
        },
        drop=("job_states_at",),
    )


def _merge_local(local_dir: Path, stage: Path, planned: List[Dict], rows: List, untouched: str, cut: Dict[str, int]):
    """Put into the staged copy what the new local copy keeps of the old one (plan_merge)
    and check the whole again when results come from both.  Returns the merge and whether
    the new copy holds every scoring job's results."""
    done = [r.name for r in rows if r.state == DONE]
    merge = plan_merge(local_dir / "jobs", stage, [j["name"] for j in planned], done, cut)
    apply_merge(merge, local_dir / "jobs", stage)
    have = set(done) | set(merge.kept_results())
    complete = all(r.name in have for r in rows if r.name != "pretrain")
    if merge.kept_results():
        problems = verify(local_dir, stage, planned, sorted(have), complete)
        if problems:
            kept = ", ".join(merge.kept_results())
            folders = " and ".join(str(local_dir / "jobs" / job) for job in merge.kept_results())
            raise OrchError(
                f"the results of {kept} here (kept: the host has none finished) and the ones fetched do "
                "not make one run:\n  " + "\n  ".join(problems) + f"\nnothing was replaced: {untouched}",
                ExitCode.RUN_STATE,
                hint=f"to take what the host has without them, move {folders} "
                "out of the run folder (the only copy of those results) and fetch again; or resume them on the host",
            )
    return merge, complete


def fetch_notes(outcome: Dict, run_dir: Path) -> List[str]:
    """What a fetch kept of the local copy and set aside, in lines for the user."""
    from orchestrator.terminal import visible

    lines = [
        f"  {job} is {state} on the host: kept its results fetched before ({run_dir / 'jobs' / job})"
        for job, state in outcome.get("kept", {}).items()
    ]
    aside = outcome.get("previous")
    for job, what in outcome.get("changed", {}).items():
        lines.append(
            f"  {job}'s results changed on the host ({visible(what)}): the previous copy is in {aside / 'jobs' / job}"
        )
    if outcome.get("moved"):
        lines.append(f"  the evaluation of the previous results ({', '.join(outcome['moved'])}) moved to {aside}")
    if aside is not None:  # results are never deleted on their own: say what is kept, and how to drop it
        lines.append("  " + earlier_line(run_dir, earlier(run_dir)))
    return lines
