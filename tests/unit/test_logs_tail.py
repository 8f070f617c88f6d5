"""`orch logs` without -f asks the run's own snapshot's host helper (`hostctl follow
--no-follow`); a snapshot from before that option is told apart, so the command can fall back
on the `follow` it has.  On the built-in `local` transport against real snapshot copies."""

import shutil
import sys
from pathlib import Path

from orchestrator import backends
from orchestrator.commands.runs import _show_tail
from orchestrator.config.hosts import HostConfig
from orchestrator.transport.base import LocalTransport

REPO = Path(__file__).resolve().parents[2]


def _host(tmp_path, edit=None):
    workdir = tmp_path / "w"
    dest = workdir / "code" / "h" / "remote"
    shutil.copytree(REPO / "remote", dest, ignore=shutil.ignore_patterns("__pycache__"))
    if edit:
        (dest / "hostctl.py").write_text(edit((dest / "hostctl.py").read_text()))
    job = workdir / "runs" / "r1" / "jobs" / "class-0"
    job.mkdir(parents=True)
    (job / "log.txt").write_text("first\nsecond\nlast\n")
    transport = LocalTransport(HostConfig(name="local", workdir=str(workdir), python=sys.executable))
    return transport, {"host": "local", "workdir": str(workdir), "code_hash": "h"}


def _older(text: str) -> str:
    """hostctl as it was before --no-follow: argparse rejects the option."""
    return text.replace('p.add_argument("--no-follow"', '(lambda *a, **k: None)("--no-follow"').replace(
        "opts.no_follow", "False"
    )


def test_the_tail_comes_from_the_host_helper(tmp_path, capsys):
    transport, record = _host(tmp_path)
    assert _show_tail(transport, tmp_path / "r1", record, "class-0", ["class-0"], 2, backends.get("tmux"))
    assert capsys.readouterr().out == "second\nlast\n"


def test_an_older_snapshots_helper_is_told_apart(tmp_path, capsys):
    transport, record = _host(tmp_path, _older)
    assert not _show_tail(transport, tmp_path / "r1", record, "class-0", ["class-0"], 2, backends.get("tmux"))
    assert capsys.readouterr().out == ""


def test_the_tail_of_no_lines_starts_at_the_end(tmp_path):
    """`orch logs -f -n 0`: following starts at the log's end.  It started one byte past the
    end of a log whose last line had no newline yet, so the first byte appended was lost."""
    from remote.hostctl import _tail_start

    log = tmp_path / "log.txt"
    for text in (b"first\nstep 5 of 10", b"first\nsecond\n", b""):
        log.write_bytes(text)
        for lines in (0, -1, -40):
            assert _tail_start(str(log), lines) == len(text), (text, lines)
    log.write_bytes(b"first\nstep 5 of 10")
    assert _tail_start(str(log), 1) == len(b"first\n")
