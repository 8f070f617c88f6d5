"""A job folder's files that are there but hold no document (remote/files.py,
remote/hostctl.py): "no status.json" and "a status.json that cannot be read" are different
answers, and the controller shows the second as unknown, never lost (docs/CONTRACT.md)."""

import json
import os
import threading

import pytest

from orchestrator import backends
from orchestrator.contract import hostdocs
from orchestrator.runs.state import rows_from_remote
from remote import hostctl
from remote.files import MAX_DEPTH, BadFile, load_json, read_dict, read_json

DONE = {"state": "done", "pid": 1, "exit_code": 0, "created": 1.0, "started": 2.0, "ended": 3.0, "gpu": "0"}

BAD_STATUS = {
    # status.json content -> words in what is wrong
    "truncated": (b'{"state": "running", "pid": 1', "not valid JSON"),
    "empty": (b"", "not valid JSON"),
    "5000 digits": (b"1" * 5000, "too many digits"),
    "nested 100000 deep": (b"[" * 100_000 + b"]" * 100_000, "nested more than"),
    "nested 40 deep": (b'{"state": "done", "x": ' + b"[" * 40 + b"]" * 40 + b"}", "nested more than 32"),
    "over 1 MB": (b'{"state": "done", "x": "' + b"a" * (1 << 20) + b'"}', "more than the 1048576"),
    "not UTF-8": (b'{"state": "\xff"}', "not valid JSON"),
}


@pytest.mark.parametrize("case", list(BAD_STATUS))
def test_a_file_that_holds_no_document_says_why(tmp_path, case):
    data, words = BAD_STATUS[case]
    (tmp_path / "status.json").write_bytes(data)
    with pytest.raises(BadFile, match=words):
        load_json(str(tmp_path / "status.json"))
    # The callers that only decide on the host keep "nothing to go on".
    assert read_json(str(tmp_path / "status.json")) is None
    assert read_dict(str(tmp_path / "status.json")) == {}


def test_absent_is_none_and_good_is_the_document(tmp_path):
    assert load_json(str(tmp_path / "status.json")) is None
    assert load_json(str(tmp_path / "no-folder" / "status.json")) is None
    (tmp_path / "file").write_text("x")
    assert load_json(str(tmp_path / "file" / "status.json")) is None  # a parent that is a file
    (tmp_path / "status.json").write_text(json.dumps(DONE))
    assert load_json(str(tmp_path / "status.json")) == DONE
    nested = {"a": json.loads("[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1))}
    (tmp_path / "status.json").write_text(json.dumps(nested))
    assert load_json(str(tmp_path / "status.json")) == nested


def _within(seconds, fn, *args):
    """FN(*ARGS)'s result or exception, asserting it returns within SECONDS (a fifo must not
    block the reader)."""
    out = {}

    def call():
        try:
            out["value"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"{fn.__name__} blocked"
    if "error" in out:
        raise out["error"]
    return out["value"]


def test_fifos_devices_symlinks_and_folders_are_never_opened(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    os.symlink("/dev/zero", tmp_path / "to-device")
    (tmp_path / "good.json").write_text(json.dumps(DONE))
    os.symlink(tmp_path / "good.json", tmp_path / "to-good")
    os.symlink(tmp_path / "fifo", tmp_path / "to-fifo")
    os.mkdir(tmp_path / "folder")
    for name, words in (
        ("fifo", "a fifo, not a regular file"),
        ("to-device", "a symlink, not a regular file"),
        ("to-good", "a symlink, not a regular file"),
        ("to-fifo", "a symlink, not a regular file"),
        ("folder", "a folder, not a regular file"),
    ):
        with pytest.raises(BadFile, match=words):
            _within(5, load_json, str(tmp_path / name))
        with pytest.raises(BadFile, match=words):
            _within(5, hostctl.last_line, str(tmp_path / name))
    with pytest.raises(BadFile, match="a device, not a regular file"):
        load_json("/dev/null")


def _lines(*rows) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


def test_last_line_is_the_last_complete_line_or_says_it_is_bad(tmp_path):
    path = tmp_path / "progress.jsonl"
    assert hostctl.last_line(str(path)) is None
    path.write_bytes(b"")
    assert hostctl.last_line(str(path)) is None
    path.write_bytes(_lines({"step": 1}, {"step": 2}))
    assert hostctl.last_line(str(path)) == {"step": 2}
    path.write_bytes(_lines({"step": 1}, {"step": 2}) + b'{"step": 3, "lo')  # being appended
    assert hostctl.last_line(str(path)) == {"step": 2}
    path.write_bytes(_lines({"step": 1}) + b"\n  \n")  # blank lines are not lines
    assert hostctl.last_line(str(path)) == {"step": 1}
    path.write_bytes(b'{"step": 1')  # no complete line yet
    assert hostctl.last_line(str(path)) is None
    # A malformed last line is not skipped for an older one.
    path.write_bytes(_lines({"step": 1}, b'{"step": 2, "loss'))
    with pytest.raises(BadFile, match="last line not valid JSON"):
        hostctl.last_line(str(path))
    path.write_bytes(_lines({"step": 1}, b"[" * 100_000))
    with pytest.raises(BadFile, match="last line"):
        hostctl.last_line(str(path))
    # Only the tail is read; a line cut by where the tail starts is not taken for one.
    row = {"step": 7, "pad": "x" * 100}
    path.write_bytes(_lines({"step": 0, "pad": "y" * 50_000}, *[row] * 200))
    assert hostctl.last_line(str(path)) == row
    line = len(json.dumps(row)) + 1  # with its newline
    for size in range(line, line + 3):  # the tail starts at, or just before, the line
        assert hostctl.last_line(str(path), max_bytes=size) == row
    with pytest.raises(BadFile, match=f"longer than {line - 1} bytes"):
        hostctl.last_line(str(path), max_bytes=line - 1)
    path.write_bytes(_lines({"step": 1}, {"pad": "x" * 20_000}))
    with pytest.raises(BadFile, match="longer than 8192 bytes"):
        hostctl.last_line(str(path))


def _job_dir(tmp_path, status: bytes = None, progress: bytes = None):
    d = tmp_path / "runs" / "r1" / "jobs" / "class-0"
    d.mkdir(parents=True)
    if status is not None:
        (d / "status.json").write_bytes(status)
    if progress is not None:
        (d / "progress.jsonl").write_bytes(progress)
    return d


def test_hostctl_tells_a_bad_status_json_from_none(tmp_path):
    d = _job_dir(tmp_path, BAD_STATUS["truncated"][0], _lines({"step": 3, "total": 9}))
    job = _within(10, hostctl._job_state, str(d), {"alive": False})
    assert job["status"] is None and job["status_error"].startswith("not valid JSON")
    assert job["progress"] == {"step": 3, "total": 9} and job["progress_error"] is None
    (d / "status.json").unlink()
    os.mkfifo(d / "status.json")
    os.mkfifo(d / "progress.jsonl.tmp")
    (d / "progress.jsonl").unlink()
    os.symlink(d / "progress.jsonl.tmp", d / "progress.jsonl")
    job = _within(10, hostctl._job_state, str(d), {"alive": False})
    assert job["status_error"] == "a fifo, not a regular file"
    assert job["progress"] is None and job["progress_error"] == "a symlink, not a regular file"
    for name in ("status.json", "progress.jsonl", "progress.jsonl.tmp"):
        (d / name).unlink()
    job = hostctl._job_state(str(d), {"alive": False})
    assert job["status"] is None and job["status_error"] is None and job["progress_error"] is None


def test_an_end_the_backend_saw_is_never_written_over_a_bad_status_json(tmp_path):
    d = _job_dir(tmp_path, b'{"state": "done", "pid"')
    job = hostctl._job_state(str(d), {"alive": False, "ended": {"state": "failed", "reason": "TIMEOUT"}})
    assert job["status_error"] and (d / "status.json").read_bytes() == b'{"state": "done", "pid"'
    (d / "status.json").unlink()
    job = hostctl._job_state(str(d), {"alive": False, "ended": {"state": "failed", "reason": "TIMEOUT"}})
    assert job["status"]["state"] == "failed"  # no status.json at all: recorded, as before


def _rows(jobs):
    reply = hostdocs.check_status_reply({"exists": True, "now": 10.0, "jobs": jobs})
    return {
        r.name: r for r in rows_from_remote(reply, [{"name": j["name"], "gpu": ""} for j in jobs], backends.get("tmux"))
    }


def test_the_controller_shows_a_bad_status_json_as_unknown_never_lost():
    rows = _rows(
        [
            {"name": "bad", "status": None, "status_error": "not valid JSON (x at byte 3)", "alive": False},
            {"name": "fifo", "status": None, "status_error": "a fifo, not a regular file", "alive": True},
            {"name": "none", "status": None, "status_error": None, "alive": False},
            {
                "name": "progress",
                "status": dict(DONE),
                "progress": None,
                "progress_error": "last line not valid JSON (y at byte 0)",
                "alive": False,
            },
            {"name": "both", "status": None, "status_error": "cut", "progress_error": "also", "alive": False},
            {"name": "old", "status": dict(DONE), "alive": False},  # a snapshot without the keys
        ]
    )
    assert rows["bad"].state == "unknown" and rows["bad"].reason == "bad status.json: not valid JSON (x at byte 3)"
    assert rows["fifo"].state == "unknown" and rows["fifo"].reason == "bad status.json: a fifo, not a regular file"
    assert rows["none"].state == "lost"  # absent: never started, or nobody left
    assert rows["progress"].state == "unknown"
    assert rows["progress"].reason == "bad progress.jsonl: last line not valid JSON (y at byte 0)"
    assert rows["both"].reason == "bad status.json: cut"
    assert rows["old"].state == "done"


def test_what_a_host_says_is_wrong_is_escaped_short_and_checked():
    rows = _rows([{"name": "a", "status": None, "status_error": "\x1b]0;owned\x07" + "z" * 500}])
    reason = rows["a"].reason
    assert "\x1b" not in reason and "\\x1b]0;owned\\x07" in reason
    assert len(reason) <= len("bad status.json: ") + hostdocs.MAX_SAID and reason.endswith("...")
    with pytest.raises(hostdocs.BadDocument, match="'status_error' must be a string"):
        hostdocs.check_status_reply({"exists": True, "jobs": [{"name": "a", "status_error": ["x"]}]})
    with pytest.raises(hostdocs.BadDocument, match="'progress_error' must be a string"):
        hostdocs.check_status_reply({"exists": True, "jobs": [{"name": "a", "progress_error": 5}]})
