"""A write this machine refuses (full disk, quota, read-only, no permission) is one message
naming the file, exit 8, with the previous file untouched and no temp file left behind
(orchestrator/localfiles.py; the real CLI on a full tmpfs: tests/integration/test_local_disk_full.py)."""

from __future__ import annotations

import errno
import json
import os
import sys

import pytest

from orchestrator import cli, localfiles
from orchestrator.contract import records
from orchestrator.errors import ExitCode, OrchError
from remote import files
from tests.unit.evalruns import make_run


def refuse(monkeypatch, code: int) -> None:
    """Every atomic write fails as a full disk (or CODE) fails it: after the data went out."""

    def fsync(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(files.os, "fsync", fsync)


@pytest.mark.parametrize(
    "code, said",
    [
        (errno.ENOSPC, "no space left on this machine to write"),
        (errno.EDQUOT, "(disk quota exceeded)"),
        (errno.EROFS, "is on a read-only filesystem"),
        (errno.EACCES, "permission denied"),
    ],
)
def test_a_refused_write_names_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch, code, said):
    path = tmp_path / "local.json"
    path.write_text("before\n")
    refuse(monkeypatch, code)
    with pytest.raises(OrchError) as caught:
        localfiles.atomic_write_text(path, "after\n")
    exc = caught.value
    assert exc.code == ExitCode.RUN_STATE and said in exc.message and str(path) in exc.message
    assert "the previous local.json is untouched" in exc.message and exc.hint
    if code == errno.ENOSPC:
        assert "MB free there" in exc.message and "free space" in exc.hint
    assert path.read_text() == "before\n" and os.listdir(tmp_path) == ["local.json"]


def test_other_errors_stay_what_they_are(tmp_path, monkeypatch):
    refuse(monkeypatch, errno.EIO)
    with pytest.raises(OSError) as caught:
        localfiles.atomic_write_text(tmp_path / "x.json", "{}")
    assert caught.value.errno == errno.EIO and os.listdir(tmp_path) == []


def test_the_run_record_goes_through_it(tmp_path, monkeypatch):
    refuse(monkeypatch, errno.ENOSPC)
    with pytest.raises(OrchError, match="no space left on this machine to write .*local.json"):
        records.save_record(tmp_path, {"run_id": "r"})
    assert os.listdir(tmp_path) == []


class FullDiskFigure:
    """A matplotlib figure whose savefig runs out of space half-way through the PNG."""

    def suptitle(self, *a, **k):
        pass

    def savefig(self, path, **kwargs):
        with open(path, "wb") as f:
            f.write(b"\x89PNG half")
        raise OSError(errno.ENOSPC, "No space left on device")


def test_a_plot_on_a_full_disk_leaves_no_temp_file_and_the_previous_plot(tmp_path):
    from orchestrator.results.plots import save_png

    png = tmp_path / "margin_hist.png"
    png.write_bytes(b"previous")
    with pytest.raises(OrchError, match="no space left on this machine to write .*margin_hist.png"):
        save_png(FullDiskFigure(), png, title="t", label="l", what="w", writer="test")
    assert sorted(os.listdir(tmp_path)) == ["margin_hist.png"] and png.read_bytes() == b"previous"


def test_orch_eval_on_a_full_disk_is_one_message_and_exit_8(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ORCH_PROJECT", str(tmp_path))
    (tmp_path / "configs").mkdir()
    (tmp_path / "remote").mkdir()
    run_dir = make_run(tmp_path, "r1")
    monkeypatch.setattr(sys, "argv", ["orch", "eval", "r1"])  # the quick path (commands/quickeval.py)
    with pytest.raises(SystemExit) as stop:
        cli.main()  # writes metrics.json, report.md, ...
    assert stop.value.code == 0
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    capsys.readouterr()
    refuse(monkeypatch, errno.ENOSPC)
    with pytest.raises(SystemExit) as stop:
        cli.main()
    err = capsys.readouterr().err
    assert stop.value.code == ExitCode.RUN_STATE, err
    assert err.startswith("error: no space left on this machine to write ") and "Traceback" not in err
    assert "MB free there" in err and "hint: free space" in err
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before
    assert json.loads((run_dir / "metrics.json").read_text())["run_id"] == "r1"
