"""Session-wide guards: no test may leave a process running after the suite.

Every process the tests start lives in (or names on its command line) a folder under
pytest's temporary directory. Fixtures stop what they started; whatever is still alive
when the session ends is listed, killed, and fails the run, so a leak is fixed rather
than left to eat a shared machine (jobs with train.steps=100000 once ran on for 16 min).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/testprocs.py, tests/timing.py

import testprocs  # noqa: E402
import timing  # noqa: E402

LEFTOVER_GRACE_S = 10.0  # a cancelled wrapper records its end state, sshd children close


@pytest.hookimpl(tryfirst=True)  # before pytest-timeout reads the option
def pytest_configure(config):
    # The per-test limit (pyproject's `timeout`) guards against hangs: stretch it on a busy machine.
    if getattr(config.option, "timeout", "absent") is not None:
        return  # given on the command line, or pytest-timeout is not installed
    try:
        ini = float(config.getini("timeout") or 0)
    except (ValueError, TypeError):
        return
    if ini > 0:
        config.option.timeout = timing.scaled(ini)


# The files that take longest (minutes: Slurm time limits, studies, bootstraps), longest
# first.  pytest-xdist (--dist loadfile) hands files to workers in collection order, so
# starting these first keeps one long file from being the tail of the whole run.
LONGEST_FIRST = (
    "integration/test_slurm_requeue.py",
    "remote/test_compile.py",  # torch.compile on a CPU: minutes of inductor's C++ compiling
    "integration/test_slurm.py",
    "integration/test_study.py",
    "integration/test_bootstrap.py",
    "integration/test_hostile_host.py",
    "integration/test_interruptions.py",
    "integration/test_jobs_survive.py",
    "integration/test_study_partial.py",
    "integration/test_slurm_bootstrap.py",
    "integration/test_output.py",
    "integration/test_run_lifecycle.py",
    "remote/test_run_job.py",
    "integration/test_job_ownership.py",
    "integration/test_gpu_queue.py",
    "integration/test_local_host.py",
    "integration/test_ssh_security.py",
    "integration/test_hostile_inputs.py",
)


def pytest_collection_modifyitems(session, config, items):
    here = Path(__file__).resolve().parent
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}

    def key(item):
        try:
            rel = Path(str(item.fspath)).resolve().relative_to(here).as_posix()
        except ValueError:
            rel = ""
        return rank.get(rel, len(rank))

    items.sort(key=key)  # stable: the rest keep their order, as do a file's own tests


def _basetemp(session) -> str:
    factory = getattr(session.config, "_tmp_path_factory", None)
    base = getattr(factory, "_basetemp", None)  # None: no test used tmp_path, nothing was started there
    return str(base) if base else ""


def leftover_processes(base: str, grace_s: float = LEFTOVER_GRACE_S):
    deadline = time.time() + grace_s
    found = testprocs.processes_under([base])
    while found and time.time() < deadline:
        time.sleep(0.5)
        found = testprocs.processes_under([base])
    return found


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    base = _basetemp(session)
    if not base:
        return
    found = leftover_processes(base)
    if not found:
        return
    testprocs.terminate(found)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"{len(found)} process(es) outlived the tests (killed now); a fixture must stop them:"]
    lines += [f"  pid {pid}: {cmd[:300]}" for pid, cmd in sorted(found.items())]
    if reporter is not None:
        reporter.write("\n")
        reporter.write_sep("=", "leftover processes", red=True)
        for line in lines:
            reporter.write_line(line)
    else:
        print("\n".join(lines), file=sys.stderr)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
