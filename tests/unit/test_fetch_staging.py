"""orchestrator/runs/fetch.py without a host: the staging folder, the swap, recovery from an
interrupted swap, the `local` source that never follows a link, and what any transfer
(rsync included) may leave in the staging folder: folders of regular files, the rest named."""

import hashlib
import json
import os
import re
import shutil
from collections import namedtuple

import pytest

from orchestrator.config.hosts import HostConfig
from orchestrator.errors import ExitCode, OrchError
from orchestrator.results import room
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
    assert "previous verified copy" in fetch.untouched_note(tmp_path) and "untouched" in fetch.untouched_note(tmp_path)


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


def _manifest(job, scores: bytes, declared=None) -> None:
    """A finished job's manifest vouching for SCORES (``declared``: the size it claims)."""
    files = {
        "scores.jsonl": {
            "size": len(scores) if declared is None else declared,
            "sha256": hashlib.sha256(scores).hexdigest(),
        }
    }
    (job / "manifest.json").write_text(json.dumps({"files": files, "n_test": 1, "classes": ["0", "1"]}))


def _pull_local(tmp_path, jobs, full_logs=False):
    stage = tmp_path / "run" / ".fetch-1" / "jobs"
    stage.mkdir(parents=True, exist_ok=True)
    pulled = fetch.pull(
        LocalTransport(HostConfig(name="local", workdir=str(tmp_path / "host"))),
        str(tmp_path / "host" / "jobs"),
        stage,
        tmp_path / "run" / "jobs",
        jobs,
        full_logs,
        "r1",
    )
    return pulled, stage


def test_a_transport_gives_the_source_that_reads_its_host_files(tmp_path):
    """Transport.source: what restore.py reads the host's run.yaml through, for host `local`
    as over SFTP (one interface, no isinstance), a link never followed."""
    runs = tmp_path / "runs"
    (runs / "r1").mkdir(parents=True)
    (runs / "r1" / "run.yaml").write_text("jobs: []\n")
    (runs / "r2").mkdir()
    os.symlink(runs / "r1" / "run.yaml", runs / "r2" / "run.yaml")
    source = LocalTransport(HostConfig(name="local", workdir=str(tmp_path))).source(str(runs))
    assert source.lstat("r1", "run.yaml") == (True, 9)
    assert source.lstat("r2", "run.yaml")[0] is False  # the link itself, not what it names
    assert source.lstat("r1", "nothing") is None and source.lstat("gone", "run.yaml") is None


def test_pull_from_local_refuses_by_name_and_copies_the_rest(tmp_path):
    job = tmp_path / "host" / "jobs" / "neg"
    job.mkdir(parents=True)
    (job / "scores.jsonl").write_bytes(b"ok\n")
    (job / "manifest.json").symlink_to("/etc/hostname")
    (job / "log.txt").write_bytes(b"x" * (fetch.TAIL_BYTES + 10) + b"\nlast line\n")
    pos = tmp_path / "host" / "jobs" / "pos"
    pos.mkdir()
    (pos / "scores.jsonl").write_bytes(b"fine\n")
    _manifest(pos, b"fine\n")
    pulled, stage = _pull_local(tmp_path, ["neg", "pos"])
    assert pulled.refused == [f"neg/manifest.json: {NOT_REGULAR}"]
    assert (stage / "pos" / "scores.jsonl").read_bytes() == b"fine\n"
    # No manifest vouches for neg's scores: they are not even fetched.
    assert not (stage / "neg" / "manifest.json").exists() and not (stage / "neg" / "scores.jsonl").exists()
    log = (stage / "neg" / "log.txt").read_bytes()
    assert log.startswith(b"[orch] log cut by fetch-results") and log.endswith(b"\nlast line\n")
    assert b"orch fetch-results r1 --full-logs" in log and pulled.cut == {"neg/log.txt": fetch.TAIL_BYTES + 21}


def test_full_logs_come_whole_up_to_the_limit_and_a_bigger_one_keeps_its_tail(tmp_path):
    """--full-logs: a log over FULL_LOG_BYTES (here a sparse 2 GB one) is not written to
    this disk; it keeps its tail and is named, and the rest of the fetch goes on."""
    host = tmp_path / "host" / "jobs"
    for name in ("neg", "pos"):
        (host / name).mkdir(parents=True)
        (host / name / "scores.jsonl").write_bytes(b"x\n")
        _manifest(host / name, b"x\n")
    whole = b"y" * (fetch.TAIL_BYTES + 10) + b"\nlast line\n"
    (host / "pos" / "log.txt").write_bytes(whole)
    with open(host / "neg" / "log.txt", "wb") as fh:
        fh.truncate(2 << 30)  # sparse: costs no disk
        fh.seek(0, os.SEEK_END)
        fh.write(b"\nthe last line\n")
    big = (2 << 30) + 15
    pulled, stage = _pull_local(tmp_path, ["neg", "pos"], full_logs=True)
    assert pulled.refused == []
    assert (stage / "pos" / "log.txt").read_bytes() == whole
    assert pulled.cut == {"neg/log.txt": big} and pulled.over_cap == {"neg/log.txt": big}
    log = stage / "neg" / "log.txt"
    assert log.stat().st_size < fetch.TAIL_BYTES + 1024 and log.read_bytes().endswith(b"\nthe last line\n")
    assert (stage / "neg" / "scores.jsonl").read_bytes() == b"x\n" and (stage / "pos" / "scores.jsonl").exists()
    assert not (stage.parent / "whole-logs" / "neg").exists()


def test_full_logs_that_would_fill_this_disk_are_refused_before_they_travel(tmp_path, monkeypatch):
    host = tmp_path / "host" / "jobs" / "neg"
    host.mkdir(parents=True)
    with open(host / "log.txt", "wb") as fh:
        fh.truncate(2 << 20)
    free = [fetch.RESERVE_BYTES + (1 << 20)]
    monkeypatch.setattr(fetch.shutil, "disk_usage", lambda path: Usage(1 << 40, 1 << 40, free[0]))
    with pytest.raises(OrchError) as caught:
        _pull_local(tmp_path, ["neg"], full_logs=True)
    assert caught.value.message == (
        "this run's whole logs may take up to 3.0 MB here (1 log x 3.0 MB: the largest, neg/log.txt, is 2.0 MB "
        "on the host and may grow meanwhile), and this machine "
        f"has 257.0 MB free where they would go ({tmp_path / 'run'}); nothing more was fetched "
        "(a fetch leaves 256.0 MB free)"
    )
    assert caught.value.code == ExitCode.RUN_STATE and "without --full-logs" in caught.value.hint
    free[0] += 2 << 20  # room enough for its size and the 1 MB it may grow by: it comes whole
    shutil.rmtree(tmp_path / "run" / ".fetch-1")  # (what Staging.discard does)
    pulled, stage = _pull_local(tmp_path, ["neg"], full_logs=True)
    assert (stage / "neg" / "log.txt").read_bytes() == b"\0" * (2 << 20) and pulled.cut == {}


def test_whole_logs_come_no_bigger_than_the_first_pass_saw(tmp_path, monkeypatch):
    """--full-logs: the whole-logs pass takes each log only as big as the largest of its size
    class the first pass saw, plus LOG_GROWTH (what the room check counted), not
    FULL_LOG_BYTES: a log the host makes grow in between keeps its tail.  A log the verified
    copy holds at the host's size, of the same attempt, is linked from it, not sent."""
    host, seed = tmp_path / "host" / "jobs", tmp_path / "run" / "jobs"
    first = b"y" * (fetch.TAIL_BYTES + 10) + b"\nlast line\n"
    for name in ("neg", "pos"):
        (host / name).mkdir(parents=True)
        (host / name / "log.txt").write_bytes(first)
        (host / name / "status.json").write_text('{"state": "running"}')
    (seed / "pos").mkdir(parents=True)
    (seed / "pos" / "log.txt").write_bytes(b"p" * len(first))  # here whole: its size, the same attempt
    (seed / "pos" / "status.json").write_text('{"state": "running"}')
    real_pull, limits = fetch._pull, []

    def pull(transport, remote_jobs, stage, seed_dir, spec):
        if stage.name == "whole-logs":  # between the passes, the host's log grows by 5 MB
            limits.append(spec.max_bytes)
            with open(host / "neg" / "log.txt", "ab") as fh:
                fh.write(b"z" * (5 << 20))
        return real_pull(transport, remote_jobs, stage, seed_dir, spec)

    monkeypatch.setattr(fetch, "_pull", pull)
    pulled, stage = _pull_local(tmp_path, ["neg", "pos"], full_logs=True)
    assert limits == [len(first) + fetch.LOG_GROWTH]
    assert (stage / "neg" / "log.txt").stat().st_size < fetch.TAIL_BYTES + 1024
    assert pulled.over_cap == {"neg/log.txt": len(first)} and "neg/log.txt" in pulled.cut
    assert os.path.samefile(stage / "pos" / "log.txt", seed / "pos" / "log.txt") and "pos/log.txt" not in pulled.cut


@pytest.mark.parametrize(
    "mine",
    [{"status.json": b'{"state": "done", "started": 1}'}, {"status.json": b'{"state": "done", "started": 2}'}, {}],
    ids=["earlier-attempt", "same-status-other-manifest", "no-status-here"],
)
def test_a_whole_log_here_of_another_attempt_is_never_put_beside_new_results(tmp_path, mine):
    """The host reran neg: new scores, a new status.json, a log of the same length as the
    whole log here.  That log here is an earlier attempt's: the host's is sent, not linked.
    Linked only when status.json and manifest.json here are the host's bytes."""
    host, seed = tmp_path / "host" / "jobs" / "neg", tmp_path / "run" / "jobs" / "neg"
    host.mkdir(parents=True)
    seed.mkdir(parents=True)
    log = b"new attempt\n" * (fetch.TAIL_BYTES // 8)
    (host / "log.txt").write_bytes(log)
    (seed / "log.txt").write_bytes(b"old attempt\n" * (fetch.TAIL_BYTES // 8))  # the same length
    (host / "status.json").write_bytes(b'{"state": "done", "started": 2}')
    _manifest(host, b"new scores\n")
    (host / "scores.jsonl").write_bytes(b"new scores\n")
    (seed / "manifest.json").write_text(json.dumps({"files": {}}))
    for name, data in mine.items():
        (seed / name).write_bytes(data)
    pulled, stage = _pull_local(tmp_path, ["neg"], full_logs=True)
    assert (stage / "neg" / "log.txt").read_bytes() == log and pulled.cut == {}
    assert not os.path.samefile(stage / "neg" / "log.txt", seed / "log.txt")
    # The same attempt (both documents the host's bytes): linked, not sent.
    shutil.rmtree(tmp_path / "run" / ".fetch-1")
    for name in ("status.json", "manifest.json"):
        shutil.copyfile(host / name, seed / name)
    pulled, stage = _pull_local(tmp_path, ["neg"], full_logs=True)
    assert os.path.samefile(stage / "neg" / "log.txt", seed / "log.txt") and pulled.cut == {}


def test_each_whole_log_counts_for_its_own_size_class_not_the_largest(tmp_path, monkeypatch):
    """One 1 GiB log beside fifteen of 2 MB asks for about 1 GiB, not 16 x 1 GiB; each transfer
    pulls one name of one size class, its bound that class's largest plus LOG_GROWTH, so no
    log can come bigger than what it was counted for."""
    host = tmp_path / "host" / "jobs"
    wanted = {"big/log.txt": fetch.FULL_LOG_BYTES, "big/progress.jsonl": 3 << 20}
    wanted.update({f"j{i:02d}/log.txt": (2 << 20) + i for i in range(15)})
    for key, size in wanted.items():
        (host / key).parent.mkdir(parents=True, exist_ok=True)
        with open(host / key, "wb") as fh:
            fh.truncate(size)  # sparse: the first pass reads their tails only
    transfers = fetch.whole_log_transfers(wanted)
    assert transfers == [
        ("log.txt", (2 << 20) + 14 + fetch.LOG_GROWTH, [f"j{i:02d}" for i in range(15)]),
        ("log.txt", fetch.FULL_LOG_BYTES, ["big"]),
        ("progress.jsonl", (3 << 20) + fetch.LOG_GROWTH, ["big"]),
    ]
    need = sum(bound * len(jobs) for _, bound, jobs in transfers)
    assert need < fetch.FULL_LOG_BYTES + (64 << 20)
    free = fetch.RESERVE_BYTES + need
    monkeypatch.setattr(fetch.shutil, "disk_usage", lambda path: Usage(1 << 40, 1 << 40, free))
    specs = []

    def pull(transport, remote_jobs, stage, seed_dir, spec):
        if stage.name != "whole-logs":
            return real_pull(transport, remote_jobs, stage, seed_dir, spec)
        specs.append((list(spec.names), spec.max_bytes, list(spec.dirs)))
        return fetch.Pulled()  # nothing sent: the logs keep their tails

    real_pull = fetch._pull
    monkeypatch.setattr(fetch, "_pull", pull)
    pulled, _ = _pull_local(tmp_path, ["big"] + [f"j{i:02d}" for i in range(15)], full_logs=True)
    assert specs == [([name], bound, jobs) for name, bound, jobs in transfers]
    assert pulled.over_cap == wanted  # none arrived: each keeps its tail
    free = fetch.RESERVE_BYTES + need - 1  # one byte short of what they may take: refused
    shutil.rmtree(tmp_path / "run" / ".fetch-1")
    with pytest.raises(OrchError, match=r"1 log x 1\.0 GB, 1 log x 4\.0 MB, 15 logs x 3\.0 MB: the largest, big/log"):
        _pull_local(tmp_path, ["big"] + [f"j{i:02d}" for i in range(15)], full_logs=True)


def test_results_come_no_bigger_than_the_manifests_declare(tmp_path):
    """A host whose result file outgrew its manifest (or that lies about it) is refused by
    name before the bytes travel; documents over DOC_BYTES too."""
    host = tmp_path / "host" / "jobs"
    for name, scores, declared in (("neg", b"a\n" * 10, 4), ("pos", b"b\n", None)):
        (host / name).mkdir(parents=True)
        (host / name / "scores.jsonl").write_bytes(scores)
        _manifest(host / name, scores, declared)
    (host / "big").mkdir()
    (host / "big" / "status.json").write_bytes(b" " * (fetch.DOC_BYTES + 1))
    pulled, stage = _pull_local(tmp_path, ["neg", "pos", "big"])
    assert pulled.refused == [
        f"big/status.json: {fetch.DOC_BYTES + 1} bytes, over the {fetch.DOC_BYTES} this fetch takes of it: refused",
        "neg/scores.jsonl: 20 bytes, over the 4 this fetch takes of it: refused",
    ]
    assert not (stage / "neg" / "scores.jsonl").exists() and not (stage / "big" / "status.json").exists()
    assert (stage / "pos" / "scores.jsonl").read_bytes() == b"b\n"


Usage = namedtuple("Usage", "total used free")


def test_results_that_would_fill_this_disk_are_refused_before_they_travel(tmp_path, monkeypatch):
    host = tmp_path / "host" / "jobs"
    (host / "neg").mkdir(parents=True)
    (host / "neg" / "scores.jsonl").write_bytes(b"x\n")
    _manifest(host / "neg", b"x\n", declared=5 << 40)  # the host claims 5 TB
    monkeypatch.setattr(fetch.shutil, "disk_usage", lambda path: Usage(100 << 30, 80 << 30, 20 << 30))
    with pytest.raises(OrchError) as caught:
        _pull_local(tmp_path, ["neg"])
    assert caught.value.message == (
        "this run's results may take up to 5.0 TB here (1 x 5.0 TB: the largest scores.jsonl the host declares, "
        f"neg's), and this machine has 20.0 GB free where they would go ({tmp_path / 'run'}); nothing more was "
        "fetched (a fetch leaves 256.0 MB free)"
    )
    assert not (tmp_path / "run" / ".fetch-1" / "jobs" / "neg" / "scores.jsonl").exists()


def test_files_the_verified_copy_holds_need_no_room(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch.shutil, "disk_usage", lambda path: Usage(1 << 30, 1 << 30, fetch.RESERVE_BYTES + 10))
    fetch.check_room(tmp_path / "s" / "jobs", {"neg": 1000}, {})  # already here (link_held): fits
    # Each file sent may come as big as the largest declared: one that declares 11 bytes too.
    with pytest.raises(OrchError, match=r"may take up to 2.0 KB here \(2 x 999 bytes: .* neg's\)"):
        fetch.check_room(tmp_path / "s" / "jobs", {"neg": 999, "pos": 11}, {"neg": 999, "pos": 11})


def test_a_result_file_counts_as_here_only_by_its_sha256_and_is_then_never_sent(tmp_path, monkeypatch):
    """The verified copy's scores.jsonl of the size the host declares but other bytes is
    sent (and counted); one with the declared sha256 is linked from the verified copy, and
    what the host serves instead (other bytes than it declares) never travels."""
    host, seed = tmp_path / "host" / "jobs", tmp_path / "run" / "jobs"
    for name in ("neg", "pos"):
        (host / name).mkdir(parents=True)
        (seed / name).mkdir(parents=True)
        _manifest(host / name, b"x" * 1000)
        (seed / name / "scores.jsonl").write_bytes(b"x" * 1000)  # what the manifest vouches for
    (host / "neg" / "scores.jsonl").write_bytes(b"y" * 1000)  # the host serves other bytes
    (seed / "pos" / "scores.jsonl").write_bytes(b"z" * 1000)  # same size, other bytes: not held
    (host / "pos" / "scores.jsonl").write_bytes(b"x" * 1000)
    monkeypatch.setattr(fetch.shutil, "disk_usage", lambda path: Usage(1 << 30, 1 << 30, fetch.RESERVE_BYTES + 1500))
    pulled, stage = _pull_local(tmp_path, ["neg", "pos"])
    assert os.path.samefile(stage / "neg" / "scores.jsonl", seed / "neg" / "scores.jsonl")
    assert (stage / "pos" / "scores.jsonl").read_bytes() == b"x" * 1000 and pulled.refused == []
    # Were both counted as here (the old rule: same size), 2 x 1000 bytes could come; now 1 x 1000 fits,
    # and with neg not held either, 2 x 1000 does not.
    shutil.rmtree(tmp_path / "run" / ".fetch-1")
    (seed / "neg" / "scores.jsonl").write_bytes(b"w" * 1000)
    with pytest.raises(OrchError, match=r"may take up to 2.0 KB here \(2 x 1000 bytes"):
        _pull_local(tmp_path, ["neg", "pos"])


def test_results_this_machine_has_not_the_memory_to_check_are_not_fetched(tmp_path, monkeypatch):
    """A fetch reads all it pulls to check it: score files that would take more memory than
    this machine has available are refused before any is sent, even ones already here."""
    seed = tmp_path / "run" / "jobs" / "neg"
    seed.mkdir(parents=True)
    (seed / "scores.jsonl").write_bytes(b"x" * 1000)
    (tmp_path / "s" / "jobs").mkdir(parents=True)
    monkeypatch.setattr(room, "available_memory", lambda: (1 << 30) + room.RESERVE)
    monkeypatch.setattr(fetch.shutil, "disk_usage", lambda path: Usage(1 << 40, 1 << 30, 1 << 40))
    fetch.check_room(tmp_path / "s" / "jobs", {"neg": 1000, "pos": 2047 << 20}, {"pos": 2047 << 20})
    with pytest.raises(OrchError) as caught:
        fetch.check_room(tmp_path / "s" / "jobs", {"neg": 1000, "pos": 2100 << 20}, {"pos": 2100 << 20})
    assert caught.value.message.startswith(
        "this run's results are too big for this machine: evaluating 2.1 GB of score files takes at least 1.0 GB "
        "of memory, and this machine has 1.2 GB available; nothing more was fetched"
    ), caught.value.message
    assert caught.value.code == ExitCode.RUN_STATE and "more memory" in caught.value.hint


def _here(tmp_path):
    return LocalTransport(HostConfig(name="local", workdir=str(tmp_path)))


def test_rsync_writes_no_file_past_its_limit_whatever_it_is_sent(tmp_path):
    """The file-size limit a pull's rsync runs under (RLIMIT_FSIZE), with a real rsync that
    is told nothing of it: it stops at the limit with its own words."""
    from orchestrator.transport.rsync import run_rsync

    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "big").write_bytes(b"x" * 200_000)
    dest = tmp_path / "dest"
    dest.mkdir()
    argv = ["rsync", "-r", f"{tmp_path / 'src'}/", f"{dest}/"]
    with pytest.raises(OrchError) as caught:
        run_rsync(_here(tmp_path), argv, push=False, max_file_bytes=65536)
    assert "File too large" in caught.value.message, caught.value.message
    assert all(p.stat().st_size <= 65536 for p in dest.rglob("*") if p.is_file())
    assert run_rsync(_here(tmp_path), argv, push=False).returncode == 0
    assert (dest / "big").stat().st_size == 200_000


@pytest.mark.parametrize(
    "n, words",
    [
        (0, "0 bytes"),
        (1023, "1023 bytes"),
        (1024, "1.0 KB"),
        (12_900_000, "12.3 MB"),
        (5 << 50, "5.0 PB"),
        (3 << 60, "3,072.0 PB"),
    ],
)
def test_sizes_read_as_people_say_them(n, words):
    assert room.size_words(n) == words


def test_rsync_output_is_read_only_up_to_its_cap(monkeypatch, tmp_path):
    """rsync passes on what the host's side prints; a host that prints without end is cut
    off and the transfer stopped, not read into memory."""
    from orchestrator.transport import rsync

    monkeypatch.setattr(rsync, "MAX_OUTPUT", 1 << 20)
    with pytest.raises(OrchError, match="rsync printed more than 1 MB"):
        rsync.run_rsync(_here(tmp_path), ["sh", "-c", "yes 'remote: noise' >&2"], push=False)


@pytest.mark.parametrize("hard, soft", [(-1, 5000), (3000, 3000), (9000, 5000)])
def test_the_file_size_limit_lowers_only_the_soft_limit_within_the_hard_one(monkeypatch, hard, soft):
    """Raising a hard limit is refused to a user (a traceback from inside Popen): the limit a
    pull runs under keeps the hard one and sets the soft one, never above it."""
    import resource
    import signal

    from orchestrator.transport import rsync

    hard = resource.RLIM_INFINITY if hard == -1 else hard
    calls = []
    monkeypatch.setattr(resource, "getrlimit", lambda what: (hard, hard))
    monkeypatch.setattr(resource, "setrlimit", lambda what, limits: calls.append((what, limits)))
    monkeypatch.setattr(signal, "signal", lambda *a: None)
    rsync._file_size_limit(5000)()
    assert calls == [(resource.RLIMIT_FSIZE, (soft, hard))]


# -- what any transfer leaves in the staging folder ---------------------------------------------


def _odd_entries(root, job):
    """JOB holds scores.jsonl and, beside it, a link to a file, a link to a folder, a fifo
    and a folder; ROOT/outside is what the links point at."""
    outside = root / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "secret").write_text("not for orch\n")
    job.mkdir(parents=True)
    (job / "scores.jsonl").write_bytes(b"ok\n")
    (job / "log.txt").symlink_to(outside / "secret")
    (job / "manifest.json").symlink_to(outside / "folder")
    os.mkfifo(job / "progress.jsonl")
    (job / "status.json").mkdir()
    (job / "status.json" / "inside").write_text("x")
    return outside


def test_check_tree_leaves_folders_of_regular_files_and_names_the_rest(tmp_path):
    from orchestrator.transport.pull import Pulled, check_tree

    stage = tmp_path / "stage"
    outside = _odd_entries(tmp_path, stage / "neg")
    (stage / "linked").symlink_to(outside / "folder")  # a job "folder" that is a link
    (stage / "stray").write_text("a file where a job folder belongs")
    pulled = Pulled()
    check_tree(stage, pulled)
    assert sorted(pulled.refused) == sorted(
        [
            f"linked: {NOT_REGULAR}",
            f"stray: {NOT_REGULAR}",
            f"neg/log.txt: {NOT_REGULAR}",
            f"neg/manifest.json: {NOT_REGULAR}",
            f"neg/progress.jsonl: {NOT_REGULAR}",
            f"neg/status.json: {NOT_REGULAR}",
        ]
    )
    assert sorted(p.name for p in stage.iterdir()) == ["neg"]
    assert [p.name for p in (stage / "neg").iterdir()] == ["scores.jsonl"]
    # links are removed, never followed: what they named is untouched
    assert (outside / "secret").read_text() == "not for orch\n" and (outside / "folder").is_dir()


class _RsyncHere(LocalTransport):
    """The `local` transport pulling through rsync (as SSH hosts do), its -e never used."""

    def rsync_rsh(self):
        return ["ssh"]


def test_an_rsync_pull_skips_and_names_links_and_fifos_and_copies_the_rest(tmp_path):
    from orchestrator.transport.pull import PullSpec, check_tree, pull_rsync

    jobs = tmp_path / "host" / "jobs"
    outside = _odd_entries(tmp_path, jobs / "neg")
    (jobs / "linked").symlink_to(jobs / "neg")  # a job folder that is a link: never entered
    stage = tmp_path / "stage"
    stage.mkdir()
    names = ["scores.jsonl", "log.txt", "manifest.json", "progress.jsonl", "status.json"]
    spec = PullSpec(dirs=["neg", "linked"], names=names)
    pulled = pull_rsync(
        _RsyncHere(HostConfig(name="h", workdir=str(tmp_path))), str(jobs), stage, tmp_path / "no", spec
    )
    check_tree(stage, pulled)  # as fetch.py does after every transfer
    assert sorted(pulled.refused) == sorted(
        [
            "linked: not a directory on the host (a link?): refused",
            f"neg/log.txt: {NOT_REGULAR}",
            f"neg/manifest.json: {NOT_REGULAR}",
            f"neg/progress.jsonl: {NOT_REGULAR}",
        ]
    )
    # status.json, a folder on the host: rsync takes none of its files and prunes it empty
    assert sorted(p.name for p in stage.iterdir()) == ["neg"]
    assert [p.name for p in (stage / "neg").iterdir()] == ["scores.jsonl"]
    assert (stage / "neg" / "scores.jsonl").read_bytes() == b"ok\n"
    assert (outside / "secret").read_text() == "not for orch\n"
