"""Time limits for tests that scale with how busy the machine is.

A limit in a test is a guard against a hang, never a claim about speed: on a 2-core
machine shared with other work (load average 10-23) everything takes several times
longer than on an idle one, and a fixed limit turns that into a false failure.
ORCH_TEST_TIME_SCALE fixes the factor (e.g. 4 on a slow CI runner).
"""

from __future__ import annotations

import os
import time

MAX_FACTOR = 8.0


def load_factor() -> float:
    """How many times longer than on an idle machine things may take right now (>= 1)."""
    fixed = os.environ.get("ORCH_TEST_TIME_SCALE")
    if fixed:
        return max(1.0, float(fixed))
    try:
        load = os.getloadavg()[0]
    except OSError:
        return 1.0
    return min(MAX_FACTOR, max(1.0, load / (os.cpu_count() or 1)))


def scaled(seconds: float) -> float:
    """A limit of ``seconds`` on an idle machine, stretched by the current load."""
    return seconds * load_factor()


def wait_for(pred, timeout: float = 120, what: str = "condition", poll: float = 0.5) -> None:
    """Return once ``pred()`` is true; fail after ``timeout`` seconds (scaled by the load)."""
    deadline = time.time() + scaled(timeout)
    while time.time() < deadline:
        if pred():
            return
        time.sleep(poll)
    raise AssertionError(f"timed out waiting for {what}")
