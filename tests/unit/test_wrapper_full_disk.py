"""remote/wrapper.py on a full disk: the end state is still recorded (in the blocks of the
spare it reserved at start), with the disk named as the reason.  The real ENOSPC path runs
in tests/integration/test_hostile_host.py on a small tmpfs; here a write that fails with
ENOSPC stands in for it."""

import errno
import json
import os

import pytest

from remote import wrapper


@pytest.fixture
def job(tmp_path):
    job_dir = tmp_path / "work" / "runs" / "r" / "jobs" / "neg"
    job_dir.mkdir(parents=True)
    job = wrapper.SupervisedJob(str(job_dir))
    job.reserve()
    job.save()
    return job


def _full_disk(monkeypatch):
    def no_room(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(wrapper, "atomic_write_json", no_room)


def test_the_spare_is_reserved_and_removed_after_a_normal_end(job):
    assert os.path.getsize(job.spare_path) == wrapper.SPARE_BYTES
    job.save(state="done", exit_code=0)
    assert not os.path.exists(job.spare_path)
    assert json.load(open(job.status_path))["state"] == "done"


def test_a_failure_on_a_full_disk_is_recorded_with_the_reason(job, monkeypatch, tmp_path):
    _full_disk(monkeypatch)
    job.save(state="running")  # not recorded (no room), and no crash
    assert json.load(open(job.status_path))["state"] == "waiting"
    reason = wrapper.failure_reason(1, b"Traceback...\nOSError: [Errno 28] No space left on device: 'ckpt'\n", job)
    job.save(state="failed", exit_code=1, reason=reason)
    status = json.load(open(job.status_path))
    assert status["state"] == "failed" and status["exit_code"] == 1
    assert status["reason"].startswith(f"no space left on the host's {tmp_path / 'work'} (")
    assert "MB free): exit code 1: OSError: [Errno 28]" in status["reason"]
    assert not os.path.exists(job.spare_path)
    assert [p for p in os.listdir(os.path.dirname(job.status_path)) if ".tmp" in p] == []


def test_a_log_write_that_fails_stops_logging_not_the_wrapper(job, tmp_path):
    log = wrapper.Log(str(tmp_path / "log.txt"), job)

    class Full:
        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self):
            pass

    log.fh = Full()
    log.write(b"more output")
    log.write(b"and more")
    assert job.disk_full and log.fh is None


def test_an_atomic_write_leaves_no_temp_file_when_it_fails(tmp_path, monkeypatch):
    target = tmp_path / "status.json"

    def fail(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    from remote import files

    monkeypatch.setattr(files.os, "fsync", fail)
    with pytest.raises(OSError):
        files.atomic_write_json(str(target), {"state": "done"})
    assert os.listdir(tmp_path) == []
