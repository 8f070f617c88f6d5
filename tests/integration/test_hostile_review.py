"""A security review's hostile host, through the real sshd (and two SSH servers gone wrong).

Each test plays one hostile host and checks the laptop side: a note with escape
sequences printed escaped, an rsync that never exits or a server that never answers
left after the host file's io_timeout (2 s here), an SFTP server answering with the
wrong kind of message given a message, a fetch onto a small disk (a tmpfs mounted on
the run folder, root only) refused before what could fill it travels, a host helper's
15 MB error line quoted by its tail, and NaN in a host document kept out of orch's JSON.

Like tests/integration/test_hostile_host.py, one finished run (`base`) is made per
module and cloned under a fresh id for each test.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.test_hostile_host import (
    acting_controls,
    base_run_fixture,
    clone_fixture,
    no_traceback,
    path_without_rsync,
    swap_host_helper,
)

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
ESCAPES = "\x1b]0;OWNED-TITLE\x07\x1b[2J\x1b]52;c;ZXZpbA==\x07"


base = base_run_fixture("review")
hostile = clone_fixture("hostile", "v")


def kill_pid_in(marker: Path) -> None:
    """Kill the host-side process whose pid a fake tool wrote into MARKER (by that pid)."""
    try:
        os.kill(int(marker.read_text()), signal.SIGKILL)
    except (OSError, ValueError):
        pass


# --------------------------------------------------------------------------- a note with escapes


def _ended_reply(**extra) -> dict:
    """A host helper's status reply: both class jobs done, each with the EXTRA keys."""
    return {
        "run_dir": "x",
        "exists": True,
        "now": 1764150020.0,
        "jobs": [
            {"name": j, "status": {"state": "done"}, "alive": False, "manifest": True, "log_bytes": 1} | extra
            for j in ("class-0", "class-1")
        ],
    }


def test_a_note_from_the_host_is_printed_escaped(hostile):
    """The host helper's status reply says the scheduler is unreachable, in escape
    sequences: `orch status` prints its note line with them escaped."""
    h = hostile
    reply = _ended_reply(backend={"unreachable": f"slurmctld down {ESCAPES}"})
    swap_host_helper(h, "evil-note", f"import json\nprint(json.dumps({reply!r}))")
    proc = h.orch("status", h.run, timeout=60)
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    assert "note: slurmctld down \\x1b]0;OWNED-TITLE\\x07\\x1b[2J\\x1b]52;c;ZXZpbA==\\x07: " in proc.stderr
    assert not acting_controls(proc.stdout + proc.stderr), proc.stderr


# --------------------------------------------------------------------------- an old helper's endless tail


def test_logs_without_follow_on_an_old_helper_that_never_ends_is_left(hostile, tmp_path):
    """The run's host helper is older than `follow --no-follow` (argparse refuses it, exit 2)
    and its jobs have ended, so `orch logs` asks its `follow` for their ends: this one prints
    a line and then never ends.  That was streamed with no limit, and `orch logs` (a one-shot
    command) waited for ever; now it is left once the host is silent for io_timeout (2 s)."""
    h = hostile
    marker = tmp_path / "follow-pid"
    reply = _ended_reply()
    swap_host_helper(
        h,
        "old-endless",
        "import json, os, sys, time\n"
        "if sys.argv[1:2] == ['status']:\n"
        f"    print(json.dumps({reply!r}))\n"
        "elif '--no-follow' in sys.argv:\n"
        "    sys.stderr.write('hostctl: error: unrecognized arguments: --no-follow\\n')\n"
        "    sys.exit(2)\n"
        "else:\n"
        f"    open({str(marker)!r}, 'w').write(str(os.getpid()))\n"
        "    print('the last line of the log', flush=True)\n"
        "    time.sleep(600)\n",
    )
    h.p.write_host(io_timeout=2)
    try:
        proc = h.orch("logs", h.run, "class-0", timeout=60)
    finally:
        kill_pid_in(marker)
    no_traceback(proc)
    assert marker.exists()  # the old helper's follow ran
    assert proc.returncode == 7, proc.stderr
    said = " ".join(proc.stderr.split())
    assert f"the end of the logs of {h.run} did not come from testhost" in said, said
    assert "older than `orch logs` without -f: testhost sent nothing for 2 s" in said, said


# --------------------------------------------------------------------------- an rsync that never exits


@contextlib.contextmanager
def lingering_rsync(h, tmp_path, closed: bool):
    """The host's rsync does its transfer, then does not exit (its output open, or closed
    first when CLOSED); io_timeout is 2 s.  Kills the lingering process after."""
    bindir = tmp_path / "lingerbin"
    bindir.mkdir()
    marker = tmp_path / "rsync-pid"
    close = "exec >&- 2>&-\n" if closed else ""
    (bindir / "rsync").write_text(
        f'#!/bin/sh\n{shutil.which("rsync")} "$@"\n{close}echo $$ > {marker}\nexec sleep 600\n'
    )
    (bindir / "rsync").chmod(0o755)
    h.p.write_host(extra_path=[str(bindir)], io_timeout=2)
    try:
        yield marker
    finally:
        kill_pid_in(marker)


@pytest.mark.parametrize("closed", [False, True], ids=["output-open", "output-closed"])
def test_an_rsync_that_never_exits_is_left_after_io_timeout(hostile, tmp_path, closed):
    """fetch-results: rsync on the host finishes the transfer, then never exits; the fetch
    stops io_timeout later with one message, exit 7, and no staging folder left."""
    h = hostile
    with lingering_rsync(h, tmp_path, closed) as marker:
        proc = h.orch("fetch-results", h.run, "--no-eval", timeout=90)
        assert marker.exists()  # the transfer ended and the host's rsync lingered
    no_traceback(proc)
    assert proc.returncode == 7, proc.stderr
    said = " ".join(proc.stderr.split())
    why = "ended rsync's output but did not exit within 2 s" if closed else "sent nothing for 4 s"
    assert f"testhost {why}, so orch stopped waiting for it" in said, proc.stderr
    assert "io_timeout" in said
    assert not list(h.local().glob(".fetch-*")) and not (h.local() / "jobs").exists()


def test_an_rsync_that_never_exits_does_not_hold_a_launch(hostile, tmp_path):
    """orch run sends the code with rsync: a host rsync that lingers after the transfer is
    left after io_timeout, and the launch fails with one message."""
    h = hostile
    (h.p.root / "remote" / "zz_changed.py").write_text("# a change: the code is sent again\n")
    try:
        with lingering_rsync(h, tmp_path, closed=False):
            proc = h.orch("run", "smoke", "--host", "testhost", "--name", "linger", timeout=120)
    finally:
        (h.p.root / "remote" / "zz_changed.py").unlink()
    no_traceback(proc)
    assert proc.returncode == 7, proc.stderr
    assert "testhost sent nothing for 4 s, so orch stopped waiting for it" in " ".join(proc.stderr.split())


# --------------------------------------------------------------------------- a server that never answers


@contextlib.contextmanager
def mute_server(tmp_path, mode: str):
    """tests/integration/mute_sshd.py leaving MODE's requests unanswered; yields (port,
    known_hosts file)."""
    key = tmp_path / "mute_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    server = subprocess.Popen(
        [sys.executable, str(HERE / "mute_sshd.py"), str(key), mode, str(Path.home())],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(server.stdout.readline())
        known = tmp_path / "mute_known_hosts"
        known.write_text(f"[127.0.0.1]:{port} " + " ".join(Path(f"{key}.pub").read_text().split()[:2]) + "\n")
        yield port, known
    finally:
        server.kill()
        server.wait()


def test_a_server_that_never_answers_a_command_request_is_left(hostile, tmp_path):
    """`orch logs` (no time limit of its own) and `orch status` (120 s of its own) on a
    server that opens channels but never answers the request to run a command: each
    stops after io_timeout, exit 7, and says which request went unanswered."""
    h = hostile
    with mute_server(tmp_path, "all") as (port, known):
        h.p.write_host(port=port, known_hosts_file=str(known), io_timeout=2)
        for args in (("logs", h.run), ("status", h.run)):
            started = time.monotonic()
            proc = h.orch(*args, timeout=60)
            no_traceback(proc)
            assert proc.returncode == 7, (args, proc.stderr)
            said = " ".join(proc.stderr.split())
            assert "testhost did not answer the request to start a command for 2 s" in said, (args, said)
            assert "io_timeout" in said
            assert time.monotonic() - started < 60


def test_a_server_that_never_answers_the_sftp_request_is_left(hostile, tmp_path):
    """A fetch over SFTP (no rsync here) from a server that runs commands but never
    answers the request for the sftp subsystem: left after io_timeout, exit 7."""
    h = hostile
    h.p.env["PATH"] = path_without_rsync(tmp_path)
    with mute_server(tmp_path, "sftp") as (port, known):
        h.p.write_host(port=port, known_hosts_file=str(known), io_timeout=2)
        proc = h.orch("fetch-results", h.run, "--no-eval", timeout=60)
    no_traceback(proc)
    assert proc.returncode == 7, proc.stderr
    assert "testhost did not answer the request to start SFTP for 2 s" in " ".join(proc.stderr.split())
    assert not list(h.local().glob(".fetch-*")) and not (h.local() / "jobs").exists()


# --------------------------------------------------------------------------- a malformed SFTP reply


@pytest.fixture(scope="module")
def wrong_sftp(tmp_path_factory):
    """An sshd whose SFTP subsystem answers every OPEN with an ATTRS message
    (tests/integration/odd_sftp_server.py, mode open-attrs)."""
    from tests.integration.conftest import start_sshd

    root = tmp_path_factory.mktemp("wrong-sftp")
    mode = root / "mode"
    mode.write_text("open-attrs")
    server = start_sshd(root / "sshd", sftp=f"{sys.executable} {HERE / 'odd_sftp_server.py'} {mode}")
    yield server
    server.stop()


def test_an_sftp_reply_of_the_wrong_kind_is_a_message(hostile, wrong_sftp, tmp_path):
    """Reading (fetch-results) and writing (orch run sending its code) over SFTP, from a
    server that answers OPEN with the wrong kind of message: exit 7, no traceback."""
    h = hostile
    h.p.env["PATH"] = path_without_rsync(tmp_path)
    server = wrong_sftp
    h.p.write_host(port=server.port, known_hosts_file=str(server.known_hosts), identity_file=str(server.client_key))
    fetched = h.orch("fetch-results", h.run, "--no-eval", timeout=120)
    no_traceback(fetched)
    assert fetched.returncode == 7, fetched.stderr
    assert "over SFTP failed: Expected handle" in fetched.stderr, fetched.stderr
    assert not list(h.local().glob(".fetch-*")) and not (h.local() / "jobs").exists()
    (h.p.root / "remote" / "zz_changed.py").write_text("# a change: the code is sent again\n")
    try:
        launched = h.orch("run", "smoke", "--host", "testhost", "--name", "wrong-sftp", timeout=120)
    finally:
        (h.p.root / "remote" / "zz_changed.py").unlink()
    no_traceback(launched)
    assert launched.returncode == 7, launched.stderr
    assert "over SFTP: Expected handle" in launched.stderr, launched.stderr


# --------------------------------------------------------------------------- a small disk here


@contextlib.contextmanager
def small_disk(folder: Path, size: str):
    """FOLDER (a run's local folder) on a tmpfs of SIZE, with what it held; unmounted after."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    saved = folder.with_name(folder.name + ".saved")
    shutil.move(str(folder), str(saved))
    folder.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.decode().strip()}")
    try:
        for entry in saved.iterdir():
            (shutil.copytree if entry.is_dir() else shutil.copy2)(entry, folder / entry.name)
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def test_results_of_the_same_size_but_other_bytes_count_for_the_room_check(hostile):
    """After a first fetch, class-0 declares new results as big as the room left, and
    class-1 declares its old size with another sha256 (and serves that many bytes): both
    are sent and may each be that big, so the fetch is refused before either travels."""
    from orchestrator.runs.fetch import RESERVE_BYTES

    h = hostile
    with small_disk(h.local(), "300m") as run_dir:
        h.orch("fetch-results", h.run, "--no-eval", check=True)
        free = shutil.disk_usage(run_dir).free
        limit = free - RESERVE_BYTES - (4 << 20)  # what the room check lets through for one file
        for job, digest in (("class-0", "0" * 64), ("class-1", "1" * 64)):
            manifest = json.loads((h.job(job) / "manifest.json").read_text())
            if job == "class-0":
                manifest["files"]["scores.jsonl"]["size"] = limit
            manifest["files"]["scores.jsonl"]["sha256"] = digest
            (h.job(job) / "manifest.json").write_text(json.dumps(manifest))
            with open(h.job(job) / "scores.jsonl", "r+b") as fh:
                fh.truncate(limit)  # sparse on the host
        proc = h.orch("fetch-results", h.run, "--no-eval", timeout=300)
        no_traceback(proc)
        assert proc.returncode == 8, proc.stderr
        said = " ".join(proc.stderr.split())
        assert "this run's results may take up to" in said and "(2 x " in said, said
        assert "nothing more was fetched" in said
        assert shutil.disk_usage(run_dir).free >= free - (1 << 20)
        assert not list(run_dir.glob(".fetch-*"))


def test_results_the_host_serves_other_than_it_declares_are_not_sent_again(hostile):
    """The host keeps class-1's manifest (the verified copy here matches it) but serves
    other bytes: the verified copy is kept, nothing of the host's file is written here."""
    h = hostile
    h.orch("fetch-results", h.run, "--no-eval", check=True)
    mine = (h.local("class-1") / "scores.jsonl").read_bytes()
    (h.job("class-1") / "scores.jsonl").write_bytes(b"x" * len(mine))
    proc = h.orch("fetch-results", h.run, "--no-eval", timeout=120)
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    assert (h.local("class-1") / "scores.jsonl").read_bytes() == mine


def test_whole_logs_come_no_bigger_than_the_first_pass_saw(hostile, tmp_path):
    """--full-logs onto a small disk: the logs are 2 MB when the fetch looks, and the host
    makes them 40 MB before the whole-logs transfer; each comes at most 3 MB (what the room
    check counted), so they keep their tails and the disk keeps its reserve."""
    from orchestrator.runs.fetch import RESERVE_BYTES

    h = hostile
    logs = [h.job(job) / "log.txt" for job in ("class-0", "class-1")]
    for log in logs:
        with open(log, "ab") as fh:
            fh.write(b"x" * (2 << 20) + b"\n")
    bindir = tmp_path / "growbin"
    bindir.mkdir()
    count = tmp_path / "rsync-count"
    grow = " ".join(f"{log}" for log in logs)
    # The third rsync of the fetch is the whole-logs pass (documents, results, logs).
    (bindir / "rsync").write_text(
        f"#!/bin/sh\nn=$(($(cat {count} 2>/dev/null || echo 0) + 1)); echo $n > {count}\n"
        f'if [ "$n" = 3 ]; then for f in {grow}; do truncate -s 40M "$f"; done; fi\n'
        f'exec {shutil.which("rsync")} "$@"\n'
    )
    (bindir / "rsync").chmod(0o755)
    h.p.write_host(extra_path=[str(bindir)])
    with small_disk(h.local(), "300m") as run_dir:
        proc = h.orch("fetch-results", h.run, "--no-eval", "--full-logs", timeout=300)
        no_traceback(proc)
        assert count.read_text().strip() == "3", proc.stderr
        assert proc.returncode == 0, proc.stderr
        for job in ("class-0", "class-1"):
            assert (h.local(job) / "log.txt").stat().st_size < (1 << 20) + 1024, proc.stderr
            # The message says it grew while fetched, not that it is over the 1 GiB limit.
            assert f"{job}/log.txt grew past the 2.0 MB the fetch first saw" in proc.stderr, proc.stderr
        assert "GiB" not in proc.stderr, proc.stderr
        assert shutil.disk_usage(run_dir).free > RESERVE_BYTES


# --------------------------------------------------------------------------- megabytes of error, NaN


def test_a_host_helper_that_fails_with_megabytes_on_one_line_is_quoted_by_its_tail(hostile):
    """The host helper writes 15 MB on one stderr line and fails: status, fetch-results
    and cancel say so in a message of a few lines, not 15 MB."""
    h = hostile
    swap_host_helper(h, "evil-flood", "import sys\nsys.stderr.write('E' * (15 << 20) + '\\n')\nsys.exit(1)")
    for args in (("status", h.run), ("fetch-results", h.run, "--no-eval"), ("cancel", h.run)):
        proc = h.orch(*args, timeout=120)
        no_traceback(proc)
        assert proc.returncode == 7, (args, proc.stderr[:300])
        assert "host helper failed on testhost (exit 1): ...EEE" in proc.stderr, (args, proc.stderr[:300])
        assert len(proc.stderr) < 4000, (args, len(proc.stderr))


def test_numbers_json_cannot_hold_in_host_documents_never_reach_orchs_json(hostile):
    """A host's bootstrap step result says `"ended": 1e400` and its state `NaN`: `hosts
    check --json` and the facts orch keeps are JSON that strict readers accept."""
    h = hostile
    logs = h.p.remote_root / "bootstrap" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    (logs / "conda.result").write_text('{"step": "conda", "rc": 0, "fingerprint": "x", "started": 1, "ended": 1e400}')
    (h.p.remote_root / "bootstrap" / "state.json").write_text('{"steps": {"conda": NaN}}')

    def strict(text: str):
        def refuse(name):
            raise ValueError(f"{name} in orch's JSON")

        return json.loads(text, parse_constant=refuse)

    try:
        proc = h.orch("hosts", "check", "testhost", "--json", timeout=120)
        no_traceback(proc)
        strict(proc.stdout)
        strict((h.p.root / ".orch" / "hosts" / "testhost.facts.json").read_text())
    finally:
        shutil.rmtree(h.p.remote_root / "bootstrap")
