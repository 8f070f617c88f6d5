"""hostops.prepare on the local transport: workdir resolution and specific tool errors."""

import os
import shutil
import sys

import pytest

from orchestrator.backends.slurm import SlurmBackend
from orchestrator.backends.tmux import TmuxBackend
from orchestrator.config.hosts import HostConfig
from orchestrator.errors import ExitCode, OrchError
from orchestrator.runs import hostlaunch
from orchestrator.runs.hostops import prepare
from orchestrator.transport.base import LocalTransport
from remote.backends.tmux import tmux_socket


def _path_without(tmp_path, missing):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("sh", "bash", "mkdir", "sed", "tmux", "rsync"):
        found = shutil.which(tool)
        if found and tool not in missing:
            os.symlink(found, bindir / tool)
    return str(bindir)


def test_prepare_creates_workdir_and_reports_tools(tmp_path):
    host = HostConfig(name="local", workdir=str(tmp_path / "w d"), python=sys.executable)
    state = prepare(LocalTransport(host))
    assert state.workdir == str(tmp_path / "w d") and (tmp_path / "w d").is_dir()
    assert state.tools["python"] and state.gpus == []


def test_missing_tmux_is_a_specific_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _path_without(tmp_path, {"tmux"}))
    host = HostConfig(name="local", workdir=str(tmp_path / "w"), python=sys.executable)
    with pytest.raises(OrchError) as err:
        prepare(LocalTransport(host), TmuxBackend())
    assert err.value.code == ExitCode.HOST_TOOLS and "has no tmux" in err.value.message
    assert "tmux" not in prepare(LocalTransport(host)).tools  # no backend asked for: no jobs, no tmux looked for


def _with_slurms_tools(bindir):
    """Stand-ins for Slurm's client commands (only found on PATH, never run here)."""
    for tool in SlurmBackend.tools:
        stub = os.path.join(bindir, tool)
        with open(stub, "w") as f:
            f.write("#!/bin/sh\nexit 0\n")
        os.chmod(stub, 0o755)


def test_a_slurm_host_is_asked_for_slurms_tools_not_tmux(tmp_path, monkeypatch):
    """The tools a host needs for its jobs are its job backend's (JobBackend.tools): a Slurm
    login node is not looked over for tmux, which its jobs never use; rsync and nvidia-smi
    are looked for on every host (copies, GPUs)."""
    bindir = _path_without(tmp_path, set())
    _with_slurms_tools(bindir)
    monkeypatch.setenv("PATH", bindir)
    host = HostConfig(name="local", workdir=str(tmp_path / "w"), python=sys.executable)
    state = prepare(LocalTransport(host), SlurmBackend())
    assert sorted(state.tools) == sorted(["rsync", "nvidia-smi", "python", *SlurmBackend.tools])
    assert all(state.tools[t] for t in SlurmBackend.tools)
    # The launch's one round trip (remote/check_and_launch.py) reports the same tools.
    request = {"code_hash": "abc", "staging": ".s", "modules": [], "tools": list(SlurmBackend.tools)}
    reply = hostlaunch.check_and_launch(LocalTransport(host), SlurmBackend(), request)
    assert reply.state.tools == state.tools
    # A tmux host is asked for tmux (and not for Slurm's commands).
    assert sorted(prepare(LocalTransport(host), TmuxBackend()).tools) == ["nvidia-smi", "python", "rsync", "tmux"]


def test_without_python_a_slurm_host_is_told_of_its_python_not_of_its_tools(tmp_path, monkeypatch):
    """The launch's shell, finding no python, reports the backend's tools too: it said Slurm's
    commands were missing (it never looked for them) instead of the python."""
    bindir = _path_without(tmp_path, {"tmux"})
    _with_slurms_tools(bindir)
    monkeypatch.setenv("PATH", bindir)
    host = HostConfig(name="local", workdir=str(tmp_path / "w"), python="/nonexistent/python")
    with pytest.raises(OrchError) as err:
        hostlaunch.check_and_launch(LocalTransport(host), SlurmBackend(), {"code_hash": "abc"})
    assert err.value.code == ExitCode.HOST_TOOLS and "no python interpreter" in err.value.message


def test_missing_python_is_a_specific_error(tmp_path):
    host = HostConfig(name="local", workdir=str(tmp_path / "w"), python="/nonexistent/python")
    with pytest.raises(OrchError) as err:
        prepare(LocalTransport(host))
    assert err.value.code == ExitCode.HOST_TOOLS and "orch bootstrap" in err.value.hint


def test_configured_gpus_override_detection(tmp_path):
    host = HostConfig(name="local", workdir=str(tmp_path / "w"), python=sys.executable, gpus=["2", "3"])
    assert prepare(LocalTransport(host)).gpus == ["2", "3"]


def test_tmux_socket_stays_short():
    assert tmux_socket("/home/a/orch") == "/home/a/orch/tmux.sock"
    long = tmux_socket("/home/" + "x" * 120)
    assert long.startswith("/tmp/orch-") and len(long) < 40
    assert long == tmux_socket("/home/" + "x" * 120)  # stable: controller and host agree


def test_prepare_output_is_records_not_lines():
    from orchestrator.runs.hostops import parse_prepare

    out = "Welcome to the cluster\nworkdir=/home/a\nb/orch\0tmux=yes\0gpu=0\0gpu=1\0python=yes\0"
    facts, gpus = parse_prepare(out)
    assert facts["workdir"] == "/home/a\nb/orch" and facts["tmux"] == "yes" and gpus == ["0", "1"]


def test_a_workdir_with_a_newline_is_refused_not_misread(tmp_path):
    """The line-based parse once read `<tmp>/a` for `<tmp>/a\\nb`: code went elsewhere."""
    host = HostConfig(name="local", workdir=str(tmp_path / "a\nb"), python=sys.executable)
    with pytest.raises(OrchError) as err:
        prepare(LocalTransport(host))
    assert err.value.code == ExitCode.CONFIG and "control character" in err.value.message
    assert [p.name for p in tmp_path.iterdir()] == ["a\nb"]  # nothing made beside it
