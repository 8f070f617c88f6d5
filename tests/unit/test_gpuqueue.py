"""The host-wide line per GPU (remote/gpuqueue.py) and the wrapper's use of it: jobs of
different runs take a GPU in turn, a dead waiter or holder never blocks the line, a
signal ends a wait properly, and a job without a GPU does not queue."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from contractdoc import documented

from orchestrator import backends
from orchestrator.backends.tmux import gpu_queue_dir
from orchestrator.runs.plan import PlannedJob, job_command
from remote import gpuqueue

REPO = Path(__file__).resolve().parents[2]
PY = sys.executable

# A waiter in its own process: queues for GPUS as JOB of run r, writes each waiting reason to
# <dir>/JOB.reason, writes <dir>/JOB.held once it has them and gives them back when
# <dir>/JOB.release appears.
WAITER = """
import os, sys, time
from remote import gpuqueue
queue, out, job, gpus = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
path = lambda ext: os.path.join(out, job + "." + ext)
def report(text):
    with open(path("reason.tmp"), "w") as fh:
        fh.write(text)
    os.replace(path("reason.tmp"), path("reason"))
held = gpuqueue.wait_turn(queue, gpus, {"pid": os.getpid(), "run": "r", "job": job}, lambda: False, report, 0.05)
open(path("held"), "w").close()
while not os.path.exists(path("release")):
    time.sleep(0.02)
held.release()
"""


def _wait(pred, what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture
def procs():
    """Processes a test starts (Popen objects, or plain pids of payloads), killed at the end."""
    started = []
    yield started
    for proc in started:
        if isinstance(proc, int):
            _kill(proc)
            continue
        for child in subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split():
            try:
                os.killpg(int(child), signal.SIGKILL)  # a wrapper's payload leads its own group
            except ProcessLookupError:
                _kill(int(child))
        proc.kill()
        proc.wait()


class Waiters:
    def __init__(self, tmp_path: Path, procs):
        self.queue, self.out, self.procs = tmp_path / "gpu-queue", tmp_path / "w", procs
        self.out.mkdir()

    def start(self, job: str, gpus: str = "0") -> subprocess.Popen:
        proc = subprocess.Popen(
            [PY, "-c", WAITER, str(self.queue), str(self.out), job, gpus], env=dict(os.environ, PYTHONPATH=str(REPO))
        )
        self.procs.append(proc)
        return proc

    def reason(self, job: str) -> str:
        path = self.out / f"{job}.reason"
        return path.read_text() if path.exists() else ""

    def holds(self, job: str) -> bool:
        return (self.out / f"{job}.held").exists()

    def release(self, job: str) -> None:
        (self.out / f"{job}.release").touch()

    def wait_reason(self, job: str, text: str) -> None:
        _wait(lambda: self.reason(job) == text, f"{job}'s reason {text!r} (last: {self.reason(job)!r})")

    def tickets(self, gpu: str = "0"):
        return sorted(p.name for p in (self.queue / gpu).glob("*.ticket"))


@pytest.fixture
def waiters(tmp_path, procs):
    return Waiters(tmp_path, procs)


def test_devices_are_taken_in_one_fixed_order_and_a_cpu_job_has_none():
    assert gpuqueue.devices("") == [] and gpuqueue.devices(" , ") == []
    assert gpuqueue.devices("1,0,1") == ["0", "1"]
    assert gpuqueue.devices("10, 2") == ["2", "10"]
    assert gpuqueue.devices("GPU-ab12,0") == ["0", "GPU-ab12"]
    assert gpuqueue.slot("0") == "0" and gpuqueue.slot("GPU-ab12") == "GPU-ab12"
    assert gpuqueue.slot("../x").startswith("gpu-") and "/" not in gpuqueue.slot("a/b")


def test_the_waiting_reason_says_the_place_and_who_is_ahead():
    a, b = {"pid": 1, "run": "r1", "job": "class-1"}, {"pid": 2, "run": "r2", "job": "class-0"}
    assert gpuqueue.waiting_reason("0", [], a) == "waiting for GPU 0: 2nd in line (behind run r1 job class-1)"
    assert (
        gpuqueue.waiting_reason("0", [b], a) == "waiting for GPU 0: 3rd in line (behind run r1 job class-1 and 1 more)"
    )
    assert gpuqueue.waiting_reason("0", [b], None) == "waiting for GPU 0: 2nd in line (behind run r2 job class-0)"
    assert gpuqueue.waiting_reason("1", [a] * 10, {}) == (
        "waiting for GPU 1: 12th in line (behind another process and 10 more)"
    )
    assert [gpuqueue.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 101)] == [
        "1st",
        "2nd",
        "3rd",
        "4th",
        "11th",
        "12th",
        "13th",
        "21st",
        "22nd",
        "101st",
    ]


def test_jobs_take_the_gpu_first_come_first_served(waiters):
    waiters.start("a")
    _wait(lambda: waiters.holds("a"), "a to hold GPU 0")
    waiters.start("b")
    waiters.wait_reason("b", "waiting for GPU 0: 2nd in line (behind run r job a)")
    waiters.start("c")
    waiters.wait_reason("c", "waiting for GPU 0: 3rd in line (behind run r job a and 1 more)")
    assert not waiters.holds("b") and not waiters.holds("c")

    waiters.release("a")
    _wait(lambda: waiters.holds("b"), "b to hold GPU 0 after a")
    waiters.wait_reason("c", "waiting for GPU 0: 2nd in line (behind run r job b)")
    assert not waiters.holds("c") and len(waiters.tickets()) == 1  # b gave up its ticket when it got the GPU
    waiters.release("b")
    _wait(lambda: waiters.holds("c"), "c to hold GPU 0 after b")
    waiters.release("c")
    _wait(lambda: waiters.procs[-1].poll() is not None, "c to end")
    assert waiters.tickets() == []


def test_a_killed_holder_or_waiter_never_blocks_the_line(waiters):
    a = waiters.start("a")
    _wait(lambda: waiters.holds("a"), "a to hold GPU 0")
    b = waiters.start("b")
    waiters.wait_reason("b", "waiting for GPU 0: 2nd in line (behind run r job a)")
    waiters.start("c")
    waiters.wait_reason("c", "waiting for GPU 0: 3rd in line (behind run r job a and 1 more)")

    b.kill()  # a dead waiter: its ticket file stays, nobody holds it
    b.wait()
    waiters.wait_reason("c", "waiting for GPU 0: 2nd in line (behind run r job a)")
    assert len(waiters.tickets()) == 1  # c removed b's dead ticket

    a.kill()  # a dead holder (kill -9): its flock died with it, whatever its pid becomes
    a.wait()
    _wait(lambda: waiters.holds("c"), "c to take GPU 0 from the killed holder")
    waiters.release("c")


def test_a_job_on_two_gpus_holds_both_and_others_queue_for_each(waiters):
    waiters.start("both", "1,0")
    _wait(lambda: waiters.holds("both"), "both GPUs held")
    waiters.start("zero", "0")
    waiters.start("one", "1")
    waiters.wait_reason("zero", "waiting for GPU 0: 2nd in line (behind run r job both)")
    waiters.wait_reason("one", "waiting for GPU 1: 2nd in line (behind run r job both)")
    waiters.release("both")
    _wait(lambda: waiters.holds("zero") and waiters.holds("one"), "each single-GPU job to get its GPU")
    waiters.release("zero")
    waiters.release("one")


def test_stopping_a_wait_leaves_the_line_and_gives_back_what_was_taken(tmp_path):
    queue = str(tmp_path / "q")
    other = gpuqueue.Line(queue, "1").try_take({"pid": 1, "run": "x", "job": "y"})  # GPU 1 is taken
    reasons = []
    stop = {"now": False}

    def report(text):
        reasons.append(text)
        stop["now"] = True  # we are in line for GPU 1: stop waiting

    held = gpuqueue.wait_turn(queue, ["0", "1"], {"pid": 2, "run": "r", "job": "j"}, lambda: stop["now"], report, 0.01)
    assert held is None and reasons == ["waiting for GPU 1: 2nd in line (behind run x job y)"]
    assert gpuqueue.Line(queue, "0").holder() is None  # GPU 0, taken first, was given back
    assert not list((tmp_path / "q").glob("*/*.ticket"))
    os.close(other)
    assert gpuqueue.Line(queue, "1").holder() is None


def test_the_queue_files_have_the_documented_keys(tmp_path):
    docs = documented()
    queue = str(tmp_path / "q")
    line = gpuqueue.Line(queue, "0")
    me = {"pid": os.getpid(), "run": "r", "job": "j"}
    ticket = line.take_ticket(me)
    assert set(json.loads(Path(ticket.path).read_text())) == docs["GPU queue/ticket keys"]
    fd = line.try_take(me)
    assert set(json.loads((tmp_path / "q" / "0" / "lock").read_text())) == docs["GPU queue/lock keys"]
    ticket.give_up()
    os.close(fd)


# --------------------------------------------------------------------------- the wrapper


def _job_dir(tmp_path: Path, run: str, job: str) -> Path:
    return tmp_path / "work" / "runs" / run / "jobs" / job


def _wrapper(tmp_path: Path, run: str, job: str, *payload: str, gpu: str = "0") -> subprocess.Popen:
    job_dir = _job_dir(tmp_path, run, job)
    env = dict(os.environ, PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES=gpu)
    return subprocess.Popen(
        [
            PY,
            "-m",
            "remote.wrapper",
            "--job-dir",
            str(job_dir),
            "--gpu-queue",
            str(tmp_path / "work" / "gpu-queue"),
            "--",
            *payload,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _status(tmp_path: Path, run: str, job: str) -> dict:
    path = _job_dir(tmp_path, run, job) / "status.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _sleeper(tmp_path: Path, name: str):
    """A payload that records its pid and sleeps (so a test can kill it by pid)."""
    return ["sh", "-c", f"echo $$ > {tmp_path / name}.pid; exec sleep 120"]


def _pid(tmp_path: Path, name: str) -> int:
    path = tmp_path / f"{name}.pid"
    _wait(lambda: path.exists() and path.read_text().strip().isdigit(), f"{name}'s payload to start")
    return int(path.read_text())


@pytest.mark.parametrize("cancel", [True, False])
def test_a_signal_while_waiting_for_the_gpu_ends_the_wait(tmp_path, procs, cancel):
    first = _wrapper(tmp_path, "r1", "class-0", *_sleeper(tmp_path, "first"))
    procs.append(first)
    procs.append(_pid(tmp_path, "first"))
    second = _wrapper(tmp_path, "r2", "class-0", "sh", "-c", f"touch {tmp_path}/SECOND_RAN")
    procs.append(second)
    _wait(
        lambda: (
            _status(tmp_path, "r2", "class-0").get("reason")
            == "waiting for GPU 0: 2nd in line (behind run r1 job class-0)"
        ),
        "the second run's job to queue",
    )
    assert _status(tmp_path, "r2", "class-0")["state"] == "waiting"
    assert _status(tmp_path, "r1", "class-0")["state"] == "running"

    if cancel:
        (_job_dir(tmp_path, "r2", "class-0") / "cancel").touch()  # as `hostctl cancel` does, then signals
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=30) == 128 + signal.SIGTERM
    status = _status(tmp_path, "r2", "class-0")
    assert (status["state"], status["reason"]) == (
        ("cancelled", "cancelled by the user") if cancel else ("failed", "killed by signal 15")
    )
    assert not list((tmp_path / "work" / "gpu-queue" / "0").glob("*.ticket"))  # it left the line
    assert not (tmp_path / "SECOND_RAN").exists()
    assert first.poll() is None  # the job on the GPU was not disturbed


def test_the_gpu_stays_taken_while_a_killed_wrappers_payload_runs(tmp_path, procs):
    first = _wrapper(tmp_path, "r1", "class-0", *_sleeper(tmp_path, "first"))
    procs.append(first)
    payload = _pid(tmp_path, "first")
    procs.append(payload)
    first.kill()  # kill -9 of the wrapper: the payload, in its own session, runs on
    first.wait()
    second = _wrapper(tmp_path, "r2", "class-0", "sh", "-c", f"touch {tmp_path}/SECOND_RAN")
    procs.append(second)
    _wait(
        lambda: "behind run r1 job class-0" in (_status(tmp_path, "r2", "class-0").get("reason") or ""),
        "the second job to wait for the orphaned payload's GPU",
    )
    assert not (tmp_path / "SECOND_RAN").exists()

    _kill(payload)  # the payload ends: its GPU is free
    assert second.wait(timeout=60) == 0
    status = _status(tmp_path, "r2", "class-0")
    assert (status["state"], status["reason"]) == ("done", "") and (tmp_path / "SECOND_RAN").exists()


def test_jobs_of_two_runs_never_hold_the_gpu_at_once(tmp_path, procs):
    jobs = [("r1", "class-0"), ("r2", "class-0"), ("r1", "class-1")]
    for run, job in jobs:  # each payload sleeps a little: long enough to overlap if nothing stopped it
        procs.append(_wrapper(tmp_path, run, job, PY, "-c", "import time; time.sleep(0.3)"))
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    spans = sorted((_status(tmp_path, run, job)["started"], _status(tmp_path, run, job)["ended"]) for run, job in jobs)
    assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:])), spans


def test_a_job_without_a_gpu_does_not_queue(tmp_path, procs):
    first = _wrapper(tmp_path, "r1", "class-0", *_sleeper(tmp_path, "first"))
    procs.append(first)
    procs.append(_pid(tmp_path, "first"))
    cpu = _wrapper(tmp_path, "r2", "class-0", "true", gpu="")
    procs.append(cpu)
    assert cpu.wait(timeout=30) == 0  # GPU 0 is taken, and it did not wait for it
    assert _status(tmp_path, "r2", "class-0")["state"] == "done"
    assert sorted(p.name for p in (tmp_path / "work" / "gpu-queue").iterdir()) == ["0"]


def test_only_tmux_jobs_with_a_gpu_are_told_the_queue():
    job, cpu = PlannedJob(name="neg", role="class", label="0", gpu="0"), PlannedJob(name="pos", role="class", label="1")
    assert gpu_queue_dir("/w/runs/r1") == "/w/gpu-queue"
    # An environment variable, not an option: a resumed run starts its own snapshot's wrapper,
    # which may predate the queue and would refuse an option it does not know.
    assert " ORCH_GPU_QUEUE=/w/gpu-queue py -m remote.wrapper " in job_command(
        "py", "/w/runs/r1", "/w/code/h", job, backends.get("tmux")
    )
    assert "ORCH_GPU_QUEUE" not in job_command("py", "/w/runs/r1", "/w/code/h", cpu, backends.get("tmux"))
    # Slurm allocates GPUs itself: its jobs never queue here, whatever their gpu says.
    assert "ORCH_GPU_QUEUE" not in job_command("py", "/w/runs/r1", "/w/code/h", job, backends.get("slurm"))


def test_orch_status_shows_a_waiting_jobs_place():
    from rich.console import Console

    from orchestrator.commands.runs import status_table
    from orchestrator.runs.state import rows_from_remote

    reason = "waiting for GPU 0: 2nd in line (behind run r1 job class-1)"
    remote = {
        "now": 100.0,
        "jobs": [
            {
                "name": "class-0",
                "alive": True,
                "owner": 7,
                "status": {"state": "waiting", "gpu": "0", "reason": reason},
            },
            {"name": "class-1", "alive": True, "owner": 8, "status": {"state": "waiting", "gpu": "0", "reason": ""}},
        ],
    }
    rows = rows_from_remote(
        remote, [{"name": "class-0", "gpu": "0"}, {"name": "class-1", "gpu": "0"}], backends.get("tmux")
    )
    assert [(r.state, r.reason) for r in rows] == [("waiting", reason), ("waiting", "")]
    console = Console(width=300, record=True)
    console.print(status_table("r2", "testhost", rows, backends.get("tmux")))
    lines = console.export_text().splitlines()
    assert any(f"waiting ({reason})" in line and "class-0" in line for line in lines), lines
    assert any("class-1" in line and "waiting " in line and "(" not in line for line in lines), lines
