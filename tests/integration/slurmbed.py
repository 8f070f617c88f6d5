"""A real one-node Slurm cluster on 127.0.0.1, owned by the tests, reached over a real sshd.

munged, slurmctld and slurmd (Debian's `slurm-wlm` + `munge`, Slurm 22.05) run from a private
folder with their own ports, munge socket, state and spool, so they never touch a Slurm or
munge the machine may already run.  Two fake GPUs are character devices (`mknod`, major 195 like
/dev/nvidia*), which is what makes `--gres=gpu:N` schedulable and sets CUDA_VISIBLE_DEVICES in
jobs.  Commands that arrive through sshd do not inherit the test's environment, so the cluster's
sshd sets SLURM_CONF for every session (`SetEnv` in its sshd_config): to orch the login node
looks like any cluster's, with sbatch/squeue/scontrol on PATH and a working default config.

ReturnToService=2: a node set `scontrol update NodeName=... State=DOWN` (a node-failure test) is
back within milliseconds, as soon as its slurmd registers again; an outage that lasts needs
`State=DRAIN` (and `State=RESUME` after).

Needs root (mknod, slurmd launching jobs); CI runs as root.  Everything started is stopped by
PID in `stop()`, after every job of the cluster is cancelled.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional

SLURM_TOOLS = ("/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/sbin/munged", "sbatch", "squeue", "scontrol")


def missing_tools() -> List[str]:
    return [t for t in SLURM_TOOLS if not (shutil.which(t) or os.path.exists(t))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SlurmCluster:
    root: Path
    conf: Path
    node: str
    partition: str
    pids: List[Path]  # pid files of munged, slurmctld, slurmd

    @property
    def env(self) -> dict:
        env = dict(os.environ)
        env["SLURM_CONF"] = str(self.conf)
        return env

    def cmd(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess:
        """Run a Slurm client command against this cluster (from the test, not over SSH)."""
        return subprocess.run(list(argv), env=self.env, capture_output=True, text=True, check=check, timeout=60)

    def job_state(self, job_id: str) -> Optional[str]:
        out = self.cmd("squeue", "-h", "-t", "all", "-j", str(job_id), "-o", "%T", check=False).stdout.strip()
        return out or None

    def release(self, job_id: str) -> None:
        """Start a requeued job now: Slurm holds a requeued batch job ~2 minutes (BeginTime).

        Not within the second of the requeue: slurmd revoked the killed run's credential with
        one-second resolution, and a relaunch in that same second is refused ("Job credential
        revoked", the job FAILED with no line of output).  Slurm's own hold avoids exactly that."""
        time.sleep(2)
        self.cmd("scontrol", "update", f"JobId={job_id}", "StartTime=now", check=False)

    @contextmanager
    def configured(self, **settings: str):
        """slurm.conf with SETTINGS (``MinJobAge="5"``) for the block, as a site would set
        them, then as it was: `scontrol reconfigure` reads it each way (which also undoes what
        the block changed by `scontrol update`, e.g. a partition's DefaultTime)."""
        text = self.conf.read_text()
        lines = [line for line in text.splitlines() if line.split("=", 1)[0] not in settings]
        self.conf.write_text("\n".join(lines + [f"{k}={v}" for k, v in settings.items()]) + "\n")
        self.cmd("scontrol", "reconfigure")
        try:
            yield
        finally:
            self.conf.write_text(text)
            self.cmd("scontrol", "reconfigure", check=False)

    @contextmanager
    def controller_down(self):
        """slurmctld stopped for the block (every Slurm command then fails after ~9 s, "Unable
        to contact slurm controller"), then started again from its saved state (the jobs it
        held are still there) and answering."""
        _stop_pid(int((self.root / "slurmctld.pid").read_text().strip()), 30)
        try:
            yield
        finally:
            subprocess.run(["/usr/sbin/slurmctld", "-f", str(self.conf)], check=True, env=self.env, timeout=30)
            deadline = time.time() + 60
            while time.time() < deadline and self.cmd("sinfo", "-h", check=False).returncode != 0:
                time.sleep(0.5)

    def wait_idle(self, timeout: float = 60) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if not self.cmd("squeue", "-h", "-o", "%i", check=False).stdout.strip():
                return
            time.sleep(0.5)

    def stop(self) -> None:
        self.cmd("scancel", "--full", "--quiet", "--user", str(os.getuid()), check=False)
        self.wait_idle(20)
        for pid_file in reversed(self.pids):  # slurmd, slurmctld, then munged
            try:
                pid = int(pid_file.read_text().strip())
            except (OSError, ValueError):
                continue
            _stop_pid(pid, 10)


def _stop_pid(pid: int, timeout: float) -> None:
    """SIGTERM PID and wait up to TIMEOUT seconds for it to be gone."""
    try:
        os.kill(pid, 15)
    except OSError:
        return
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            return
        time.sleep(0.1)


def start_cluster(root: Path, gpus: int = 2, cpus: int = 2) -> SlurmCluster:
    """Start munged + slurmctld + slurmd under ROOT; return when the node is idle."""
    if os.geteuid() != 0:
        raise RuntimeError("the Slurm test bed needs root (mknod for the fake GPUs, slurmd launching jobs)")
    root.mkdir(parents=True, exist_ok=True)
    munge = root / "munge"
    munge.mkdir(mode=0o700, exist_ok=True)
    for sub in ("state", "spool", "log", "dev"):
        (root / sub).mkdir(exist_ok=True)
    key = munge / "munge.key"
    key.write_bytes(os.urandom(1024))
    os.chmod(key, 0o400)
    node = socket.gethostname().split(".")[0]  # slurmd insists that NodeName == `hostname -s`
    devices = []
    for i in range(gpus):
        dev = root / "dev" / f"nvidia{i}"
        if not dev.exists():
            os.mknod(dev, 0o666 | 0o020000, os.makedev(195, i))  # a character device, like /dev/nvidiaN
        devices.append(dev)
    conf = root / "slurm.conf"
    ctld_port, d_port = _free_port(), _free_port()
    conf.write_text(
        "\n".join(
            [
                "ClusterName=orchtest",
                f"SlurmctldHost={node}(127.0.0.1)",
                f"SlurmctldPort={ctld_port}",
                f"SlurmdPort={d_port}",
                "AuthType=auth/munge",
                f"AuthInfo=socket={munge}/munge.sock",
                "CredType=cred/munge",
                "CommunicationParameters=NoCtldInAddrAny,NoInAddrAny",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core",
                "AccountingStorageType=accounting_storage/none",
                "JobAcctGatherType=jobacct_gather/none",
                "GresTypes=gpu",
                "SlurmUser=root",
                "SlurmdUser=root",
                f"StateSaveLocation={root}/state",
                f"SlurmdSpoolDir={root}/spool",
                f"SlurmctldPidFile={root}/slurmctld.pid",
                f"SlurmdPidFile={root}/slurmd.pid",
                f"SlurmctldLogFile={root}/log/slurmctld.log",
                f"SlurmdLogFile={root}/log/slurmd.log",
                "ReturnToService=2",
                "MinJobAge=300",
                "KillWait=5",
                "MpiDefault=none",
                f"NodeName={node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=2000 Gres=gpu:fake:{gpus} State=UNKNOWN",
                f"PartitionName=gpu Nodes={node} Default=YES MaxTime=INFINITE State=UP",
                "",
            ]
        )
    )
    (root / "gres.conf").write_text("".join(f"NodeName={node} Name=gpu Type=fake File={d}\n" for d in devices))
    pids = [munge / "munged.pid", root / "slurmctld.pid", root / "slurmd.pid"]
    cluster = SlurmCluster(root, conf, node, "gpu", pids)
    try:
        subprocess.run(
            [
                "/usr/sbin/munged",
                f"--key-file={key}",
                f"--socket={munge}/munge.sock",
                f"--pid-file={pids[0]}",
                f"--log-file={munge}/munged.log",
                f"--seed-file={munge}/seed",
                "--force",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        subprocess.run(["/usr/sbin/slurmctld", "-f", str(conf)], check=True, env=cluster.env, timeout=30)
        subprocess.run(["/usr/sbin/slurmd", "-f", str(conf)], check=True, env=cluster.env, timeout=30)
        deadline = time.time() + 60
        while time.time() < deadline:
            state = cluster.cmd("sinfo", "-h", "-n", node, "-o", "%t", check=False).stdout.strip()
            if state.startswith("idle"):
                return cluster
            time.sleep(0.3)
        raise RuntimeError(f"the test Slurm node did not come up (sinfo state {state!r}); logs in {root}/log")
    except BaseException:
        cluster.stop()
        raise
