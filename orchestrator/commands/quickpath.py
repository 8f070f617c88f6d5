"""What the Typer-free quick paths share (quickstatus, studystatus, quickfetch, quickeval):
recognising a plain command line, and running it the way the Typer app would.

orchestrator/cli.py offers a command line to each quick path before loading Typer.  A quick
path takes only the plain forms of its command; anything else (`--help`, an unknown option,
a second argument, an option without its value) is left to Typer, so help texts and usage
errors stay exactly Typer's.  Standard library only.
"""

from __future__ import annotations

import sys
from typing import Callable, Collection, List, Optional, Tuple

from orchestrator.errors import ExitCode, OrchError

QUIET = ("-q", "--quiet")

Plain = Tuple[Optional[str], List[Tuple[str, Optional[str]]], bool]


def plain(
    argv: List[str], words: List[str], flags: Collection[str] = (), valued: Collection[str] = ()
) -> Optional[Plain]:
    """For `[-q] WORDS... [ARG] [FLAG | VALUED VALUE]... [-q]` in any order after WORDS:
    (ARG or None, the options given in order as (option, value or None), --quiet given);
    None for anything else."""
    i = 0
    quiet = False
    while i < len(argv) and argv[i] in QUIET:  # the root's --quiet
        quiet = True
        i += 1
    if argv[i : i + len(words)] != list(words):
        return None
    rest = argv[i + len(words) :]
    arg: Optional[str] = None
    given: List[Tuple[str, Optional[str]]] = []
    j = 0
    while j < len(rest):
        a = rest[j]
        if a in flags:
            given.append((a, None))
        elif a in valued and j + 1 < len(rest) and not rest[j + 1].startswith("-"):
            given.append((a, rest[j + 1]))
            j += 1
        elif a in QUIET:
            quiet = True
        elif a.startswith("-") or arg is not None:
            return None
        else:
            arg = a
        j += 1
    return arg, given, quiet


def error(exc: OrchError, stream=None) -> None:
    """An OrchError as the Typer app prints it: "error: MESSAGE" (the message alone for Ctrl-C) and "  hint: HINT" on
    stderr, plain text (the message may quote what a host printed: its control characters
    are shown as escapes, orchestrator/terminal.py)."""
    from orchestrator.commands.statustable import use_colour
    from orchestrator.terminal import shown

    stream = stream or sys.stderr
    label = "\x1b[1;31merror:\x1b[0m " if use_colour(stream) else "error: "
    # Ctrl-C stops a command, it is not the command's failure: its message says what stopped
    stream.write(f"{'' if exc.code == ExitCode.INTERRUPTED else label}{shown(exc.message)}\n")
    if exc.hint:
        stream.write(f"  hint: {shown(exc.hint)}\n")
    stream.flush()


def run(command: Callable[[], object]) -> int:
    """COMMAND's exit code as the Typer app would give it: 0, an OrchError's code (its
    message on stderr), or INTERRUPTED on Ctrl-C."""
    try:
        command()
    except OrchError as exc:
        error(exc)
        return int(exc.code)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return int(ExitCode.INTERRUPTED)
    return 0
