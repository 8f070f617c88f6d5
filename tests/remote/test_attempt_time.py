"""The run time a job's next attempt carries on (`earlier_s`): what the wrapper reads from the
record it takes over (remote/wrapper.py earlier_run_s, remote/jobstate.py attempt_s).

A job Slurm killed at its hard time limit shows 2:16 while it is failed (status.json's
`ended` is Slurm's end time), and after `orch run --resume` its clock must go on from 2:16,
not from when its log was last written (1:14: a quiet payload writes nothing for minutes)."""

from __future__ import annotations

import json
import os
import time

import pytest

from remote.jobstate import attempt_s, elapsed_s
from remote.wrapper import earlier_run_s


def _job(tmp_path, status: dict, log_at: float, name: str = "status.json"):
    job = tmp_path / "job"
    job.mkdir()
    (job / name).write_text(json.dumps(status))
    (job / "log.txt").write_text("train step 40/100\n")
    os.utime(job / "log.txt", (log_at, log_at))
    return job


def test_a_recorded_end_counts_to_it_however_long_the_log_was_quiet(tmp_path):
    started = time.time() - 3600
    status = {"state": "failed", "started": started, "ended": started + 136, "reason": "Slurm stopped it (TIMEOUT)"}
    job = _job(tmp_path, status, log_at=started + 74, name="status.json.previous")  # a --resume set it aside
    assert elapsed_s(status, time.time()) == pytest.approx(136)  # what `orch status` showed while it was failed
    assert earlier_run_s(str(job)) == pytest.approx(136)  # what the resumed attempt counts on from (it counted 74)


def test_a_recorded_stop_counts_to_it(tmp_path):
    started = time.time() - 3600
    status = {"state": "waiting", "started": started, "stopped": started + 200, "earlier_s": 30.0}
    assert earlier_run_s(str(_job(tmp_path, status, log_at=started + 100))) == pytest.approx(230)


def test_an_attempt_that_died_unrecorded_counts_to_its_logs_last_write(tmp_path):
    started = time.time() - 3600
    status = {"state": "running", "started": started}  # a node failure: no end recorded
    assert earlier_run_s(str(_job(tmp_path, status, log_at=started + 74))) == pytest.approx(74)


def test_a_recorded_end_ahead_of_this_clock_counts_only_to_now():
    # a compute node's clock ahead of the login node's: time that has not passed is not counted
    assert attempt_s({"started": 100.0, "ended": 500.0}, until=150.0, now=200.0) == 100.0
    assert attempt_s({"started": 100.0, "ended": 500.0}, until=200.0) == 100.0
    assert attempt_s({"started": 100.0}, until=150.0, now=200.0) == 50.0
    assert attempt_s({"started": None, "ended": 500.0}, until=150.0) == 0.0
