"""Small file helpers for the job folder: atomic writes, JSONL appends, hashes.

Standard library only.  Every whole-file write goes to a temp file in the same folder
and is renamed over the target (``os.replace``), so a reader never sees half a file.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import tempfile
from typing import Any, Iterable, Optional


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


class BadFile(ValueError):
    """A file that is there but is no document: not a regular file, too big, unreadable,
    not JSON.  Its text says what is wrong in a few words (it is shown to the user)."""


MAX_DEPTH = 32  # a job's documents nest 1 or 2 deep; far deeper breaks the reader of hostctl's reply
_KINDS = (
    (stat.S_ISLNK, "a symlink"),
    (stat.S_ISFIFO, "a fifo"),
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a plain file"


def open_regular(path: str) -> Optional[int]:
    """A read-only descriptor of the regular file PATH; None when there is none; BadFile
    when something else is there.  Never follows a symlink (O_NOFOLLOW), never opens a
    fifo or a device (lstat first; O_NONBLOCK all the same, should one be swapped in), so
    a reader cannot block or touch hardware because of what a job folder holds."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise BadFile(f"unreadable ({exc.strerror})") from None
    if not stat.S_ISREG(mode):
        raise BadFile(f"{_kind(mode)}, not a regular file")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY)
    except (FileNotFoundError, NotADirectoryError):
        return None  # removed since the lstat
    except OSError as exc:
        why = "a symlink, not a regular file" if exc.errno == errno.ELOOP else f"unreadable ({exc.strerror})"
        raise BadFile(why) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise BadFile(f"{_kind(mode)}, not a regular file")
    return fd


def too_deep(value: Any, max_depth: int = MAX_DEPTH) -> bool:
    """Whether VALUE nests lists and objects more than MAX_DEPTH deep (no recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > max_depth:
                return True
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))
    return False


def parse_json(data: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON document DATA holds; BadFile, saying why in a few words, when it holds
    none (not JSON, cut off, a number too long to read, nested too deep)."""
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        raise BadFile(f"not valid JSON ({exc.msg} at byte {exc.pos})") from None
    except UnicodeDecodeError:
        raise BadFile("not valid JSON (not UTF-8 text)") from None
    except RecursionError:
        raise BadFile(f"not valid JSON (nested more than {max_depth} deep)") from None
    except ValueError as exc:  # an integer of 5000 digits: int() refuses it
        why = "a number with too many digits" if "digits" in str(exc) else "a value that cannot be read"
        raise BadFile(f"not valid JSON ({why})") from None
    if too_deep(doc, max_depth):
        raise BadFile(f"not valid JSON (nested more than {max_depth} deep)")
    return doc


def load_json(path: str, max_bytes: int = 1 << 20, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON document in PATH, or None when there is no such file.  BadFile when a file
    is there but holds no document: not a regular file (see open_regular), more than
    MAX_BYTES, unreadable, or not JSON (parse_json) - "there is none" and "there is one
    that cannot be read" are different answers (docs/CONTRACT.md, hostctl status)."""
    fd = open_regular(path)
    if fd is None:
        return None
    try:
        size = os.fstat(fd).st_size
        if size > max_bytes:
            raise BadFile(f"{size} bytes, more than the {max_bytes} a document may have")
        chunks, got = [], 0
        while got <= max_bytes:
            chunk = os.read(fd, max_bytes + 1 - got)
            if not chunk:
                break
            chunks.append(chunk)
            got += len(chunk)
    except OSError as exc:
        raise BadFile(f"unreadable ({exc.strerror})") from None
    finally:
        os.close(fd)
    if got > max_bytes:
        raise BadFile(f"more than the {max_bytes} bytes a document may have")
    return parse_json(b"".join(chunks), max_depth)


def read_json(path: str, max_bytes: int = 1 << 20):
    """load_json, with None for a file that holds no document too (where absent and
    unreadable mean the same: "nothing to go on")."""
    try:
        return load_json(path, max_bytes)
    except BadFile:
        return None


def read_dict(path: str) -> dict:
    """A status-like file as a dict ({} when absent or not an object): for decisions on the host."""
    doc = read_json(path)
    return doc if isinstance(doc, dict) else {}
