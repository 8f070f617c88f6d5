"""This machine's disk full under runs/ (a small tmpfs mounted there; root only): `orch eval`,
`orch eval --plots` and `orch run` say so in one message naming the file and the free space,
exit 8, leave the previous files as they were and no temp file behind."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import timing

from tests.unit.evalruns import make_run

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def full_project(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    root = tmp_path / "project"
    root.mkdir()
    for part in ("remote", "bootstrap", "configs"):
        shutil.copytree(REPO / part, root / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    runs = root / "runs"
    runs.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(runs)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield root
    finally:
        sock = root / ".orch" / "local" / "tmux.sock"
        if sock.exists():
            subprocess.run(["tmux", "-S", str(sock), "kill-server"], capture_output=True)
        if subprocess.run(["umount", str(runs)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(runs)], capture_output=True)


def orch(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ORCH_PROJECT"}
    env.update(PYTHONPATH=str(REPO), ORCH_SSH_CONFIG=str(root / "no-ssh-config"), COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timing.scaled(300),
    )


def fill(folder: Path) -> None:
    with open(folder / "filler", "wb") as f:
        try:
            while True:
                f.write(b"\0" * (64 << 10))
                f.flush()
        except OSError:
            pass


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def refused(proc: subprocess.CompletedProcess, what: str) -> None:
    assert proc.returncode == 8, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith(f"error: no space left on this machine to write {what}"), proc.stderr
    assert "MB free there" in proc.stderr and "hint: free space on the disk of" in proc.stderr


def test_a_full_disk_under_runs_is_one_message_and_keeps_what_was_there(full_project):
    root = full_project
    run_dir = make_run(root, "r1")
    assert orch(root, "eval", "r1").returncode == 0
    fill(root / "runs")
    before = snapshot(run_dir)

    refused(orch(root, "eval", "r1"), str(run_dir))
    assert snapshot(run_dir) == before

    plotted = orch(root, "eval", "r1", "--plots")
    refused(plotted, str(run_dir))
    after = snapshot(run_dir)
    assert {k: v for k, v in after.items() if not k.startswith("plots/")} == before
    assert not [name for name in after if name.endswith(".tmp")], sorted(after)

    launched = orch(root, "run", "smoke", "--name", "x")
    refused(launched, str(root / "runs" / "x"))
    assert not (root / "runs" / "x").exists()
    assert sorted(os.listdir(root / "runs")) == ["filler", "r1"]
