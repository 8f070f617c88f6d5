"""What a fetch keeps of the local copy of a run's results (runs/<id>/jobs).

A fetch never drops what the local copy holds (plan_merge): a job whose results are here
but not finished on the host (lost, failed, running again) keeps its local folder; a job
whose manifest.json differs from the local one has the local folder kept aside in
``runs/<id>/previous/<time>/jobs/<job>`` (set_aside, with the evaluation made from it:
move_evaluation); and files under ``jobs/`` that no fetch writes (the user's) stay where
they are.  All of it is hard-linked into the staged copy before the swap (apply_merge), so
the verified copy is untouched until the rename (fetch.py).  previous.py counts and drops
the copies kept aside.

The names of a job folder's files a fetch writes live here, since they are what tells a
fetch's files from the user's; fetch.py pulls them.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from orchestrator.contract.hostdocs import RESULT_FILES
from orchestrator.errors import ExitCode, OrchError
from orchestrator.runs.previous import PREVIOUS, is_real_dir
from remote.backends import output_files

DOCS = ("status.json", "manifest.json")  # fetched first, whole up to DOC_BYTES
# then RESULT_FILES (the contract's, hostdocs.py), as big as the manifests declare; verified
# fetched as a tail when big; output_files: a scheduler's own output of a job (Slurm's
# slurm.out: why a job that never reached orch's wrapper failed), absent elsewhere
BOUNDED = ("log.txt", "progress.jsonl", *output_files())
DOC_BYTES = 1 << 20  # a real one is a few KB
FETCHED = DOCS + BOUNDED + RESULT_FILES  # the only names a fetch writes into a job's folder
# What `orch eval` writes from jobs/ (yardsticks.json is keyed by the data, not the results).
EVALUATION = ("metrics.json", "predictions.csv", "report.md", "plots")


@dataclass
class Merge:
    """How the staged copy and the local one (runs/<id>/jobs) make the new local copy.

    ``kept``: jobs whose local folder stays whole, as job -> whether it holds results (a
    manifest.json) the host has not (finished) any more.  ``changed``: jobs whose results
    the host changed, as job -> what changed in words; their local folder is kept aside.
    ``carried``: paths under jobs/ that no fetch writes (the user's own), kept in place.
    ``whole``: logs ("job/log.txt") of unchanged jobs that this fetch cut to their tail but
    that are here whole (fetched with --full-logs before): the whole one stays."""

    kept: Dict[str, bool] = field(default_factory=dict)
    changed: Dict[str, str] = field(default_factory=dict)
    carried: List[str] = field(default_factory=list)
    whole: List[str] = field(default_factory=list)

    def kept_results(self) -> List[str]:
        """The jobs whose results come from the local copy, not from this fetch."""
        return [job for job, results in self.kept.items() if results]


def read_regular(path: Path) -> Optional[bytes]:
    """The bytes of PATH if it is a regular file (never through a link), else None."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb") as f:
            fd = -1
            return f.read(DOC_BYTES + 1)
    finally:
        if fd >= 0:
            os.close(fd)


def regular_size(path: Path) -> Optional[int]:
    """PATH's size when it is a regular file (not through a link), else None."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def plan_merge(
    local: Path, stage: Path, jobs: Sequence[str], done: Sequence[str], cut: Optional[Dict[str, int]] = None
) -> Merge:
    """Compare the local copy LOCAL (runs/<id>/jobs) with the staged one STAGE, of the
    planned JOBS of which DONE are finished on the host (and verified in STAGE).

    A job with a manifest.json here and none finished on the host is kept whole (a host
    that lost or reruns a job must not take its results away); one whose manifest.json
    differs from the host's is changed (the bytes: a manifest lists every result file's
    sha256, so equal manifests vouch for equal results, and a damaged local file is
    mended by the fetch); a job folder the host has nothing of is kept whole.  Everything
    else under LOCAL that no fetch writes is carried over to the new copy.  CUT: the files
    this fetch cut to their tail ("job/name" -> size on the host); a job's such log that is
    here as a regular file of exactly that size is the whole of it, and stays."""
    merge = Merge()
    if not is_real_dir(local):
        return merge
    planned, finished = set(jobs), set(done)
    for entry in sorted(os.listdir(local)):
        here, there = local / entry, stage / entry
        if entry not in planned:
            merge.carried.append(entry)
            continue
        if not is_real_dir(here):  # something else where a job folder goes: not orch's
            if os.path.lexists(there):
                merge.changed[entry] = f"jobs/{entry} here was not a job folder"
            else:
                merge.carried.append(entry)
            continue
        mine = read_regular(here / "manifest.json")
        theirs = read_regular(there / "manifest.json") if entry in finished else None
        if mine is not None and theirs is None:
            merge.kept[entry] = True
            continue
        if mine is None and not os.path.lexists(there):
            merge.kept[entry] = False  # an unfinished job's logs, which the host no longer has
            continue
        if mine is not None and mine != theirs:
            merge.changed[entry] = describe_change(mine, theirs)
        else:
            for rel, size in (cut or {}).items():
                job, _, name = rel.partition("/")
                if job == entry and name in BOUNDED and regular_size(here / name) == size:
                    merge.whole.append(rel)
        merge.carried += [f"{entry}/{name}" for name in sorted(os.listdir(here)) if name not in FETCHED]
    return merge


def _listed(manifest: bytes) -> Optional[Dict[str, str]]:
    """A manifest's files as name -> sha256; None when it is not one."""
    from orchestrator.contract.hostdocs import loads

    try:
        files = loads(manifest)["files"]
        return {str(name): str(meta["sha256"]) for name, meta in files.items()}
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def describe_change(mine: bytes, theirs: bytes) -> str:
    """What differs between the local manifest MINE and the host's THEIRS, in words (file
    names and hash prefixes come from the host: the caller prints them escaped)."""
    old, new = _listed(mine), _listed(theirs)
    if old is None:
        return "the local manifest.json is damaged"
    if new is None:  # verified already: cannot happen for a scoring job
        return "manifest.json differs"
    words = []
    for name in sorted(set(old) | set(new)):
        if name not in new:
            words.append(f"{name} no longer listed")
        elif name not in old:
            words.append(f"{name} new")
        elif old[name] != new[name]:
            words.append(f"{name} sha256 {old[name][:12]} -> {new[name][:12]}")
    return ", ".join(words) if words else "manifest.json differs, the files it lists are the same"


def link_copy(src: Path, dst: Path) -> None:
    """Copy SRC (a file, a link or a folder tree) to DST: files as hard links where the
    file system allows (a fetch never writes into an existing file), else as copies; links
    as links, never followed.  A fifo, socket or device holds no data and is not copied."""
    st = os.lstat(src)
    if stat.S_ISDIR(st.st_mode):
        dst.mkdir(mode=stat.S_IMODE(st.st_mode) | 0o700)
        for name in sorted(os.listdir(src)):
            link_copy(src / name, dst / name)
    elif stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
    elif stat.S_ISREG(st.st_mode):
        try:
            os.link(src, dst, follow_symlinks=False)
        except OSError:
            shutil.copy2(src, dst, follow_symlinks=False)


def apply_merge(merge: Merge, local: Path, stage: Path) -> None:
    """Put into the staged copy what the new local copy keeps of the old one (see plan_merge)."""
    for job in merge.kept:
        if os.path.lexists(stage / job):
            shutil.rmtree(stage / job)  # what the host has of a job it did not finish
        link_copy(local / job, stage / job)
    for rel in merge.whole:  # the whole log fetched before, not this fetch's tail of it
        os.unlink(stage / rel)
        link_copy(local / rel, stage / rel)
    for rel in merge.carried:
        target = stage / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if not os.path.lexists(target):  # a fetch writes no such name: never taken
            link_copy(local / rel, target)


def previous_dir(run_dir: Path) -> Path:
    """A new, empty runs/<id>/previous/<UTC time>[-n] folder."""
    base = run_dir / PREVIOUS
    base.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%SZ", time.gmtime())
    for n in range(1, 1000):
        where = base / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            where.mkdir()
            return where
        except FileExistsError:
            continue
    raise OrchError(f"{base} has too many folders of {stamp}", ExitCode.RUN_STATE)


def set_aside(merge: Merge, run_dir: Path) -> Optional[Path]:
    """Copy (hard links) the local folders of the changed jobs into a new previous/<time>/jobs/:
    before the swap, so the verified copy stays untouched until then."""
    if not merge.changed:
        return None
    where = previous_dir(run_dir)
    try:
        (where / "jobs").mkdir()
        for job in merge.changed:
            link_copy(run_dir / "jobs" / job, where / "jobs" / job)
    except BaseException:
        drop_aside(where)
        raise
    return where


def drop_aside(where: Path) -> None:
    """Remove a previous/<time> folder made for a fetch that replaced nothing (it holds only
    links to the copy that stays, the evaluation put back), and previous/ itself when that
    leaves it empty."""
    shutil.rmtree(where, ignore_errors=True)
    try:
        where.parent.rmdir()
    except OSError:
        pass


def move_evaluation(run_dir: Path, where: Path) -> List[str]:
    """Move the evaluation of the replaced results (metrics.json, report.md, ...) into WHERE:
    it describes results that are no longer in jobs/.  Returns the names moved."""
    moved = []
    for name in EVALUATION:
        if os.path.lexists(run_dir / name):
            os.rename(run_dir / name, where / name)
            moved.append(name)
    return moved


def restore_evaluation(run_dir: Path, where: Path, names: Sequence[str]) -> None:
    """Undo move_evaluation (a fetch that then replaced nothing)."""
    for name in names:
        if not os.path.lexists(run_dir / name):
            os.rename(where / name, run_dir / name)
