"""The one place where argv lists become shell text.

Every remote command is built as a list of strings and quoted here, once, with shlex.
Never f-string a shell command anywhere else.
"""

from __future__ import annotations

import re
import shlex
from typing import Mapping, Sequence


def quote(arg: str) -> str:
    return shlex.quote(str(arg))


def join(argv: Sequence[str]) -> str:
    """argv -> one shell command line; every element is a single literal word."""
    if not argv:
        raise ValueError("empty command")
    return " ".join(quote(a) for a in argv)


def with_env(argv: Sequence[str], env: Mapping[str, str]) -> str:
    """Run argv with extra environment variables (via env(1), so names are checked too)."""
    for name in env:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"illegal environment variable name: {name!r}")
    prefix = ["env"] + [f"{k}={v}" for k, v in env.items()]
    return join(prefix + list(argv))


def in_dir(directory: str, command: str) -> str:
    """`cd DIR && COMMAND` with DIR quoted; COMMAND must already be shell text from join()."""
    return f"cd {quote(directory)} && {command}"


def chain(*commands: str) -> str:
    """Join already-quoted commands with &&."""
    return " && ".join(commands)


def with_path(dirs: Sequence[str], command: str) -> str:
    """Prepend directories to PATH for COMMAND (shell text): `PATH=<dirs>:"$PATH" ...`."""
    if not dirs:
        return command
    return "PATH=" + quote(":".join(dirs)) + ':"$PATH"; export PATH; ' + command
