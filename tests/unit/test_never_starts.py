"""A job Slurm holds PENDING for a reason that means "never" (its time over the partition's
limit, an invalid QOS, ...) ends `orch run --wait` and `orch status --watch` with exit 8 and
the reason; a reason that lifts as other jobs end (Resources, AssocMaxJobsLimit) does not.
`orch run --wait` printed `pending (PENDING: PartitionTimeLimit)` for ever."""

import io

import pytest
from rich.console import Console

from orchestrator.backends.slurm import SlurmBackend
from orchestrator.backends.tmux import TmuxBackend
from orchestrator.commands import runs as runs_cmd
from orchestrator.errors import ExitCode, OrchError
from orchestrator.runs import hostops
from orchestrator.runs.state import job_row, never_starting

NEVER = [
    "PartitionTimeLimit",
    "PartitionConfig",  # what the test cluster says first for a time over MaxTime
    "BadConstraints",
    "DependencyNeverSatisfied",
    "InvalidQOS",
    "InvalidAccount",
    "QOSMaxWallDurationPerJobLimit",
    "AssocMaxWallDurationPerJobLimit",
    "QOSMaxGRESPerJob",
    "AssocMaxCpuPerJobLimit",
    "QOSMinGRES",
]
MAY_START = [
    "Priority",
    "Resources",
    "Dependency",
    "BeginTime",
    "None",
    "",
    "AssocMaxJobsLimit",  # a count of running jobs: lifts as they end
    "QOSMaxJobsPerUserLimit",
    "QOSMaxCpuPerUserLimit",
    "AssocGrpGRES",
    "PartitionNodeLimit",  # Slurm's docs: can also mean its nodes are down or drained
    "ReqNodeNotAvail",
    "PartitionDown",
    "JobHeldUser",
]


@pytest.mark.parametrize("reason", NEVER)
def test_reasons_that_mean_never(reason):
    info = {"job_id": "7", "state": "PENDING", "reason": reason}
    assert SlurmBackend().never_starts(info)
    assert not SlurmBackend().never_starts({**info, "state": "RUNNING"})


@pytest.mark.parametrize("reason", MAY_START)
def test_reasons_that_lift(reason):
    assert SlurmBackend().never_starts({"job_id": "7", "state": "PENDING", "reason": reason}) == ""


def test_status_words_it_and_names_the_job():
    info = {"job_id": "7", "state": "PENDING", "reason": "PartitionTimeLimit"}
    row = job_row({"name": "class-0", "alive": True, "backend": info}, 0.0, "", SlurmBackend())
    assert row.state == "pending"
    assert row.note == (
        "PENDING: PartitionTimeLimit: Slurm will never start it, its time limit (slurm.time) is over its partition's"
    )
    assert never_starting([row], SlurmBackend()) == [f"class-0 ({row.note})"]
    assert never_starting([row], TmuxBackend()) == []  # a tmux job is never held by a scheduler


def _pending(reason):
    return {
        "exists": True,
        "now": 0.0,
        "jobs": [
            {"name": "class-0", "alive": True, "backend": {"job_id": "7", "state": "PENDING", "reason": reason}},
            {"name": "class-1", "alive": True, "status": {"state": "running", "started": 1.0}, "backend": {}},
        ],
    }


def test_the_watch_ends_on_a_job_that_will_never_start(monkeypatch):
    asked = []

    def status(transport, workdir, code_hash, run_id, backend):
        asked.append(run_id)
        return _pending("PartitionTimeLimit" if len(asked) > 2 else "Priority")

    monkeypatch.setattr(hostops, "remote_status", status)
    record = {"host": "cluster", "backend": "slurm", "workdir": "/w", "code_hash": "c", "experiment": "smoke"}
    doc = {"jobs": [{"name": "class-0"}, {"name": "class-1"}]}
    view = Console(file=io.StringIO())
    rows = runs_cmd._watch(None, record, doc, "r1", 0.01, view)
    assert len(asked) == 3  # it waited while Slurm's reason was Priority, and stopped at the first "never"
    with pytest.raises(OrchError) as err:
        runs_cmd._never_starts("r1", record, rows, "smoke")
    assert err.value.code == ExitCode.RUN_STATE
    assert err.value.message.startswith("run r1 cannot end: class-0 (PENDING: PartitionTimeLimit: Slurm will never")
    assert "`orch cancel r1`" in err.value.hint and "orch run smoke --resume r1" in err.value.hint
    runs_cmd._never_starts(
        "r1", record, runs_cmd.rows_from_remote(_pending("Resources"), doc["jobs"], SlurmBackend()), "smoke"
    )
