"""One error type for every expected failure, caught once in cli.main()."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ExitCode(enum.IntEnum):
    OK = 0
    FAILED = 1  # a check ran and failed (smoke, eval threshold, verification)
    USAGE = 2  # bad command line
    CONFIG = 3  # a config file or value is wrong
    HOST_KEY = 4  # unknown or changed SSH host key
    UNREACHABLE = 5  # cannot connect / authenticate
    HOST_TOOLS = 6  # the host lacks tmux, rsync, python, ...
    REMOTE = 7  # a remote command failed
    RUN_STATE = 8  # the run is not in a state that allows this (exists, incomplete, ...)
    DATA = 9  # input data is malformed
    INTERRUPTED = 130


# What each code means to a user: `orch --help` and the README's table print these.
EXIT_CODE_MEANING = {
    ExitCode.OK: "success",
    ExitCode.FAILED: "a check ran and failed (smoke, eval.min_accuracy in eval, fetch-results, run --wait, "
    "study fetch, an error from hosts check)",
    ExitCode.USAGE: "bad command line",
    ExitCode.CONFIG: "a config file or value is wrong",
    ExitCode.HOST_KEY: "unknown, changed or revoked SSH host key",
    ExitCode.UNREACHABLE: "cannot connect or authenticate, or the connection was lost",
    ExitCode.HOST_TOOLS: "the host lacks something orch needs (tmux, rsync, python packages)",
    ExitCode.REMOTE: "a command on the host failed",
    ExitCode.RUN_STATE: (
        "the run is not in a state that allows this (exists, incomplete, failed), "
        "or its fetched results failed verification"
    ),
    ExitCode.DATA: (
        "input data is malformed, the class jobs' scores are inconsistent, or runs compared were scored on"
        " different test sets"
    ),
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}


def exit_code_table():
    """[(code, meaning)] in code order."""
    return [(code, EXIT_CODE_MEANING[code]) for code in ExitCode]


class OrchError(Exception):
    """A failure the user can act on: printed as one message, never as a traceback."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILED, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.code = code
        self.hint = hint
        self.run_created = False  # a launch that failed after making its run (`orch run` prints its id)

    def __str__(self) -> str:
        return self.message + (f"\n  hint: {self.hint}" if self.hint else "")


# What a Ctrl-C would leave behind now, for one that no code turned into its own message
# where it landed (orchestrator/commands/app.py prints "interrupted: NOTE").  orch sets it
# from the command line before a command starts ("nothing was launched"), and a command that
# changes things keeps it true as it goes (on_ctrl_c).
_ctrl_c = {"note": ""}


def on_ctrl_c(note: str) -> None:
    """Say what a Ctrl-C from now on leaves behind ("" : nothing worth saying)."""
    _ctrl_c["note"] = note


def is_interrupt(exc: BaseException) -> bool:
    """A Ctrl-C, as Python raised it or as a command's own OrchError(INTERRUPTED): what stops
    a loop over many runs, where any other run's error is noted and the loop goes on."""
    return isinstance(exc, KeyboardInterrupt) or (isinstance(exc, OrchError) and exc.code == ExitCode.INTERRUPTED)


def interrupted_line() -> str:
    """The one line a Ctrl-C prints where nothing more precise was said."""
    return "interrupted" + (f": {_ctrl_c['note']}" if _ctrl_c["note"] else "")


@dataclass
class Problem:
    """Something found wrong with a host (probe, job backend): one line and how to fix it."""

    level: str  # error | warning
    message: str
    hint: str = ""
