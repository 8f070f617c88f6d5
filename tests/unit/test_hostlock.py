"""The bootstrap lock (orchestrator/provision/hostlock.py), run by real bash on this machine's
filesystem through the `local` transport: mkdir atomicity, owners, staleness, heartbeat."""

import json
import os
import re
import shlex
import sys
import time

import pytest
import testprocs
import timing

from orchestrator.config.hosts import HostConfig
from orchestrator.errors import ExitCode, OrchError
from orchestrator.provision import hostlock
from orchestrator.transport import shell
from orchestrator.transport.base import LocalTransport


def _transport(tmp_path):
    return LocalTransport(HostConfig(name="local", workdir=str(tmp_path / "w"), python=sys.executable))


def _lock(tmp_path, path=None):
    return hostlock.HostLock(
        _transport(tmp_path), str(path or tmp_path / "w" / "bootstrap" / "lock"), "nigel", "orch bootstrap"
    )


def test_second_holder_is_refused_with_the_owner_named(tmp_path):
    first, second = _lock(tmp_path), _lock(tmp_path)
    first.acquire()
    owner = json.loads((tmp_path / "w" / "bootstrap" / "lock" / "owner.json").read_text())
    assert owner["token"] == first.token and owner["pid"] == os.getpid() and owner["command"] == "orch bootstrap"
    with pytest.raises(OrchError) as err:
        second.acquire()
    e = err.value
    assert e.code == ExitCode.RUN_STATE
    assert "another `orch bootstrap` holds the lock on nigel" in e.message
    assert f"(pid {os.getpid()})" in e.message
    heartbeat = re.search(r"last heartbeat (\d+) s ago", e.message)
    assert heartbeat and int(heartbeat.group(1)) <= 5  # just taken (the clock may tick in between)
    assert "--break-lock" in e.hint
    # Only the holder's release removes it.
    second.held = True
    second.release()
    assert (tmp_path / "w" / "bootstrap" / "lock").is_dir()
    first.release()
    assert not (tmp_path / "w" / "bootstrap" / "lock").exists()
    second.acquire()  # free again


def test_a_stale_lock_is_taken_over_and_break_lock_takes_any(tmp_path):
    path = tmp_path / "w" / "bootstrap" / "lock"
    dead = _lock(tmp_path)
    dead.acquire()
    old = time.time() - hostlock.STALE_S - 60
    os.utime(path, (old, old))
    warnings = []
    heir = _lock(tmp_path)
    heir.acquire(warn=warnings.append)
    assert heir.held and json.loads((path / "owner.json").read_text())["token"] == heir.token
    assert len(warnings) == 1 and warnings[0].startswith("took over a stale (untouched for ")
    # The dead controller comes back: its release must not remove the heir's lock.
    dead.release()
    assert path.is_dir()

    breaker = _lock(tmp_path)
    with pytest.raises(OrchError):
        breaker.acquire()  # fresh: refused
    breaker.acquire(break_lock=True, warn=warnings.append)
    assert breaker.held and warnings[-1].startswith("broke lock of `orch bootstrap`")


def test_heartbeat_keeps_the_lock_fresh_only_while_the_command_runs(tmp_path):
    path = tmp_path / "w" / "bootstrap" / "lock"
    lock = _lock(tmp_path)
    lock.heartbeat_s = 0.2
    lock.acquire()
    old = time.time() - 1000
    os.utime(path, (old, old))
    res = lock.t.run(
        shell.join(lock.with_heartbeat(["bash", "-c", "sleep 1; echo done; exit 3"])), check=False, timeout=30
    )
    assert res.rc == 3 and res.stdout.strip() == "done"  # the command's own exit code and output
    touched = path.stat().st_mtime
    assert touched > time.time() - 10
    # The heartbeat loop ends with its shell (a touch already under way may still land: wait
    # for the loop to be gone, however busy the machine), then nothing touches the lock.
    deadline = time.time() + timing.scaled(30)
    while testprocs.processes_under([str(path)]) and time.time() < deadline:
        time.sleep(0.1)
    assert not testprocs.processes_under([str(path)]), "the heartbeat loop outlived its shell"
    os.utime(path, (old, old))
    time.sleep(1)  # five heartbeats' time
    assert path.stat().st_mtime == pytest.approx(old, abs=1)


def test_hostile_paths_are_data_not_code(tmp_path):
    weird = tmp_path / "w" / "a b;$(touch pwned)'\"" / "lock"
    lock = _lock(tmp_path, weird)
    lock.acquire()
    assert weird.is_dir() and not (tmp_path / "pwned").exists() and not os.path.exists("pwned")
    argv = lock.with_heartbeat(["echo", "x"])
    assert shlex.split(shell.join(argv))[-2:] == ["echo", "x"]
    lock.release()
    assert not weird.exists()


def test_unheld_lock_changes_nothing(tmp_path):
    lock = _lock(tmp_path)
    assert lock.with_heartbeat(["true"]) == ["true"] and lock.poll_args() == []
    lock.release()  # no-op, no error


@pytest.mark.parametrize("raw", ["[" * 100_000, '{"started": 1e300}', '{"started": "x"}', "[1]", "not json"])
def test_an_owner_file_of_any_shape_reads_as_an_unknown_owner(raw):
    from orchestrator.provision.hostlock import describe_owner

    assert describe_owner(raw) == "an unknown owner"
