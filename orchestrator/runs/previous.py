"""runs/<id>/previous/<time>/: the earlier copies of a run's results that fetches kept aside.

A fetch that finds a job's results changed on the host keeps the local copy (and the
evaluation made from it) in a new previous/<UTC time>/ before it replaces anything
(merge.py: set_aside).  Nothing removes them on its own: results are never deleted automatically.
This module says how many there are and what they take, and drops them when the user
asks (`orch runs --drop-previous RUN`):

- only folders directly inside previous/ are removed (never through a link: previous/
  itself must be a real folder, and an entry that is a link or a file stays, named);
- never while a fetch of the run is at work: a fetch holds runs/<id>/.fetch.lock shared
  for its whole length (several fetches may: each stages in its own folder), and the drop
  takes it exclusively without waiting, so it refuses instead of removing a folder a fetch
  is filling; a fetch that starts meanwhile waits the moment the drop takes.

The size said is what dropping them would free: the bytes of their files that nothing
outside previous/ holds (a fetch keeps aside by hard links, so a file both there and in
jobs/ takes its space once, and stays).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

from orchestrator.errors import ExitCode, OrchError
from orchestrator.localfiles import writing

PREVIOUS = "previous"
FETCH_LOCK = ".fetch.lock"


@contextlib.contextmanager
def fetch_lock(run_dir: Path, exclusive: bool = False) -> Iterator[None]:
    """Hold RUN_DIR's fetch lock: shared (a fetch; waits while a drop holds it), or
    ``exclusive`` (a drop: raises BlockingIOError at once while any fetch holds it)."""
    import fcntl

    with writing(run_dir / FETCH_LOCK):  # a read-only or full disk: one message
        lock = open(run_dir / FETCH_LOCK, "a")
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB if exclusive else fcntl.LOCK_SH)
        yield  # released when the file closes


def is_real_dir(path: Path) -> bool:
    """Whether PATH is a folder itself, not a link to one."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def copies(run_dir: Path) -> List[Path]:
    """The earlier copies kept in RUN_DIR/previous/, oldest first (the folders' names are
    UTC times); none when previous/ is absent or not a real folder."""
    base = run_dir / PREVIOUS
    if not is_real_dir(base):
        return []
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return []
    return [base / name for name in names if is_real_dir(base / name)]


def own_bytes(folders: List[Path]) -> int:
    """What removing FOLDERS would free: each file counted once (hard links), and only when
    every link to it is inside them."""
    seen: Dict[Tuple[int, int], List[int]] = {}  # (dev, inode) -> [size, links, links seen]
    for folder in folders:
        for root, _dirs, files in os.walk(folder):  # never follows links
            for name in files:
                try:
                    st = os.lstat(os.path.join(root, name))
                except OSError:
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                entry = seen.setdefault((st.st_dev, st.st_ino), [st.st_size, st.st_nlink, 0])
                entry[2] += 1
    return sum(size for size, links, found in seen.values() if found >= links)


@dataclass
class Earlier:
    """What RUN_DIR/previous/ holds: the copies and what dropping them frees."""

    folders: List[Path] = field(default_factory=list)
    bytes: int = 0

    @property
    def count(self) -> int:
        return len(self.folders)


def earlier(run_dir: Path) -> Earlier:
    folders = copies(run_dir)
    return Earlier(folders, own_bytes(folders) if folders else 0)


def earlier_line(run_dir: Path, found: Earlier) -> str:
    """What RUN_DIR/previous/ keeps and how to drop it, in the words the fetch and `orch runs` use."""
    from orchestrator.results.room import size_words

    one = found.count == 1
    return (
        f"{run_dir / PREVIOUS} keeps {found.count} earlier cop{'y' if one else 'ies'} of the run's results "
        f"({size_words(found.bytes)} of {'its' if one else 'their'} own): "
        f"`orch runs --drop-previous {run_dir.name}` removes {'it' if one else 'them'}"
    )


def drop(run_dir: Path) -> Tuple[Earlier, List[str]]:
    """Remove the earlier copies in RUN_DIR/previous/ (and previous/ when that empties it).
    Returns what was removed and the names of the entries left there (links, files: not
    orch's copies).  Refuses (RUN_STATE) while a fetch of the run holds its lock, and when
    previous/ is not a real folder."""
    base = run_dir / PREVIOUS
    if os.path.lexists(base) and not is_real_dir(base):
        raise OrchError(
            f"{base} is not a folder (a link or a file): orch keeps earlier copies in a folder of that name and "
            "did not make this; nothing was removed",
            ExitCode.RUN_STATE,
            hint="look at it and remove it yourself if it is not needed",
        )
    try:
        with fetch_lock(run_dir, exclusive=True):
            found = earlier(run_dir)
            for folder in found.folders:
                shutil.rmtree(folder)  # a real folder (checked): rmtree removes links inside, never follows them
            try:
                left = sorted(os.listdir(base)) if is_real_dir(base) else []
            except OSError:
                left = []
            if is_real_dir(base) and not left:
                base.rmdir()
    except BlockingIOError:
        raise OrchError(
            f"a fetch of {run_dir.name} is at work (it holds {run_dir / FETCH_LOCK}): its earlier copies in "
            f"{base} stay, since it may be keeping one aside right now",
            ExitCode.RUN_STATE,
            hint=f"run `orch runs --drop-previous {run_dir.name}` again once the fetch has ended",
        ) from None
    except OSError as exc:  # a permission, a busy file system: what is left stays, and is said
        raise OrchError(f"removing the earlier copies in {base} failed: {exc}", ExitCode.RUN_STATE) from None
    return found, left
