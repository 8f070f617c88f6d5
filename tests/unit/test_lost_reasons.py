"""A lost job says why: what its backend no longer shows and the last record its folder has
(it showed a bare `lost`, and the status table hid even a status.json reason it had)."""

from orchestrator.backends.slurm import SlurmBackend
from orchestrator.backends.tmux import TmuxBackend
from orchestrator.commands.statustable import render
from orchestrator.runs.state import job_row


def _row(status, info, backend=None):
    return job_row(
        {"name": "c", "alive": False, "status": status, "backend": info}, 10.0, "", backend or SlurmBackend()
    )


def test_a_queued_job_scancelled_and_forgotten_never_started():
    row = _row(None, {"job_id": "42"})
    assert row.state == "lost"
    assert row.reason == "Slurm no longer lists job 42 and it left no end record: never started"


def test_a_job_forgotten_after_it_ran_names_its_last_record():
    status = {"state": "waiting", "started": 1.0, "reason": "stopped by the scheduler (signal 15)"}
    row = _row(status, {"job_id": "42"})
    assert row.reason == (
        "Slurm no longer lists job 42 and it left no end record: "
        "last record: waiting (stopped by the scheduler (signal 15))"
    )
    assert _row({"state": "running", "started": 1.0}, {"job_id": "42"}).reason.endswith("last record: running")


def test_a_job_the_launch_never_handed_over_and_a_tmux_session_gone():
    assert _row(None, {}).reason == "it never started: the launch did not start it (`--resume` starts it)"
    tmux = _row({"state": "running", "started": 1.0}, {"session": "orch-r-c"}, TmuxBackend())
    assert tmux.reason == "its tmux session orch-r-c is gone and it left no end record: last record: running"


def test_the_status_table_shows_a_lost_jobs_reason():
    row = _row(None, {"job_id": "42"})
    table = render("r", "cluster", [row], SlurmBackend())
    assert "lost (Slurm no longer lists job 42 and it left no end record: never started)" in table
