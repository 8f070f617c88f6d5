"""Code snapshots: what goes in them, and the staging folders interrupted syncs leave."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from orchestrator.config.hosts import HostConfig
from orchestrator.runs.codesync import snapshot_files, snapshot_hash, sync_code
from orchestrator.transport.base import LocalTransport

REPO = Path(__file__).resolve().parents[2]


def _project(root: Path) -> Path:
    for rel, text in {
        "remote/run_job.py": "X = 1\n",
        "bootstrap/env.sh": "true\n",
        "configs/experiments/smoke.yaml": "name: smoke\n",
        "configs/envs/default.yaml": "name: d\n",
        "configs/hosts/nigel.yaml": "hostname: nigel.example\n",
        "configs/data/tiny.jsonl": "{}\n",
    }.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def test_host_configs_stay_out_of_the_snapshot(tmp_path):
    root = _project(tmp_path / "proj")
    files = snapshot_files(root)
    assert files == [
        "bootstrap/env.sh",
        "configs/envs/default.yaml",
        "configs/experiments/smoke.yaml",
        "remote/run_job.py",
    ]
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
    assert sync_code(transport, root, str(workdir)) == (code_hash, 0)
    assert len(calls) == 1  # the cleanup rides the round trip that checks for the snapshot
    assert not old.exists() and fresh.is_dir() and old_snapshot.is_dir()
    assert (workdir / "code" / code_hash / ".complete").is_file()


# Files a careless working tree holds next to the code: none may reach a host.
SECRETS = [
    "remote/run_job.py~",
    "remote/.#run_job.py",
    "remote/#run_job.py#",
    "remote/.run_job.py.swp",
    "remote/run_job.py.swp",
    "remote/run_job.py.orig",
    "remote/run_job.py.bak",
    "remote/.netrc",
    "configs/.pypirc",
    "bootstrap/my_secret.sh",
    "configs/experiments/hf_token.yaml",
    "remote/token.py",
    "remote/.env",
    "remote/.env.local",
    "bootstrap/id_ed25519",
    "remote/server.pem",
    "remote/deploy.key",
    "remote/notes.txt",
    "bootstrap/blob.bin",
    "configs/creds.json",
    # Case does not make a secret shareable (fnmatch is case-sensitive on Linux and macOS).
    "configs/experiments/Prod_SECRET.yaml",
    "configs/envs/MySecret.yml",
    "bootstrap/ID_ED25519.sh",
    "bootstrap/Secret_env.py",
    "remote/.ENV",
    "remote/Server.PEM",
    # Other credential files.
    "configs/envs/credentials.yaml",
    "configs/experiments/gcp-service-account-prod.json",
    "remote/application_default_credentials.json",
    "remote/.envrc",
    "remote/.pgpass",
]


def _plant(root: Path) -> None:
    for rel in SECRETS:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("TOKEN=hf_abc123\n")


def test_outside_git_only_the_allow_list_is_shipped(tmp_path):
    root = _project(tmp_path / "proj")
    (root / "remote" / "tokenizer.py").write_text("T = 1\n")  # "token" inside a word is fine
    _plant(root)
    files = snapshot_files(root)
    assert files == [
        "bootstrap/env.sh",
        "configs/envs/default.yaml",
        "configs/experiments/smoke.yaml",
        "remote/run_job.py",
        "remote/tokenizer.py",
    ]


def test_in_git_tracked_files_plus_allowed_untracked_never_secrets(tmp_path):
    import subprocess

    root = _project(tmp_path / "proj")
    (root / "remote" / "notes.txt").write_text("tracked notes\n")
    (root / "bootstrap" / "env.sh").chmod(0o755)
    git = ["git", "-C", str(root), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "remote", "bootstrap", "configs"], check=True)
    subprocess.run(git + ["add", "-f", "remote/notes.txt"], check=True)
    subprocess.run(git + ["commit", "-qm", "x"], check=True)
    _plant(root)
    (root / "remote" / "notes.txt").unlink()
    (root / "remote" / "notes.txt").write_text("still tracked\n")
    (root / "remote" / "new_module.py").write_text("N = 1\n")  # untracked, but code the host needs
    (root / ".gitignore").write_text("ignored.py\n")
    (root / "remote" / "ignored.py").write_text("I = 1\n")
    subprocess.run(git + ["add", "-f", "remote/.env"], check=True)  # tracked by mistake: still never shipped
    files = snapshot_files(root)
    assert files == [
        "bootstrap/env.sh",
        "configs/envs/default.yaml",
        "configs/experiments/smoke.yaml",
        "remote/new_module.py",
        "remote/notes.txt",
        "remote/run_job.py",
    ]


def test_files_arrive_0644_or_0755_whatever_the_local_mode(tmp_path):
    root = _project(tmp_path / "proj")
    (root / "remote" / "run_job.py").chmod(0o600)
    (root / "bootstrap" / "env.sh").chmod(0o777)
    (root / "configs" / "envs" / "default.yaml").chmod(0o666)
    workdir = tmp_path / "host"
    transport = LocalTransport(HostConfig(name="local", workdir=str(workdir), python=sys.executable))
    code_hash, sent = sync_code(transport, root, str(workdir))
    snap = workdir / "code" / code_hash
    modes = {
        p.relative_to(snap).as_posix(): oct(p.stat().st_mode & 0o7777)
        for p in snap.rglob("*")
        if p.is_file() and p.name != ".complete"
    }
    assert modes == {
        "remote/run_job.py": "0o644",
        "bootstrap/env.sh": "0o755",
        "configs/envs/default.yaml": "0o644",
        "configs/experiments/smoke.yaml": "0o644",
    }


def test_concurrent_syncs_publish_one_snapshot_and_never_delete_it(tmp_path):
    """Several syncs of the same new code at once: each stages its own copy, one rename
    wins, the others drop theirs; the published snapshot is never removed under a job."""
    import threading

    root = _project(tmp_path / "proj")
    workdir = tmp_path / "host"
    code_hash = snapshot_hash(root, snapshot_files(root))
    dest = workdir / "code" / code_hash
    seen_missing_after_publish = []
    published = threading.Event()

    def watch():  # a job started from the snapshot must find it there from then on
        while not stop.is_set():
            if (dest / ".complete").is_file():
                published.set()
            elif published.is_set():
                seen_missing_after_publish.append(time.time())

    stop = threading.Event()
    watcher = threading.Thread(target=watch)
    watcher.start()
    results, errors = [], []

    def one():
        transport = LocalTransport(HostConfig(name="local", workdir=str(workdir), python=sys.executable))
        try:
            results.append(sync_code(transport, root, str(workdir)))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert not errors and {h for h, _ in results} == {code_hash}
    assert not seen_missing_after_publish
    assert sorted(p.name for p in (workdir / "code").iterdir()) == [code_hash]  # no staging copy left
    assert (dest / "remote" / "run_job.py").read_text() == "X = 1\n"


def test_a_folder_without_the_marker_is_set_aside_not_trusted(tmp_path):
    root = _project(tmp_path / "proj")
    workdir = tmp_path / "host"
    code_hash = snapshot_hash(root, snapshot_files(root))
    broken = workdir / "code" / code_hash
    (broken / "remote").mkdir(parents=True)
    (broken / "remote" / "half.py").write_text("")
    transport = LocalTransport(HostConfig(name="local", workdir=str(workdir), python=sys.executable))
    assert sync_code(transport, root, str(workdir))[0] == code_hash
    assert (broken / ".complete").is_file() and not (broken / "remote" / "half.py").exists()
    aside = [p for p in (workdir / "code").iterdir() if p.name.startswith(".staging-broken-")]
    assert len(aside) == 1 and (aside[0] / "remote" / "half.py").exists()  # removed later as stale staging


def test_concurrent_uploads_of_one_file_do_not_collide(tmp_path):
    """Two launches staging the same data file once shared one temp name: the second
    rename failed because the first had taken the file away."""
    import threading

    src = tmp_path / "data.jsonl"
    src.write_text("{}\n" * 1000)
    transport = LocalTransport(HostConfig(name="local", workdir=str(tmp_path / "host")))
    errors = []

    def put():
        try:
            for _ in range(20):
                transport.put_file(src, str(tmp_path / "host" / "data" / "x-data.jsonl"))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=put) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert [p.name for p in (tmp_path / "host" / "data").iterdir()] == ["x-data.jsonl"]
