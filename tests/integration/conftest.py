"""The real test bed: an OpenSSH sshd on 127.0.0.1 owned by the tests, real tmux and rsync.

Works as root (CI) and as a normal user (a laptop): as a normal user sshd runs without
privilege separation and only that user can log in, which is all we need.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import pytest
import slurmbed
import testprocs
import timing
import yaml

from remote.backends.tmux import tmux_socket

REPO = Path(__file__).resolve().parents[2]
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def pytest_collection_modifyitems(config, items):
    """Every test here starts a real sshd and drives the real CLI (seconds to minutes):
    all are `slow`, so `pytest -m "not slow"` is the quick inner loop."""
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.slow)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _need(tool: str) -> None:
    if not (shutil.which(tool) or os.path.exists(tool)):
        pytest.fail(f"integration tests need {tool}; install openssh-server rsync tmux (see .ci/run)")


@dataclass
class Sshd:
    port: int
    root: Path
    host_key_pub: str
    client_key: Path
    known_hosts: Path
    log: Path
    pid_file: Path

    def logins(self) -> int:
        return self.log.read_text(errors="replace").count("Accepted publickey")

    def sessions(self, kind: str = "command") -> int:
        """Channels sshd started so far, of KIND: "command" (an exec: a remote command or
        an rsync transfer) or "subsystem 'sftp'".  LogLevel VERBOSE logs one
        "Starting session: KIND ..." line for each."""
        return self.log.read_text(errors="replace").count(f"Starting session: {kind} ")

    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.host_key_pub}\n"

    def drop_connections(self) -> None:
        """Kill the per-connection children (the listener stays), as a network change would."""
        master = int(self.pid_file.read_text())
        for pid in subprocess.run(["pgrep", "-P", str(master)], capture_output=True, text=True).stdout.split():
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass

    def stop(self) -> None:
        """Stop the listener and any connection it still serves (by its pid file)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        testprocs.terminate([pid] + [int(c) for c in children])


def start_sshd(root: Path, extra_config: Sequence[str] = (), sftp: str = "internal-sftp") -> Sshd:
    """``extra_config``: more sshd_config lines (the Slurm test bed's `SetEnv SLURM_CONF=...`);
    ``sftp``: the command that serves the SFTP subsystem."""
    _need(SSHD)
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(root, 0o700)
    host_key, client_key = root / "host_ed25519", root / "client_ed25519"
    for key in (host_key, client_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    auth = root / "authorized_keys"
    shutil.copy(str(client_key) + ".pub", auth)
    os.chmod(auth, 0o600)
    port = _free_port()
    log, pid_file, cfg = root / "sshd.log", root / "sshd.pid", root / "sshd_config"
    lines = [
        f"Port {port}",
        "ListenAddress 127.0.0.1",
        f"HostKey {host_key}",
        f"PidFile {pid_file}",
        f"AuthorizedKeysFile {auth}",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes no",
        f"Subsystem sftp {sftp}",
        "LogLevel VERBOSE",
        "MaxStartups 50",
        "MaxSessions 50",
        *extra_config,
    ]
    if os.geteuid() == 0:
        lines.append("PermitRootLogin prohibit-password")
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
    cfg.write_text("\n".join(lines) + "\n")
    subprocess.run([SSHD, "-t", "-f", str(cfg)], check=True)
    subprocess.run([SSHD, "-f", str(cfg), "-E", str(log)], check=True)
    pub = Path(str(host_key) + ".pub").read_text().split()
    known = root / "known_hosts"
    server = Sshd(port, root, f"{pub[0]} {pub[1]}", client_key, known, log, pid_file)
    known.write_text(server.known_hosts_line())
    deadline = time.time() + 10
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    return server


@pytest.fixture(scope="session")
def sshd(tmp_path_factory) -> Sshd:
    _need("tmux")
    _need("rsync")
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


@dataclass
class OrchProject:
    """A fresh project folder (a copy of this repo's remote/, bootstrap/, configs/) with a
    host `testhost` that is the real sshd on 127.0.0.1."""

    root: Path
    remote_root: Path  # the host's workdir
    sshd: Sshd
    env: Dict[str, str]

    def orch(self, *args: str, timeout: float = 300, check: bool = False, input: Optional[str] = None):
        """Run the real CLI; ``timeout`` (idle-machine seconds, stretched by the load) only catches hangs."""
        proc = subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timing.scaled(timeout),
            input=input,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"orch {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def cancel(self, *args: str, attempts: int = 4) -> subprocess.CompletedProcess:
        """`orch cancel ARGS` as a user runs it on a loaded machine: a wrapper may take longer
        than cancel's wait to stop, and cancel then says so (exit 8, "still stopping") and
        asks to be run again.  Returns the last attempt, with every attempt's stdout."""
        said = []
        for _ in range(attempts):
            proc = self.orch("cancel", *args)
            said.append(proc.stdout)
            if proc.returncode == 0:
                break
            if proc.returncode != 8 or "still stopping" not in proc.stdout + proc.stderr:
                break
        proc.stdout = "".join(said)
        if proc.returncode != 0:
            raise AssertionError(f"orch cancel {' '.join(args)} failed ({proc.returncode}):\n{said}\n{proc.stderr}")
        return proc

    def popen(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", *args],
            cwd=self.root,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=testprocs.ctrl_c_reaches_it,
        )

    def start(self, *args: str) -> "testprocs.Running":
        """The real CLI in the background, its output read as it comes (see Running.wait_for)."""
        return testprocs.Running(self.popen(*args))

    def write_host(self, name: str = "testhost", **overrides) -> Path:
        data = {
            "hostname": "127.0.0.1",
            "port": self.sshd.port,
            "user": getpass.getuser(),
            "identity_file": str(self.sshd.client_key),
            "known_hosts_file": str(self.sshd.known_hosts),
            "workdir": str(self.remote_root),
            "python": sys.executable,
            "connect_timeout": round(timing.scaled(5), 1),  # a busy machine is slow to answer too
        }
        data.update(overrides)
        path = self.root / "configs" / "hosts" / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    def remote_job(self, run_id: str, job: str) -> Path:
        return self.remote_root / "runs" / run_id / "jobs" / job

    def wait_state(self, run_id: str, states=("done", "failed", "cancelled"), timeout: float = 240) -> List[Dict]:
        import json

        deadline = time.time() + timing.scaled(timeout)
        last = None
        while time.time() < deadline:
            proc = self.orch("status", run_id, "--json")
            if proc.returncode == 0:
                last = json.loads(proc.stdout)
                if all(j["state"] in states for j in last["jobs"]):
                    return last["jobs"]
            time.sleep(1.0)
        raise AssertionError(f"run {run_id} did not reach {states} in {timeout}s; last status: {last}")


def make_project(root: Path, remote_root: Path, server: Sshd) -> OrchProject:
    root.mkdir(parents=True)
    for part in ("remote", "bootstrap", "configs"):
        shutil.copytree(REPO / part, root / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    (root / "runs").mkdir()
    for stale in (root / "configs" / "hosts").glob("*.yaml"):
        if stale.stem != "nigel":
            stale.unlink()
    env = dict(os.environ)
    env["ORCH_SSH_CONFIG"] = str(root / "no-ssh-config")  # never read the developer's ~/.ssh/config
    env["PYTHONPATH"] = str(REPO)  # the controller under test (a project need not contain it)
    env["COLUMNS"] = "200"
    env.pop("ORCH_PROJECT", None)
    project = OrchProject(root, remote_root, server, env)
    project.write_host()
    return project


def stop_project(project: OrchProject) -> List[str]:
    """Stop what a test's runs and bootstraps started: the tmux servers of the test host's
    workdir and of the `local` host, then any job, wrapper or step still running there."""
    workdirs = [str(project.remote_root), str(project.root / ".orch" / "local")]
    sockets = {tmux_socket(w) for w in workdirs} | {os.path.join(w, "tmux.sock") for w in workdirs}
    return testprocs.stop_everything_under([str(project.root), str(project.remote_root)], sorted(sockets))


@pytest.fixture
def ssh_project(sshd, tmp_path) -> OrchProject:
    project = make_project(tmp_path / "project", tmp_path / "hostwork", sshd)
    try:
        yield project
    finally:  # pass or fail: a failed test must not leave train.steps=100000 jobs running
        stop_project(project)


# The one-node Slurm cluster (tests/integration/slurmbed.py) and its login node, one per test
# module that asks for them (test_slurm.py, test_slurm_requeue.py, test_slurm_bootstrap.py).
@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    missing = slurmbed.missing_tools()
    if missing:
        pytest.skip(f"no Slurm here ({', '.join(missing)} missing): `apt-get install slurm-wlm munge` (.ci/run does)")
    if os.geteuid() != 0:
        pytest.skip("the Slurm test bed needs root (mknod for its fake GPUs, slurmd starting jobs); CI runs as root")
    bed = slurmbed.start_cluster(tmp_path_factory.mktemp("slurm"))
    try:
        yield bed
    finally:
        bed.stop()


@pytest.fixture(scope="module")
def login(cluster, tmp_path_factory):
    """The cluster's login node: an sshd whose sessions find the cluster (SLURM_CONF)."""
    server = start_sshd(tmp_path_factory.mktemp("login"), [f"SetEnv SLURM_CONF={cluster.conf}"])
    try:
        yield server
    finally:
        server.stop()
