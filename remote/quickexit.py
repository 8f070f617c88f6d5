"""Leave a payload process without the interpreter's teardown (remote/run_job.py and the
warm worker's children, remote/warm.py).  Standard library only."""

from __future__ import annotations

import os
import sys


def exit_now(code: int) -> None:
    """Exit without the interpreter's teardown.

    Unloading torch and its thread pools took 1.2-1.5 s after the job's last line on a
    busy 2-core host, time the wrapper (and a waiting class job, and the user) spent
    waiting for an exit code.  Every result file is written and closed by then (the
    kernel has the data; os._exit loses only Python's own buffers), so only the standard
    streams need flushing.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)
