"""The launch holds a Slurm host's jobs against the cluster before it submits them, in its one
round trip: the check-and-launch program runs the backend's launch_probe (sinfo), launches
only on the output the controller checked, and a slurm.time over the partition's limit is
refused with exit 3, nothing submitted.  (`orch run --host overtime` queued jobs that stayed
`PENDING: PartitionTimeLimit` for good and exited 0, although `orch hosts check` failed.)"""

import json
import os

import pytest

from orchestrator.backends.slurm import SlurmBackend
from orchestrator.config.hosts import HostConfig
from orchestrator.config.slurm import SlurmOptions
from orchestrator.errors import ExitCode
from orchestrator.runs import hostlaunch
from orchestrator.transport.base import LocalTransport

SINFO = "gpu*|up|infinite|1|gpu:fake:2|n/a\nshort|up|5:00|1|gpu:fake:2|n/a\n"


@pytest.fixture
def host(tmp_path, monkeypatch):
    """A `local` host with a stand-in sinfo on PATH and a code snapshot whose hostctl launch
    says what it was given (the real one would submit)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    answer = tmp_path / "sinfo.answer"
    (bin_dir / "sinfo").write_text(f"#!/bin/sh\ncat {answer}\n[ -s {answer} ] || {{ echo down >&2; exit 1; }}\n")
    (bin_dir / "sinfo").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    code = tmp_path / "host" / "code" / "abc"
    (code / "remote").mkdir(parents=True)
    (code / ".complete").touch()
    (code / "remote" / "__init__.py").write_text("")
    (code / "remote" / "hostctl.py").write_text(
        "class backends:\n    BackendError = Exception\n\n"
        "def launch(plan, wd):\n"
        "    return {'backend': 'slurm', 'jobs': [{'name': 'c', 'started': True, 'error': ''}]}\n"
    )
    transport = LocalTransport(HostConfig(name="local", workdir=str(tmp_path / "host")))
    transport.answer = lambda text: answer.write_text(text)
    return transport


def _request(transport, expect):
    return {
        "code_hash": "abc",
        "modules": [],
        "tools": [],
        "data": [],
        "run_dir": "runs/r1",
        "fresh": False,  # launched again into the same run folder (as a resume would)
        "workdir": transport.workdir,
        "gpus": None,
        "plan": {"backend": "slurm", "jobs": []},
        "run_yaml": "",
        "probe": {"argv": ["sinfo", "-h"], "expect": expect},
    }


def test_it_launches_only_on_the_cluster_the_controller_checked(host):
    host.answer(SINFO)
    first = hostlaunch.check_and_launch(host, None, _request(host, None))
    assert first.launch is None and first.probe == SINFO  # reported, for the controller to check
    assert hostlaunch.check_and_launch(host, None, _request(host, SINFO)).launch is not None
    host.answer("")  # sinfo fails (slurmctld down): nothing to check, sbatch has the last word
    failed = hostlaunch.check_and_launch(host, None, _request(host, "gpu*|up|..."))
    assert failed.launch is not None and failed.probe is None


def test_a_time_over_the_partitions_limit_is_refused_before_anything_is_submitted(host):
    backend = SlurmBackend(SlurmOptions(partition="short", time="30"))
    host.answer(SINFO)
    request = _request(host, None)
    request["probe"] = hostlaunch.probe_request(backend, SINFO)
    assert request["probe"]["expect"] is None  # the cached cluster fails the checks: not launched on it
    reply = hostlaunch.check_and_launch(host, None, request)  # no sbatch here: its tools are not asked for
    assert reply.launch is None
    with pytest.raises(hostlaunch.NotLaunched) as err:
        hostlaunch.refuse_never_starting(backend, reply, host.host)
    assert err.value.code == ExitCode.CONFIG
    assert err.value.message == (
        "local: slurm.time '30' (30 min) is over the time limit of partition 'short', 5:00 (5 min): its jobs "
        "would wait in the queue for good (PENDING: PartitionTimeLimit); nothing was submitted"
    )
    assert "set slurm.time to 5:00 or less" in err.value.hint and "`orch hosts check local`" in err.value.hint
    fits = SlurmBackend(SlurmOptions(partition="short", time="5"))
    hostlaunch.refuse_never_starting(fits, reply, host.host)  # no error
    assert hostlaunch.probe_request(fits, SINFO) == {
        "argv": ["sinfo", "-h", "-o", "%P|%a|%l|%D|%G|%L"],
        "expect": SINFO,
    }
    nosuch = SlurmBackend(SlurmOptions(partition="nosuch"))
    with pytest.raises(hostlaunch.NotLaunched, match="'nosuch' is not a partition here"):
        hostlaunch.refuse_never_starting(nosuch, reply, host.host)


def test_the_last_launchs_cluster_is_cached_with_the_host(tmp_path):
    host = HostConfig(name="box", workdir="orch")
    state = hostlaunch.hostops.HostState(workdir="/home/u/orch", tools={}, gpus=[])
    hostlaunch.remember(tmp_path, host, hostlaunch.Reply(state, True, [], False, None, [], SINFO))
    assert hostlaunch.known_host(tmp_path, host)["probe"] == SINFO
    request = {"probe": {"argv": ["sinfo"], "expect": "old"}}
    assert hostlaunch.probe_changed(request, hostlaunch.Reply(state, True, [], False, None, [], SINFO))
    assert request["probe"]["expect"] == SINFO
    assert not hostlaunch.probe_changed(request, hostlaunch.Reply(state, True, [], False, None, [], None))
    cached = json.loads((tmp_path / ".orch" / "hosts" / "box.launch.json").read_text())
    assert cached["probe"] == SINFO
