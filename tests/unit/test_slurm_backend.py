"""The Slurm backend's host side with fake Slurm commands, and the wrapper's requeue path.

The real thing is tested end to end in tests/integration/test_slurm.py; here, what Slurm
says (every state, a purged id, a refusal) is scripted, and so is `scontrol requeue`.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.backends.slurm import SlurmBackend as ControllerSlurm
from orchestrator.runs.state import job_row
from remote.backends import BackendError, get
from remote.backends.slurm import batch_script

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """sbatch / squeue / scontrol / scancel / sacct scripts that log their argv and answer
    from files the test writes."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.jsonl"
    for tool in ("sbatch", "squeue", "scontrol", "scancel", "sacct"):
        script = bin_dir / tool
        script.write_text(
            f"#!{sys.executable}\n"
            "import json, os, sys\n"
            f"open({str(log)!r}, 'a').write(json.dumps(sys.argv) + '\\n')\n"
            f"answer = os.path.join({str(tmp_path)!r}, {tool!r} + '.answer')\n"
            "rc, out, err = json.load(open(answer)) if os.path.exists(answer) else (0, '', '')\n"
            "sys.stdout.write(out); sys.stderr.write(err); sys.exit(rc)\n"
        )
        script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")

    class Fake:
        def answer(self, tool, out="", rc=0, err=""):
            (tmp_path / f"{tool}.answer").write_text(json.dumps([rc, out, err]))

        def calls(self, tool=None):
            if not log.exists():
                return []
            rows = [json.loads(line) for line in log.read_text().splitlines()]
            return [r for r in rows if tool is None or os.path.basename(r[0]) == tool]

    return Fake()


def test_submit_passes_options_as_argv_items_and_afterok_only_within_the_launch(tmp_path, fake_slurm):
    backend = get(
        "slurm",
        str(tmp_path),
        {"sbatch": ["--partition=gpu", "--gres=gpu:1"], "modules": ["cuda/12.4"], "warn_before": 90},
    )
    pre, neg = tmp_path / "pre", tmp_path / "neg"
    pre.mkdir(), neg.mkdir()
    fake_slurm.answer("sbatch", "41\n")
    assert backend.submit({"name": "pretrain", "run_id": "r", "job_dir": str(pre), "command": "exec true"}, {}) == "41"
    fake_slurm.answer("sbatch", "42;cluster\n")
    job = {"name": "neg", "run_id": "r", "job_dir": str(neg), "command": "exec true", "requires": ["pretrain"]}
    assert backend.submit(job, {}) == "42"
    first, second = fake_slurm.calls("sbatch")
    assert "--dependency=afterok:41" in second and not any(a.startswith("--dependency") for a in first)
    assert second[-3:] == ["--partition=gpu", "--gres=gpu:1", str(neg / "slurm.sh")]
    assert "--signal=B:USR1@90" in second and "--requeue" in second and f"--output={neg}/slurm.out" in second
    fake_slurm.answer("sbatch", "44\n")
    backend.submit({**job, "name": "pos", "after": ["neg"]}, {})
    assert "--dependency=afterok:41,afterany:42" in fake_slurm.calls("sbatch")[-1]
    # A resume: the required job is done already (not in this launch): no dependency on it.
    again = get("slurm", str(tmp_path), {})
    fake_slurm.answer("sbatch", "43\n")
    again.submit(job, {"pretrain": "41"})
    assert not any(a.startswith("--dependency") for a in fake_slurm.calls("sbatch")[-1])
    fake_slurm.answer(
        "sbatch", "", rc=1, err="sbatch: error: Batch job submission failed: Invalid partition name specified\n"
    )
    with pytest.raises(BackendError, match="sbatch refused it: Batch job submission failed: Invalid partition"):
        backend.submit(job, {})


def test_a_required_job_submitted_before_is_waited_for_while_slurm_holds_it(tmp_path, fake_slurm):
    """A resume whose required job still runs, and a study run whose shared pretrain job is
    another run's (RUN/JOB): afterok on the recorded id while squeue lists it live."""
    pre = tmp_path / "runs" / "owner" / "jobs" / "pretrain"
    own = tmp_path / "runs" / "member" / "jobs" / "pretrain"
    clf = tmp_path / "runs" / "member" / "jobs" / "classifier"
    for d in (pre, own, clf):
        d.mkdir(parents=True)
    (pre / "backend.json").write_text(json.dumps({"backend": "slurm", "handle": "41"}))
    (own / "backend.json").write_text(json.dumps({"backend": "slurm", "handle": "40"}))
    job = {"name": "classifier", "run_id": "member", "job_dir": str(clf), "command": "exec true"}
    backend = get("slurm", str(tmp_path), {})
    for required, live, expected in (
        ("owner/pretrain", "RUNNING", "--dependency=afterok:41"),
        ("pretrain", "PENDING", "--dependency=afterok:40"),
        ("owner/pretrain", "COMPLETED", None),  # ended: nothing to wait for (the wrapper checks it is done)
    ):
        handle = "41" if required.startswith("owner") else "40"
        fake_slurm.answer("squeue", f"{handle}|{live}|None|n1|gpu\n")
        fake_slurm.answer("sbatch", "50\n")
        backend.submit({**job, "requires": [required]}, {})
        deps = [a for a in fake_slurm.calls("sbatch")[-1] if a.startswith("--dependency")]
        assert deps == ([expected] if expected else []), (required, live)
    fake_slurm.answer("squeue", "", rc=1, err="slurm_load_jobs error: Invalid job id specified\n")  # purged
    backend.submit({**job, "requires": ["owner/pretrain"]}, {})
    assert not any(a.startswith("--dependency") for a in fake_slurm.calls("sbatch")[-1])


def test_batch_script_quotes_modules_and_execs_the_command():
    text = batch_script(
        {"name": "neg", "run_id": "r", "command": "cd /c && exec env A=1 py -m remote.wrapper"}, ["cuda/12.4", "a b"]
    )
    lines = text.splitlines()
    assert lines[0] == "#!/bin/bash" and lines[-1] == "cd /c && exec env A=1 py -m remote.wrapper"
    assert "module load cuda/12.4 ||" in text and "module load 'a b' ||" in text


def test_alive_maps_slurm_states_and_reasons(tmp_path, fake_slurm):
    backend = get("slurm", str(tmp_path), {})
    fake_slurm.answer(
        "squeue",
        "1|PENDING|Priority||gpu\n2|RUNNING|None|node7|gpu\n3|TIMEOUT|TimeLimit|node7|gpu\n"
        "4|CANCELLED|DependencyNeverSatisfied||gpu\n5|OUT_OF_MEMORY|OutOfMemory|n1|gpu\n"
        "6|CANCELLED|None|n1|gpu\n",
    )
    fake_slurm.answer("sacct", "", rc=1, err="Slurm accounting storage is disabled")
    got = backend.alive({"a": "1", "b": "2", "c": "3", "d": "4", "e": "5", "f": "6", "gone": "99"})
    assert got["a"]["alive"] and got["a"]["queued"] and got["a"]["reason"] == "Priority"
    assert got["b"]["alive"] and got["b"]["node"] == "node7" and "queued" not in got["b"]
    assert not got["c"]["alive"] and got["c"]["ended"]["state"] == "failed"
    assert "time limit" in got["c"]["ended"]["reason"] and "TIMEOUT, TimeLimit" in got["c"]["ended"]["reason"]
    assert got["d"]["ended"]["state"] == "failed" and "requires" in got["d"]["ended"]["reason"]
    assert "out of memory" in got["e"]["ended"]["reason"]
    assert got["f"]["ended"]["state"] == "cancelled"
    assert got["gone"] == {"alive": False, "job_id": "99"}  # purged: lost unless its files say it ended
    squeue = fake_slurm.calls("squeue")
    assert len(squeue) == 1 and "1,2,3,4,5,6,99" in squeue[0]  # one call for the whole run
    assert len(fake_slurm.calls("sacct")) == 1  # asked only about the one squeue forgot


def test_how_status_words_slurm_and_a_forgotten_job_is_lost():
    backend = ControllerSlurm()
    pending = job_row(
        {"name": "neg", "alive": True, "backend": {"job_id": "7", "state": "PENDING", "reason": "Resources"}},
        0.0,
        "",
        backend,
    )
    assert pending.state == "pending" and pending.note == "PENDING: Resources" and backend.ident(pending.backend) == "7"
    running = job_row(
        {
            "name": "neg",
            "alive": True,
            "status": {"state": "running", "requeues": 2},
            "backend": {"job_id": "7", "state": "RUNNING", "reason": "None", "node": "g1"},
        },
        0.0,
        "",
        backend,
    )
    assert running.note == "RUNNING on g1" and running.requeues == 2
    gone = job_row(
        {"name": "neg", "alive": False, "status": {"state": "running"}, "backend": {"job_id": "7"}}, 0.0, "", backend
    )
    assert gone.state == "lost"


def _wrapper(job_dir: Path, env: dict, max_requeues: int = 1) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "remote.wrapper",
            "--job-dir",
            str(job_dir),
            "--requeueable",
            "--max-requeues",
            str(max_requeues),
            "--",
            sys.executable,
            "-c",
            "import signal, sys, time\n"
            "signal.signal(signal.SIGTERM, lambda *a: (print('checkpoint saved', flush=True), sys.exit(143)))\n"
            "print('train' + 'ing', flush=True)\n"  # not 'training': the wrapper logs the command line
            "time.sleep(60)\n",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _status(job_dir: Path) -> dict:
    path = job_dir / "status.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _wait_for(pred, what, timeout=120):  # a guard against hangs on a busy machine, not a speed claim
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _warned(job: Path, env: dict, max_requeues: int = 1) -> dict:
    """Run a wrapper in JOB, give it Slurm's time-limit warning once training runs, and
    return the status.json it leaves."""
    proc = _wrapper(job, env, max_requeues)
    try:
        _wait_for(
            lambda: "training" in (job / "log.txt").read_text() if (job / "log.txt").exists() else False,
            "the payload to start",
        )
        proc.send_signal(signal.SIGUSR1)  # Slurm's --signal=B:USR1@N: the time limit is near
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "checkpoint saved" in (job / "log.txt").read_text()
    return _status(job)


@pytest.mark.parametrize("restarts, expected", [("0", "waiting"), ("1", "failed")])
def test_time_limit_warning_checkpoints_then_requeues_at_most_max_times(tmp_path, fake_slurm, restarts, expected):
    env = dict(os.environ, PYTHONPATH=str(REPO), SLURM_JOB_ID="77", SLURM_RESTART_COUNT=restarts)
    status = _warned(tmp_path / "job", env)
    assert status["state"] == expected and status["requeues"] == 1  # requeued once: now, or before
    if expected == "waiting":
        assert "requeued (1)" in status["reason"]
        assert fake_slurm.calls("scontrol")[-1][1:] == ["requeue", "77"]
    else:
        assert "warning (slurm.warn_before before slurm.time) again after 1 requeue of Slurm job 77," in status[
            "reason"
        ] and not fake_slurm.calls("scontrol")


def test_the_requeue_the_reason_names_is_the_count_status_shows(tmp_path, fake_slurm):
    """`requeued (N)` in the reason and `requeues` (the status column, --json, the manifest)
    are one number: the times the job has been requeued, this requeue included."""
    env = dict(os.environ, PYTHONPATH=str(REPO), SLURM_JOB_ID="77", SLURM_RESTART_COUNT="1")
    status = _warned(tmp_path / "job", env, max_requeues=3)  # its second requeue
    assert status["state"] == "waiting" and status["reason"].endswith("requeued (2)")
    assert status["requeues"] == 2
    # Slurm refuses the requeue: it did not happen, and the count says so.
    fake_slurm.answer("scontrol", "", rc=1, err="scontrol: error: Job is no longer requeueable\n")
    status = _warned(tmp_path / "refused", env, max_requeues=3)
    assert status["state"] == "failed" and "Slurm refused to requeue it" in status["reason"]
    assert status["requeues"] == 1


def test_a_stop_by_slurm_is_not_an_end_but_a_cancel_is(tmp_path, fake_slurm):
    env = dict(os.environ, PYTHONPATH=str(REPO), SLURM_JOB_ID="78")
    for cancel in (False, True):
        job = tmp_path / f"job-{cancel}"
        proc = _wrapper(job, env)
        try:
            _wait_for(lambda job=job: _status(job).get("state") == "running", "running")
            if cancel:
                (job / "cancel").touch()
            proc.send_signal(signal.SIGTERM)  # a requeue, a preemption, or scancel
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        status = _status(job)
        assert status["state"] == ("cancelled" if cancel else "waiting"), status
        assert not fake_slurm.calls("scontrol")  # only the time-limit warning asks for a requeue


def test_a_job_submitted_again_carries_its_requeue_count_on(tmp_path, fake_slurm):
    """--resume of a job Slurm had requeued: the new Slurm job starts SLURM_RESTART_COUNT at 0,
    so hostctl launch writes the count so far into its batch script, and the wrapper (and
    the manifest, remote/run_job.py) count on from there; slurm.max_requeues still bounds
    each submission."""
    run = tmp_path / "runs" / "r"
    job = _slurm_job(run, "class-0", "5", {"state": "failed", "reason": "stopped at ...", "requeues": 2})
    plan = {
        "backend": "slurm",
        "run_id": "r",
        "options": {},
        "jobs": [{"name": "class-0", "job_dir": str(job), "command": "exec true"}],
    }
    fake_slurm.answer("sbatch", "6\n")
    reply = _hostctl("launch", "--workdir", str(tmp_path), stdin=json.dumps(plan))
    assert reply.returncode == 0 and json.loads(reply.stdout)["jobs"][0]["started"], reply.stdout + reply.stderr
    assert "\nexport ORCH_EARLIER_REQUEUES=2\n" in (job / "slurm.sh").read_text()
    env = dict(os.environ, PYTHONPATH=str(REPO), SLURM_JOB_ID="6", SLURM_RESTART_COUNT="1", ORCH_EARLIER_REQUEUES="2")
    status = _warned(tmp_path / "again", env, max_requeues=1)  # this submission's one requeue is spent
    assert status["state"] == "failed" and status["requeues"] == 3
    assert (
        "again after 1 requeue of Slurm job 6, the most the host's slurm.max_requeues (1) allows one"
        in status["reason"]
    )
    status = _warned(tmp_path / "more", env, max_requeues=2)
    assert status["requeues"] == 4 and status["reason"].endswith("requeued (4)")
    # Cancelled while queued (no wrapper of this submission ran), or a resubmission that sbatch
    # refuses: the job's recorded end keeps the count, and the next --resume carries it on.
    fake_slurm.answer("squeue", "6|PENDING|Priority||gpu\n")
    cancel = _hostctl("cancel", "--run-dir", str(run), "--workdir", str(tmp_path), "--backend", "slurm")
    assert cancel.returncode == 0 and _status(job)["state"] == "cancelled" and _status(job)["requeues"] == 2
    fake_slurm.answer("sbatch", "", rc=1, err="sbatch: error: Invalid partition name specified\n")
    reply = _hostctl("launch", "--workdir", str(tmp_path), stdin=json.dumps(plan))
    assert reply.returncode == 0 and not json.loads(reply.stdout)["jobs"][0]["started"]
    assert _status(job)["state"] == "failed" and _status(job)["requeues"] == 2
    fake_slurm.answer("sbatch", "7\n")
    assert _hostctl("launch", "--workdir", str(tmp_path), stdin=json.dumps(plan)).returncode == 0
    assert "\nexport ORCH_EARLIER_REQUEUES=2\n" in (job / "slurm.sh").read_text()


def _hostctl(*args, stdin=None, env=None):
    return subprocess.run(
        [sys.executable, "-m", "remote.hostctl", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=REPO,
        env=env,
        timeout=60,
    )


def _slurm_job(run: Path, name: str, handle: str, status: dict = None) -> Path:
    d = run / "jobs" / name
    d.mkdir(parents=True)
    (d / "backend.json").write_text(json.dumps({"backend": "slurm", "handle": handle}))
    if status is not None:
        (d / "status.json").write_text(json.dumps(status))
    return d


def test_a_batch_job_slurm_could_not_launch_points_at_the_shared_filesystem(tmp_path, fake_slurm):
    fake_slurm.answer("squeue", "5|FAILED|JobLaunchFailure|n1|gpu\n6|FAILED|NonZeroExitCode|n1|gpu\n")
    got = get("slurm", str(tmp_path), {}).alive({"a": "5", "b": "6"})
    assert got["a"]["ended"]["state"] == "failed"
    assert "filesystem the compute nodes share" in got["a"]["ended"]["reason"]
    assert "(Slurm: FAILED, JobLaunchFailure)" in got["a"]["ended"]["reason"]
    assert "`orch logs` shows Slurm's output of it, slurm.out" in got["b"]["ended"]["reason"]


def test_slurmctld_down_status_shows_the_files_and_cancel_changes_nothing(tmp_path, fake_slurm):
    fake_slurm.answer("squeue", "", rc=1, err="squeue: error: Unable to contact slurm controller (connect failure)\n")
    run = tmp_path / "runs" / "r"
    _slurm_job(run, "class-0", "5", {"state": "running", "pid": 1, "started": 1.0})
    _slurm_job(run, "class-1", "6")  # queued: no status.json yet
    env = dict(os.environ)
    reply = _hostctl("status", "--run-dir", str(run), "--workdir", str(tmp_path), "--backend", "slurm", env=env)
    assert reply.returncode == 0, reply.stderr
    jobs = {j["name"]: j for j in json.loads(reply.stdout)["jobs"]}
    assert jobs["class-0"]["alive"] and "Unable to contact" in jobs["class-0"]["backend"]["unreachable"]
    backend = ControllerSlurm()
    rows = [job_row(jobs[n], 2.0, "", backend) for n in ("class-0", "class-1")]
    assert [r.state for r in rows] == ["running", "pending"]  # never lost, never ended, on no answer
    assert rows[0].note == "Slurm did not answer: state from the job's files"
    from orchestrator.runs.state import unanswered

    assert "the jobs keep running; ask again later" in unanswered(rows)
    assert not (run / "jobs" / "class-1" / "status.json").exists()
    cancel = _hostctl("cancel", "--run-dir", str(run), "--workdir", str(tmp_path), "--backend", "slurm", env=env)
    assert cancel.returncode == 2 and "nothing was cancelled" in cancel.stderr
    assert "orch-unanswered Slurm could not be asked" in cancel.stderr  # marked: the controller words it
    assert not (run / "jobs" / "class-0" / "cancel").exists() and not fake_slurm.calls("scancel")


def _status_reply(run: Path, tmp_path: Path) -> dict:
    reply = _hostctl("status", "--run-dir", str(run), "--workdir", str(tmp_path), "--backend", "slurm")
    assert reply.returncode == 0, reply.stderr
    return json.loads(reply.stdout)


def test_an_end_slurm_saw_is_recorded_at_slurms_end_time(tmp_path, fake_slurm):
    """An scancel by hand: recorded when Slurm ended the job (squeue's %e, as seconds since
    1970), not when `orch status` first asked - so `elapsed` stops at the end."""
    run = tmp_path / "runs" / "r"
    started = time.time() - 3600
    _slurm_job(run, "class-0", "5", {"state": "waiting", "pid": 1, "started": started, "reason": "stopped by ..."})
    fake_slurm.answer("squeue", f"5|CANCELLED|None|n1|gpu|{int(started) + 600}\n")
    reply = _status_reply(run, tmp_path)
    assert "%e" in fake_slurm.calls("squeue")[0][-1]
    recorded = _status(run / "jobs" / "class-0")
    assert recorded["state"] == "cancelled" and recorded["ended"] == int(started) + 600
    row = job_row(reply["jobs"][0], reply["now"], "", ControllerSlurm())
    assert row.state == "cancelled" and "scancel" in row.reason
    assert abs(row.elapsed_s - (int(started) + 600 - started)) < 1  # not an hour: the ten minutes it ran


def _notice(job_id: str, at: float, due: str = "") -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(at))
    return f"slurmstepd: error: *** JOB {job_id} ON n1 CANCELLED AT {stamp}{' DUE TO ' + due if due else ''} ***\n"


def test_without_accounting_a_forgotten_job_ends_as_its_slurm_out_says_else_lost(tmp_path, fake_slurm):
    """Slurm forgot the jobs (MinJobAge) and keeps no accounting: slurmstepd's notice in a job's
    slurm.out still says how it ended; `lost` only where nothing there does."""
    fake_slurm.answer("squeue", "", rc=1, err="slurm_load_jobs error: Invalid job id specified\n")
    fake_slurm.answer("sacct", "", rc=1, err="Slurm accounting storage is disabled\n")
    run = tmp_path / "runs" / "r"
    started = float(int(time.time()) - 3600)
    stopped = {"state": "waiting", "pid": 1, "started": started, "reason": "stopped by the scheduler (signal 15)"}
    outputs = {
        "scancel": ("5", "checkpoint saved\n" + _notice("5", started + 600) + "checkpoint saved\n"),
        "time-limit": ("6", _notice("6", started + 700, "TIME LIMIT")),
        "requeue": ("7", _notice("7", started + 700, "JOB REQUEUE")),  # not an end: Slurm reran it, or not
        "earlier-run": ("8", _notice("8", started - 60)),  # before this attempt began
        "earlier-job": ("9", _notice("4", started + 600)),  # another Slurm job (an earlier submission)
        "nothing": ("10", "training...\n"),
    }
    for name, (job_id, text) in outputs.items():
        (_slurm_job(run, name, job_id, stopped) / "slurm.out").write_text(text)
    os.mkfifo(_slurm_job(run, "fifo", "11", stopped) / "slurm.out")  # never read (it would block)
    reply = _status_reply(run, tmp_path)
    rows = {j["name"]: job_row(j, reply["now"], "", ControllerSlurm()) for j in reply["jobs"]}
    assert rows["scancel"].state == "cancelled" and "cancelled in Slurm (scancel)" in rows["scancel"].reason
    assert "Slurm's notice in slurm.out" in rows["scancel"].reason and rows["scancel"].elapsed_s == 600
    assert _status(run / "jobs" / "scancel")["state"] == "cancelled"  # recorded: it stays so
    assert rows["time-limit"].state == "failed" and "time limit" in rows["time-limit"].reason
    for name in ("requeue", "earlier-run", "earlier-job", "nothing", "fifo"):
        assert rows[name].state == "lost", (name, rows[name])
        assert _status(run / "jobs" / name)["state"] == "waiting"


def test_a_refused_submission_is_recorded_as_the_jobs_end(tmp_path, fake_slurm):
    fake_slurm.answer(
        "sbatch",
        "",
        rc=1,
        err="sbatch: error: Batch job submission failed: Requested node configuration is not available\n",
    )
    run = tmp_path / "runs" / "r"
    job = run / "jobs" / "class-0"
    plan = {
        "backend": "slurm",
        "run_id": "r",
        "options": {"sbatch": ["--gres=gpu:3"]},
        "jobs": [{"name": "class-0", "job_dir": str(job), "command": "exec true"}],
    }
    reply = _hostctl("launch", "--workdir", str(tmp_path), stdin=json.dumps(plan))
    assert reply.returncode == 0, reply.stderr
    (result,) = json.loads(reply.stdout)["jobs"]
    assert not result["started"] and "Requested node configuration" in result["error"]
    status = _status(job)
    assert status["state"] == "failed" and status["reason"].startswith("sbatch refused it: Batch job submission failed")
    assert "(the host's slurm: options: --gres=gpu:3)" in status["reason"]


def test_cancel_of_a_requeued_job_in_the_queue_says_so(tmp_path, fake_slurm):
    fake_slurm.answer("squeue", "5|PENDING|BeginTime||gpu\n6|PENDING|Priority||gpu\n")
    run = tmp_path / "runs" / "r"
    _slurm_job(run, "class-0", "5", {"state": "waiting", "reason": "requeued (1)", "requeues": 1})
    _slurm_job(run, "class-1", "6")
    cancel = _hostctl("cancel", "--run-dir", str(run), "--workdir", str(tmp_path), "--backend", "slurm")
    assert cancel.returncode == 0, cancel.stderr
    assert (
        _status(run / "jobs" / "class-0")["reason"]
        == "cancelled by the user while it waited in Slurm's queue to run again"
    )
    assert _status(run / "jobs" / "class-1")["reason"] == "cancelled by the user before it started"


def test_follow_shows_slurm_out_of_a_job_that_never_reached_its_wrapper(tmp_path, fake_slurm):
    run = tmp_path / "runs" / "r"
    d = _slurm_job(run, "class-0", "5", {"state": "failed", "reason": "the Slurm batch job failed"})
    (d / "slurm.out").write_text("slurm.sh: line 3: module: command not found\norch: module load cuda/12.4 failed\n")
    out = _hostctl("follow", "--job-dir", str(d), "--workdir", str(tmp_path), "--backend", "slurm", "--lines", "5")
    assert out.returncode == 0, out.stderr
    assert "class-0: no log.txt (orch's wrapper never ran); Slurm's output of its batch job, slurm.out" in out.stdout
    assert out.stdout.endswith(
        "orch: module load cuda/12.4 failed\n[orch] class-0 ended failed: the Slurm batch job failed\n"
    )


def test_the_plain_tail_shows_slurm_out_of_a_job_that_never_reached_its_wrapper(tmp_path, fake_slurm):
    """`orch logs` without -f is hostctl's (`follow --no-follow`), which finds the scheduler's
    output through the backend (output_file), not a controller script naming slurm.out."""
    run = tmp_path / "runs" / "r"
    ran = _slurm_job(run, "class-0", "5", {"state": "done"})
    (ran / "log.txt").write_text("".join(f"line {i}\n" for i in range(10)))
    died = _slurm_job(run, "class-1", "6", {"state": "failed", "reason": "the Slurm batch job failed"})
    (died / "slurm.out").write_text("orch: module load cuda/12.4 failed\n")
    args = ["follow", "--no-follow", "--workdir", str(tmp_path), "--backend", "slurm", "--lines", "2"]
    out = _hostctl(*args, "--job-dir", str(ran), "--job-dir", str(died))
    assert out.returncode == 0, out.stderr
    assert out.stdout == (
        f"==> {ran}/log.txt <==\nline 8\nline 9\n\n==> {died}/slurm.out <==\norch: module load cuda/12.4 failed\n"
        "\n[orch] class-1 ended failed: the Slurm batch job failed\n"  # how it ended (class-0: done, said by its log)
    )
    assert out.stderr == "orch-output-file class-1 slurm.out Slurm's output of its batch job\n"
    # tmux writes no output of its own: a job without log.txt has nothing to show
    assert _hostctl(*args[:-4], "--lines", "2", "--job-dir", str(died)).returncode == 1
    gone = _hostctl(*args, "--job-dir", str(tmp_path / "runs" / "gone" / "jobs" / "class-0"))
    assert gone.returncode == 3 and not gone.stdout


def test_elapsed_sums_the_attempts_and_stands_still_while_the_job_waits_to_run_again():
    """A requeued job's clock: the earlier attempts' run time plus this one's, frozen from the
    moment it stopped (not the queue's BeginTime hold), and not restarted by the next attempt."""
    waiting = {"state": "waiting", "started": 1000.0, "stopped": 1060.0, "earlier_s": 30.0, "requeues": 1}
    for now in (1100.0, 5000.0):
        assert job_row({"name": "c", "status": waiting}, now, "", ControllerSlurm()).elapsed_s == 90.0
    again = {"state": "running", "started": 2000.0, "earlier_s": 90.0}
    assert job_row({"name": "c", "status": again}, 2010.0, "", ControllerSlurm()).elapsed_s == 100.0
    queued = {"state": "waiting", "started": None, "earlier_s": 90.0}  # the next wrapper waits for a job
    assert job_row({"name": "c", "status": queued}, 2010.0, "", ControllerSlurm()).elapsed_s == 90.0


def test_a_requeued_wrapper_carries_the_earlier_attempts_run_time_on(tmp_path, fake_slurm):
    env = dict(os.environ, PYTHONPATH=str(REPO), SLURM_JOB_ID="79")
    job = tmp_path / "job"
    for attempt in (1, 2):
        proc = _wrapper(job, env)
        try:
            _wait_for(lambda: _status(job).get("state") == "running", "running")
            time.sleep(0.5)
            proc.send_signal(signal.SIGTERM)  # scontrol requeue: Slurm stops it, then reruns the script
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
        status = _status(job)
        assert status["state"] == "waiting" and status["stopped"] >= status["started"], status
        if attempt == 1:
            first = status["stopped"] - status["started"]
            assert "earlier_s" not in status
    assert abs(status["earlier_s"] - first) < 0.01
    assert job_row({"name": "c", "status": status}, time.time() + 3600, "", ControllerSlurm()).elapsed_s == (
        pytest.approx(first + status["stopped"] - status["started"], abs=0.01)
    )


def test_status_counts_a_requeue_and_the_run_time_of_a_job_queued_again(tmp_path, fake_slurm):
    """While Slurm holds a job queued again: after an `scontrol requeue` its wrapper did not ask
    for (it recorded `waiting`, not the requeue), the requeue counts at once; after a --resume
    (no status.json yet), the count and the run time its earlier submission carried show."""
    run = tmp_path / "runs" / "r"
    stopped = {"state": "waiting", "started": 100.0, "stopped": 160.0, "reason": "stopped by the scheduler"}
    _slurm_job(run, "by-hand", "5", {**stopped, "requeues": 0})
    _slurm_job(run, "asked", "6", {**stopped, "requeues": 1, "requeue_counted": True, "reason": "requeued (1)"})
    resumed = _slurm_job(run, "resumed", "7")
    (resumed / "slurm.sh").write_text("#!/bin/bash\nexport ORCH_EARLIER_REQUEUES=2\nexec true\n")
    (resumed / "status.json.previous").write_text(
        json.dumps({"state": "failed", "started": 100.0, "ended": 140.0, "earlier_s": 20.0, "requeues": 2})
    )
    fake_slurm.answer("squeue", "5|PENDING|BeginTime||gpu\n6|PENDING|BeginTime||gpu\n7|PENDING|Priority||gpu\n")
    reply = _status_reply(run, tmp_path)
    rows = {r["name"]: job_row(r, reply["now"], "", ControllerSlurm()) for r in reply["jobs"]}
    assert (rows["by-hand"].requeues, rows["asked"].requeues, rows["resumed"].requeues) == (1, 1, 2)
    assert rows["resumed"].state == "pending" and rows["resumed"].elapsed_s == 60.0
    assert rows["by-hand"].elapsed_s == 60.0
    # Cancelled while queued: the recorded end keeps both, for the next --resume.
    cancel = _hostctl("cancel", "--run-dir", str(run), "--workdir", str(tmp_path), "--backend", "slurm")
    assert cancel.returncode == 0, cancel.stderr
    assert _status(run / "jobs" / "by-hand")["requeues"] == 1
    assert (_status(resumed)["requeues"], _status(resumed)["earlier_s"]) == (2, 60.0)


def test_a_job_slurm_cancelled_for_a_failed_dependency_stays_failed_once_slurm_forgets_it(tmp_path, fake_slurm):
    """Slurm cancels a queued job whose afterok dependency ended other than done
    (DependencyNeverSatisfied) and, MinJobAge later, forgets it: nothing is in its folder,
    but the job it required says why (it showed `lost` with no reason)."""
    run = tmp_path / "runs" / "r"
    plan = {
        "backend": "slurm",
        "run_id": "r",
        "options": {},
        "jobs": [
            {"name": n, "job_dir": str(run / "jobs" / n), "command": "exec true", "requires": r}
            for n, r in (("pretrain", []), ("class-0", ["pretrain"]), ("class-1", ["pretrain"]))
        ],
    }
    fake_slurm.answer("sbatch", "5\n")
    assert _hostctl("launch", "--workdir", str(tmp_path), stdin=json.dumps(plan)).returncode == 0
    assert json.loads((run / "jobs" / "class-0" / "backend.json").read_text())["requires"] == ["pretrain"]
    (run / "jobs" / "pretrain" / "status.json").write_text(json.dumps({"state": "cancelled", "reason": "by the user"}))
    fake_slurm.answer("squeue", "", rc=1, err="slurm_load_jobs error: Invalid job id specified\n")  # all forgotten
    fake_slurm.answer("sacct", "", rc=1, err="Slurm accounting storage is disabled\n")
    reply = _status_reply(run, tmp_path)
    rows = {j["name"]: job_row(j, reply["now"], "", ControllerSlurm()) for j in reply["jobs"]}
    assert rows["class-0"].state == "failed", rows["class-0"]
    assert rows["class-0"].reason == "a job it requires did not end done (pretrain: cancelled); it never started"
    assert _status(run / "jobs" / "class-1")["state"] == "failed"  # recorded: it stays so
    # A required job that ended done is no reason: a job that never started is lost then.
    (run / "jobs" / "pretrain" / "status.json").write_text(json.dumps({"state": "done"}))
    (run / "jobs" / "class-1" / "status.json").unlink()
    reply = _status_reply(run, tmp_path)
    assert job_row(reply["jobs"][1], reply["now"], "", ControllerSlurm()).state == "lost"


def test_a_controller_that_does_not_answer_sbatch_is_no_refusal_and_nothing_is_recorded(tmp_path, fake_slurm):
    """slurmctld down at `orch run`: each job was recorded `failed (sbatch refused it: ...
    Unable to contact slurm controller ...)`.  Not the job's fault: nothing is recorded, the
    rest are not tried, and the reply says the scheduler did not answer."""
    fake_slurm.answer(
        "sbatch",
        "",
        rc=1,
        err="sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)\n",
    )
    run = tmp_path / "runs" / "r"
    plan = {
        "backend": "slurm",
        "run_id": "r",
        "options": {"sbatch": ["--partition=gpu"]},
        "jobs": [{"name": n, "job_dir": str(run / "jobs" / n), "command": "exec true"} for n in ("class-0", "class-1")],
    }
    reply = _hostctl("launch", "--workdir", str(tmp_path), stdin=json.dumps(plan))
    assert reply.returncode == 0, reply.stderr
    jobs = json.loads(reply.stdout)["jobs"]
    assert [(j["started"], j.get("unanswered")) for j in jobs] == [(False, True), (False, True)]
    assert (
        jobs[0]["error"] == "sbatch: Batch job submission failed: Unable to contact slurm controller (connect failure)"
    )
    assert len(fake_slurm.calls("sbatch")) == 1  # class-1 was not tried: the controller is not there
    for name in ("class-0", "class-1"):
        assert (
            not (run / "jobs" / name / "status.json").exists() and not (run / "jobs" / name / "backend.json").exists()
        )
    for transient in ("Socket timed out on send/recv operation", "Slurm temporarily unable to accept job"):
        fake_slurm.answer("sbatch", "", rc=1, err=f"sbatch: error: Batch job submission failed: {transient}\n")
        assert json.loads(_hostctl("launch", "--workdir", str(tmp_path), stdin=json.dumps(plan)).stdout)["jobs"][0][
            "unanswered"
        ]

    from orchestrator.errors import ExitCode, OrchError
    from orchestrator.runs.launch import check_started

    with pytest.raises(OrchError) as err:
        check_started(
            json.loads(reply.stdout), plan, "r", "smoke", created=True, host="cluster", backend=ControllerSlurm()
        )
    assert err.value.code == ExitCode.REMOTE
    assert err.value.message.startswith(
        "run r was created, but Slurm's controller did not answer on cluster; retry later "
        "(`orch run smoke --resume r` submits the jobs): not submitted: class-0, class-1 (sbatch: "
    )


def test_cancel_says_in_the_users_words_that_slurms_controller_did_not_answer(tmp_path):
    from orchestrator.config.hosts import HostConfig
    from orchestrator.errors import ExitCode, OrchError
    from orchestrator.runs import hostops
    from orchestrator.transport.base import LocalTransport, Result

    class Down(LocalTransport):
        def _exec(self, command, timeout, stdin, max_output):
            said = (
                "error: orch-unanswered Slurm could not be asked: squeue failed: slurm_load_jobs error: "
                "Unable to contact slurm controller (connect failure); "
                "nothing was cancelled (try again once it answers)\n"
            )
            return Result("", said, 2)

    transport = Down(HostConfig(name="cluster", workdir=str(tmp_path)))
    with pytest.raises(OrchError) as err:
        hostops.remote_cancel(transport, str(tmp_path), "abc", "r", ["class-0"], ControllerSlurm())
    assert err.value.code == ExitCode.REMOTE
    assert err.value.message == (
        "Slurm's controller did not answer on cluster; nothing was cancelled (Slurm could not be asked: squeue "
        "failed: slurm_load_jobs error: Unable to contact slurm controller (connect failure))"
    )
    assert err.value.hint == "try again once it answers: `orch cancel r class-0`"


def test_logs_of_a_job_slurm_killed_at_its_time_limit_end_with_how_it_ended(tmp_path, fake_slurm):
    """A hard time limit cuts the log mid-training: `orch logs` (and `logs -f`, which ended
    silently) print the recorded end as a last line - recording it first when only Slurm
    knows it yet (squeue: TIMEOUT)."""
    run = tmp_path / "runs" / "r"
    started = float(int(time.time()) - 3600)
    d = _slurm_job(run, "class-0", "5", {"state": "waiting", "started": started, "reason": "stopped by the scheduler"})
    (d / "log.txt").write_text("train step 40/100 loss 2.1\n")
    fake_slurm.answer("squeue", f"5|TIMEOUT|TimeLimit|n1|gpu|{int(started) + 136}\n")
    args = ["follow", "--workdir", str(tmp_path), "--backend", "slurm", "--job-dir", str(d)]
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started + 136))
    end = f"[orch] class-0 ended failed at {stamp}: Slurm stopped it at its time limit (Slurm: TIMEOUT, TimeLimit)\n"
    tail = _hostctl(*args, "--no-follow")
    assert tail.returncode == 0 and tail.stdout == "train step 40/100 loss 2.1\n" + end, tail.stdout + tail.stderr
    assert _status(d)["state"] == "failed"  # recorded, as status records it
    followed = _hostctl(*args)
    assert followed.returncode == 0 and followed.stdout == "train step 40/100 loss 2.1\n" + end
