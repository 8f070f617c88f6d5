"""Code snapshots: what goes in them, and the staging folders interrupted syncs leave."""
from __future__ import annotations

import os
import time
from pathlib import Path

from orchestrator.codesync import snapshot_files, snapshot_hash, sync_code
from orchestrator.hosts import HostConfig
from orchestrator.transport import LocalTransport

REPO = Path(__file__).resolve().parents[2]


def _project(root: Path) -> Path:
    for rel, text in {"remote/run_job.py": "X = 1\n", "bootstrap/env.sh": "true\n",
                      "configs/experiments/smoke.yaml": "name: smoke\n", "configs/envs/default.yaml": "name: d\n",
                      "configs/hosts/nigel.yaml": "hostname: nigel.example\n", "configs/data/tiny.jsonl": "{}\n"}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_host_configs_stay_out_of_the_snapshot(tmp_path):
    root = _project(tmp_path / "proj")
    files = snapshot_files(root)
    assert files == ["bootstrap/env.sh", "configs/envs/default.yaml", "configs/experiments/smoke.yaml",
                     "remote/run_job.py"]
    before = snapshot_hash(root, files)
    # `orch bootstrap` recording `python:` must not make a new snapshot
    (root / "configs/hosts/nigel.yaml").write_text("hostname: nigel.example\npython: /opt/env/bin/python\n")
    assert snapshot_hash(root, snapshot_files(root)) == before
    # the same through git (the repository's own file list)
    assert not [f for f in snapshot_files(REPO) if f.startswith("configs/hosts/")]
    assert any(f.startswith("configs/experiments/") for f in snapshot_files(REPO))


def test_nothing_on_the_host_reads_host_configs():
    for d in ("remote", "bootstrap"):
        for path in (REPO / d).rglob("*"):
            if path.is_file() and path.suffix in (".py", ".sh"):
                assert "configs/hosts" not in path.read_text(errors="replace"), path


def test_sync_removes_staging_folders_older_than_an_hour(tmp_path):
    root = _project(tmp_path / "proj")
    workdir = tmp_path / "host"
    code_hash = snapshot_hash(root, snapshot_files(root))
    (workdir / "code" / code_hash).mkdir(parents=True)
    (workdir / "code" / code_hash / ".complete").touch()
    old = workdir / "code" / ".staging-0ld"
    fresh = workdir / "code" / ".staging-fresh"
    for d in (old, fresh):
        (d / "remote").mkdir(parents=True)
        (d / "remote" / "x.py").write_text("")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    old_snapshot = workdir / "code" / "0123456789abcdef"  # a real snapshot, however old, stays
    old_snapshot.mkdir()
    os.utime(old_snapshot, (two_hours_ago, two_hours_ago))
    transport = LocalTransport(HostConfig(name="local", workdir=str(workdir)))
    calls = []
    run = transport.run
    transport.run = lambda command, **kw: calls.append(command) or run(command, **kw)
    assert sync_code(transport, root, str(workdir), rsync=False) == (code_hash, 0)
    assert len(calls) == 1  # the cleanup rides the round trip that checks for the snapshot
    assert not old.exists() and fresh.is_dir() and old_snapshot.is_dir()
    assert (workdir / "code" / code_hash / ".complete").is_file()
