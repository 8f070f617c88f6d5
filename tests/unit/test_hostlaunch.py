"""runs/hostlaunch.py: the check-and-launch program on the `local` transport, and what
the controller makes of a reply it cannot trust."""

import json

import pytest

from orchestrator.config.hosts import HostConfig
from orchestrator.errors import OrchError
from orchestrator.runs import hostlaunch
from orchestrator.transport.base import LocalTransport, Result


def _local(tmp_path):
    return LocalTransport(HostConfig(name="local", workdir=str(tmp_path / "host")))


def test_missing_code_and_data_are_reported_and_readied_nothing_launched(tmp_path):
    t = _local(tmp_path)
    request = {
        "code_hash": "abc",
        "staging": ".staging-abc-1",
        "modules": [],
        "tools": [],
        "list_gpus": False,
        "data": ["data/x-d.jsonl"],
        "run_dir": "runs/r1",
    }
    reply = hostlaunch.check_and_launch(t, None, request)
    assert (reply.code, reply.missing_data, reply.run_exists, reply.launch) == (False, ["data/x-d.jsonl"], False, None)
    assert reply.state.workdir == str(tmp_path / "host")
    assert (tmp_path / "host" / "code" / ".staging-abc-1").is_dir() and (tmp_path / "host" / "data").is_dir()
    # The staging folder filled (by a push), the next round trip publishes it.
    (tmp_path / "host" / "code" / ".staging-abc-1" / "f.py").write_text("X = 1\n")
    reply = hostlaunch.check_and_launch(t, None, {**request, "publish": ".staging-abc-1"})
    assert reply.code and (tmp_path / "host" / "code" / "abc" / ".complete").is_file()
    assert (tmp_path / "host" / "code" / "abc" / "f.py").read_text() == "X = 1\n"
    assert not (tmp_path / "host" / "code" / ".staging-abc-1").exists()
    assert not (tmp_path / "host" / "runs").exists()  # nothing launched: no plan


class Lying(LocalTransport):
    def __init__(self, tmp_path, stdout):
        super().__init__(HostConfig(name="local", workdir=str(tmp_path)))
        self.stdout = stdout

    def _exec(self, command, timeout, stdin, max_output):
        return Result(self.stdout, "", 0)


@pytest.mark.parametrize(
    "reply",
    [
        "{",
        '{"code": "yes", "missing_data": [], "run_exists": false}',
        '{"code": true, "missing_data": [1], "run_exists": false}',
        '{"code": true, "missing_data": [], "run_exists": false, "launch": {"jobs": 3}}',
    ],
)
def test_a_reply_off_the_contract_is_one_message(tmp_path, reply):
    out = f"workdir={tmp_path}\0python=yes\0reply={reply}\0"
    with pytest.raises(OrchError) as err:
        hostlaunch.check_and_launch(Lying(tmp_path, out), None, {"code_hash": "abc"})
    assert "reply orch cannot use" in err.value.message


def test_no_reply_at_all_is_one_message(tmp_path):
    with pytest.raises(OrchError) as err:
        hostlaunch.check_and_launch(Lying(tmp_path, f"workdir={tmp_path}\0python=yes\0"), None, {"code_hash": "abc"})
    assert "printed no reply" in err.value.message


def test_the_cache_is_dropped_when_the_host_config_changes(tmp_path):
    host = HostConfig(name="box", workdir="orch")
    state = hostlaunch.hostops.HostState(workdir="/home/u/orch", tools={}, gpus=["0"])
    hostlaunch.remember(tmp_path, host, hostlaunch.Reply(state, True, [], False, None, ["0", "1"]))
    assert hostlaunch.known_host(tmp_path, host)["gpus"] == ["0", "1"]
    assert hostlaunch.known_host(tmp_path, HostConfig(name="box", workdir="elsewhere")) is None
    assert json.loads((tmp_path / ".orch" / "hosts" / "box.launch.json").read_text())["workdir"] == "/home/u/orch"
