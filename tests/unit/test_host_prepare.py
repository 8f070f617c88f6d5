"""hostops.prepare on the local transport: workdir resolution and specific tool errors."""

import os
import shutil
import sys

import pytest

from orchestrator.backends.tmux import TmuxBackend
from orchestrator.config.hosts import HostConfig
from orchestrator.errors import ExitCode, OrchError
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
    assert prepare(LocalTransport(host)).tools["tmux"] is False  # no backend asked for: no jobs, no tmux needed


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
