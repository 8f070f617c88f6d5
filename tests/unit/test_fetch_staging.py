"""orchestrator/runs/fetch.py without a host: the staging folder, the swap, recovery from an
interrupted swap, and the `local` source that never follows a link."""

import os
import re

import pytest

from orchestrator.config.hosts import HostConfig
from orchestrator.errors import OrchError
from orchestrator.runs import fetch
from orchestrator.transport.base import LocalTransport
from orchestrator.transport.hostfiles import NOT_REGULAR, LocalSource


def _verified(run_dir, text=b"old\n"):
    (run_dir / "jobs" / "neg").mkdir(parents=True)
    (run_dir / "jobs" / "neg" / "scores.jsonl").write_bytes(text)


def test_swap_in_replaces_the_jobs_folder_and_leaves_no_staging(tmp_path):
    _verified(tmp_path)
    staging = fetch.Staging(tmp_path)
    (staging.jobs / "neg").mkdir()
    (staging.jobs / "neg" / "scores.jsonl").write_bytes(b"new\n")
    staging.swap_in()
    staging.discard()
    assert (tmp_path / "jobs" / "neg" / "scores.jsonl").read_bytes() == b"new\n"
    assert not list(tmp_path.glob(".fetch-*"))


def test_discard_keeps_the_verified_copy(tmp_path):
    _verified(tmp_path)
    staging = fetch.Staging(tmp_path)
    (staging.jobs / "junk").mkdir()
    staging.discard()
    assert (tmp_path / "jobs" / "neg" / "scores.jsonl").read_bytes() == b"old\n"
    assert not list(tmp_path.glob(".fetch-*"))
    assert "previous verified copy" in fetch.kept_note(tmp_path) and "untouched" in fetch.kept_note(tmp_path)


def test_an_interrupted_two_step_swap_is_undone(tmp_path):
    """Where renameat2 is missing the swap is two renames; a fetch killed between them left
    the verified copy set aside in its staging folder: the next fetch puts it back."""
    _verified(tmp_path)
    dead = tmp_path / ".fetch-999999999"
    dead.mkdir()
    os.rename(tmp_path / "jobs", dead / "previous")
    fetch.recover(tmp_path)
    assert (tmp_path / "jobs" / "neg" / "scores.jsonl").read_bytes() == b"old\n"
    assert not dead.exists()


def test_the_local_source_never_follows_a_link_or_blocks_on_a_fifo(tmp_path):
    job = tmp_path / "jobs" / "neg"
    job.mkdir(parents=True)
    (job / "scores.jsonl").write_bytes(b"ok\n")
    (job / "log.txt").symlink_to(tmp_path / "secret")
    (tmp_path / "secret").write_text("do not read\n")
    os.mkfifo(job / "progress.jsonl")
    (tmp_path / "jobs" / "linked").symlink_to(job)
    source = LocalSource(tmp_path / "jobs")
    assert source.jobs() == {"neg": True, "linked": False}
    files = source.files("neg")
    assert files["scores.jsonl"] == (True, 3) and not files["log.txt"][0] and not files["progress.jsonl"][0]
    got = []
    source.read("neg", "scores.jsonl", 0, 100, got.append)
    assert got == [b"ok\n"]
    for name in ("log.txt", "progress.jsonl"):
        with pytest.raises(OrchError, match=re.escape(f"neg/{name}: {NOT_REGULAR}")):
            source.read("neg", name, 0, 100, got.append)


def test_pull_from_local_refuses_by_name_and_copies_the_rest(tmp_path):
    job = tmp_path / "host" / "jobs" / "neg"
    job.mkdir(parents=True)
    (job / "scores.jsonl").write_bytes(b"ok\n")
    (job / "manifest.json").symlink_to("/etc/hostname")
    (job / "log.txt").write_bytes(b"x" * (fetch.TAIL_BYTES + 10) + b"\nlast line\n")
    stage = tmp_path / "run" / ".fetch-1" / "jobs"
    stage.mkdir(parents=True)
    pulled = fetch.pull(
        LocalTransport(HostConfig(name="local", workdir=str(tmp_path / "host"))),
        str(tmp_path / "host" / "jobs"),
        stage,
        tmp_path / "run" / "jobs",
        ["neg", "pos"],
        False,
        "r1",
    )
    assert pulled.refused == [f"neg/manifest.json: {NOT_REGULAR}"]
    assert (stage / "neg" / "scores.jsonl").read_bytes() == b"ok\n"
    assert not (stage / "neg" / "manifest.json").exists()
    log = (stage / "neg" / "log.txt").read_bytes()
    assert log.startswith(b"[orch] log cut by fetch-results") and log.endswith(b"\nlast line\n")
    assert b"orch fetch-results r1 --full-logs" in log and pulled.cut == {"neg/log.txt": fetch.TAIL_BYTES + 21}
