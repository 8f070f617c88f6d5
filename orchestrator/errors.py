"""One error type for every expected failure, caught once in cli.main()."""
from __future__ import annotations

import enum


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


class OrchError(Exception):
    """A failure the user can act on: printed as one message, never as a traceback."""

    def __init__(self, message: str, code: ExitCode = ExitCode.FAILED, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.code = code
        self.hint = hint

    def __str__(self) -> str:
        return self.message + (f"\n  hint: {self.hint}" if self.hint else "")
