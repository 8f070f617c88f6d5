"""A study's status: every run of a host in one round trip, one host helper process per
code snapshot (`hostctl status-all`), and runs of an older snapshot still answered.

Runs on the built-in `local` transport (bash, no SSH) against real run folders and real
copies of remote/ as code snapshots."""

import json
import shutil
import sys
from pathlib import Path

import pytest

from orchestrator import backends
from orchestrator.config.hosts import HostConfig
from orchestrator.errors import OrchError
from orchestrator.runs.hostops import remote_status_many
from orchestrator.transport.base import LocalTransport

REPO = Path(__file__).resolve().parents[2]
TMUX = backends.get("tmux")


class CountingTransport(LocalTransport):
    def __init__(self, host):
        super().__init__(host)
        self.commands = []

    def _exec(self, command, timeout, stdin, max_output):
        self.commands.append(command)
        return super()._exec(command, timeout, stdin, max_output)


def _snapshot(workdir: Path, code_hash: str, edit=None) -> None:
    dest = workdir / "code" / code_hash / "remote"
    shutil.copytree(REPO / "remote", dest, ignore=shutil.ignore_patterns("__pycache__"))
    if edit:
        path = dest / "hostctl.py"
        path.write_text(edit(path.read_text()))


def _run(workdir: Path, run_id: str, state: str) -> None:
    job = workdir / "runs" / run_id / "jobs" / "neg"
    job.mkdir(parents=True)
    (job / "status.json").write_text(json.dumps({"state": state, "created": 1.0}))


def _older(text: str) -> str:
    """hostctl as it was before status-all: argparse rejects the subcommand."""
    return text.replace(
        '("status", "status-all", "cancel", "launch", "follow")', '("status", "cancel", "launch", "follow")'
    )


@pytest.fixture
def host(tmp_path):
    workdir = tmp_path / "w"
    _snapshot(workdir, "new")
    _snapshot(workdir, "old", _older)
    for run_id, state in (("s-a-s0", "done"), ("s-b-s0", "failed"), ("s-a-s1", "done")):
        _run(workdir, run_id, state)
    return CountingTransport(HostConfig(name="local", workdir=str(workdir), python=sys.executable)), str(workdir)


def test_runs_of_one_snapshot_are_one_host_helper_in_one_round_trip(host):
    transport, workdir = host
    replies = remote_status_many(
        transport,
        [(workdir, "new", r, TMUX) for r in ("s-a-s0", "s-b-s0", "s-a-s1")] + [(workdir, "new", "gone", TMUX)],
    )
    assert len(transport.commands) == 1 and transport.commands[0].count("remote.hostctl") == 1
    assert "status-all" in transport.commands[0]
    assert [replies[r]["jobs"][0]["status"]["state"] for r in ("s-a-s0", "s-b-s0", "s-a-s1")] == [
        "done",
        "failed",
        "done",
    ]
    assert replies["gone"]["exists"] is False


def test_runs_of_an_older_snapshot_are_asked_one_status_each(host):
    transport, workdir = host
    replies = remote_status_many(
        transport,
        [(workdir, "new", "s-a-s0", TMUX), (workdir, "old", "s-b-s0", TMUX), (workdir, "old", "s-a-s1", TMUX)],
    )
    assert len(transport.commands) == 2  # the second only for the old snapshot's runs
    assert transport.commands[1].count("remote.hostctl status ") == 2
    assert {r: replies[r]["jobs"][0]["status"]["state"] for r in replies} == {
        "s-a-s0": "done",
        "s-b-s0": "failed",
        "s-a-s1": "done",
    }


def test_a_status_all_reply_of_the_wrong_shape_is_an_error_for_its_runs_only(host):
    transport, workdir = host
    # this snapshot's helper answers one reply fewer than it was asked for
    _snapshot(Path(workdir), "bad", lambda t: t.replace("run_states(opts.run_dir,", "run_states(opts.run_dir[1:],"))
    replies = remote_status_many(
        transport,
        [(workdir, "bad", "s-a-s0", TMUX), (workdir, "bad", "s-b-s0", TMUX), (workdir, "new", "s-a-s1", TMUX)],
    )
    assert isinstance(replies["s-a-s0"], OrchError) and isinstance(replies["s-b-s0"], OrchError)
    assert "status-all reply" in replies["s-a-s0"].message
    assert replies["s-a-s1"]["jobs"][0]["status"]["state"] == "done"
