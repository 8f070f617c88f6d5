"""Small file helpers for the job folder: atomic writes, JSONL appends, hashes.

Standard library only.  Every whole-file write goes to a temp file in the same folder
and is renamed over the target (``os.replace``), so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from typing import Any, Iterable


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str, data: bytes) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        # mkstemp makes the file 0600; give it the mode open() would (0666 less the umask),
        # like every other file in the folder.
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    """Any whole text file, on either side (the controller's run records and reports too)."""
    atomic_write_bytes(str(path), text.encode("utf-8"))


def atomic_write_json(path: str, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, sort_keys=False) + "\n").encode())


def atomic_write_jsonl(path: str, rows: Iterable[Any]) -> None:
    text = "".join(json.dumps(r) + "\n" for r in rows)
    atomic_write_bytes(path, text.encode())


def append_jsonl(path: str, obj: Any) -> None:
    """Append one line; a single ``write`` of a short line is what a tailing reader sees whole."""
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(obj) + "\n")
        f.flush()


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def stable_seed(*parts: Any) -> int:
    """A 63-bit seed from any values, identical across processes and machines.

    (Python's ``hash`` of a str is salted per process, so it cannot be used.)
    """
    key = "\x1f".join(str(p) for p in parts).encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") & ((1 << 63) - 1)


def read_json(path: str, max_bytes: int = 1 << 20):
    """A JSON file a job or the host wrote, or None: never blocks on a fifo someone put in
    its place, never reads more than MAX_BYTES (hostctl and the wrapper read these)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return json.loads(os.read(fd, max_bytes))
    except (OSError, ValueError, RecursionError):
        return None
    finally:
        os.close(fd)


def read_dict(path: str) -> dict:
    """A status-like file as a dict ({} when absent or not an object): for decisions on the host."""
    doc = read_json(path)
    return doc if isinstance(doc, dict) else {}
