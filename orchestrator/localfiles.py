"""Files orch writes on this machine (run records, metrics, reports, plots, caches): the one
place where a write this machine refuses (a full disk, a quota, a read-only filesystem, no
permission) becomes an OrchError naming the file, what is wrong and what to do, instead of
a traceback.

The writes themselves are remote/files.py's (a temp file renamed into place, removed on
failure), so a failed write leaves the previous file as it was and no temp file behind.
Standard library only, and cheap to import: `orch status` writes local.json through it.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Iterator, Union

import remote.files as files
from orchestrator.errors import ExitCode, OrchError

NO_SPACE = (errno.ENOSPC, errno.EDQUOT)
REFUSED = NO_SPACE + (errno.EROFS, errno.EACCES, errno.EPERM)

PathLike = Union[str, Path]


def _existing(folder: Path) -> Path:
    """FOLDER, or the nearest folder above it that exists (a write may have made the rest)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _free(folder: Path) -> str:
    import shutil

    try:
        return f"{shutil.disk_usage(folder).free >> 20} MB free there"
    except OSError:
        return "free space unknown"


def write_refused(path: PathLike, exc: OSError) -> OrchError:
    """The OrchError for EXC, raised writing PATH on this machine (an errno of REFUSED)."""
    path = Path(path)
    folder = _existing(path.parent)
    kept = f"; the previous {path.name} is untouched" if path.is_file() else ""
    if exc.errno in NO_SPACE:
        quota = " (disk quota exceeded)" if exc.errno == errno.EDQUOT else ""
        return OrchError(
            f"no space left on this machine to write {path}{quota} ({_free(folder)}){kept}",
            ExitCode.RUN_STATE,
            hint=f"free space on the disk of {folder} (old runs are folders under runs/), then run the command again",
        )
    if exc.errno == errno.EROFS:
        return OrchError(
            f"cannot write {path}: {folder} is on a read-only filesystem{kept}",
            ExitCode.RUN_STATE,
            hint="remount it read-write, or run orch from a project on a writable disk",
        )
    return OrchError(
        f"cannot write {path}: permission denied{kept}",
        ExitCode.RUN_STATE,
        hint=f"check who owns {folder} and its permissions (`ls -ld {folder}`), then run the command again",
    )


@contextlib.contextmanager
def writing(path: PathLike) -> Iterator[None]:
    """Around a write of PATH (or a folder for it): a refused write becomes write_refused's
    OrchError; any other OSError stays what it is."""
    try:
        yield
    except OSError as exc:
        if exc.errno in REFUSED:
            raise write_refused(path, exc) from None
        raise


def atomic_write_bytes(path: PathLike, data: bytes) -> None:
    with writing(path):
        files.atomic_write_bytes(os.fspath(path), data)


def atomic_write_text(path: PathLike, text: str) -> None:
    with writing(path):
        files.atomic_write_text(path, text)


def atomic_write_json(path: PathLike, obj) -> None:
    with writing(path):
        files.atomic_write_json(os.fspath(path), obj)
