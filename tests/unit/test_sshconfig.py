"""Paramiko without Invoke (orchestrator/config/sshconfig.py): no command pays for Invoke's
import, and an SSH config file's `Match exec` still works the way ssh(1) reads it.

Each case runs in a fresh interpreter: in this one, some other test may have imported
Paramiko (and Invoke with it) already."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CHECK = """
import json, sys
from pathlib import Path
from orchestrator.config.hosts import resolve_host
from orchestrator.config.project import Project
before = "invoke" in sys.modules
host = resolve_host(Project(Path(sys.argv[1])), "gpu")
print(json.dumps({"hostname": host.hostname, "user": host.user, "port": host.port,
                  "invoke_before": before, "invoke_after": "invoke" in sys.modules}))
"""


def resolve_in_fresh_interpreter(tmp_path: Path, ssh_config: str) -> dict:
    (tmp_path / "configs" / "hosts").mkdir(parents=True, exist_ok=True)
    (tmp_path / "remote").mkdir(exist_ok=True)
    (tmp_path / "ssh_config").write_text(ssh_config)
    env = {**os.environ, "PYTHONPATH": str(REPO), "ORCH_SSH_CONFIG": str(tmp_path / "ssh_config")}
    proc = subprocess.run(
        [sys.executable, "-c", CHECK, str(tmp_path)], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_ssh_transport_loads_paramiko_without_invoke():
    code = "import sys, orchestrator.transport.ssh; print('invoke' in sys.modules, 'paramiko' in sys.modules)"
    proc = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True
    )
    assert proc.stdout.split() == ["False", "True"], proc.stderr


def test_a_config_without_match_exec_never_imports_invoke(tmp_path):
    got = resolve_in_fresh_interpreter(tmp_path, "Host gpu\n  HostName gpu.example.org\n  User ann\n  Port 2200\n")
    assert (got["hostname"], got["user"], got["port"]) == ("gpu.example.org", "ann", 2200)
    assert not got["invoke_before"] and not got["invoke_after"]


def test_match_exec_runs_its_command_as_ssh_reads_it(tmp_path):
    # The first Match's command fails, so its User does not apply; the second's succeeds.  (Host
    # aliases are listed from the Host lines: Paramiko's get_hostnames() raises KeyError on a file
    # with a Match block.)
    config = (
        "Host gpu\n  HostName gpu.example.org\n"
        'Match originalhost gpu exec "false"\n  User wrong\n  Port 1111\n'
        'Match originalhost gpu exec "true"\n  User ann\n  Port 2200\n'
    )
    got = resolve_in_fresh_interpreter(tmp_path, config)
    assert (got["hostname"], got["user"], got["port"]) == ("gpu.example.org", "ann", 2200)
    assert got["invoke_after"]  # imported only because this file asked for it


def test_include_brings_in_hosts_as_ssh_reads_them(tmp_path, monkeypatch):
    from orchestrator.config.hosts import list_hosts, resolve_host
    from orchestrator.config.project import Project

    home = tmp_path / "home"
    (home / ".ssh" / "config.d").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    (home / ".ssh" / "config.d" / "10-gpu").write_text("Host gpu\n  HostName gpu.example.org\n  Port 2200\n")
    (home / ".ssh" / "config.d" / "20-lab").write_text("Host lab\n  HostName lab.example.org\n")
    (home / ".ssh" / "extra").write_text("  User ann\n")  # included inside a Host block: that block's
    config = home / ".ssh" / "config"
    config.write_text(
        "Include config.d/*\n"  # relative: under ~/.ssh, wildcards in lexical order
        "Include ~/.ssh/nothing-here-*\n"  # matches nothing: skipped, as ssh does
        "Host box\n  HostName box.example.org\n  Include extra\n  Port 2022\n"  # Port stays box's
    )
    monkeypatch.setenv("ORCH_SSH_CONFIG", str(config))
    project_dir = tmp_path / "p"
    (project_dir / "configs" / "hosts").mkdir(parents=True)
    (project_dir / "remote").mkdir()
    project = Project(project_dir)
    gpu, box = resolve_host(project, "gpu"), resolve_host(project, "box")
    assert (gpu.hostname, gpu.port) == ("gpu.example.org", 2200)
    assert (box.hostname, box.user, box.port) == ("box.example.org", "ann", 2022)
    assert {"gpu", "lab", "box"} <= {h.name for h in list_hosts(project)}


def test_an_include_loop_is_one_message(tmp_path, monkeypatch):
    from orchestrator.config.sshconfig import read_ssh_config
    from orchestrator.errors import OrchError

    config = tmp_path / "config"
    config.write_text(f"Include {config}\nHost a\n  HostName a\n")
    with pytest.raises(OrchError, match="Include nested more than 16 deep"):
        read_ssh_config(config)
