"""The warm worker (remote/warm.py), as real processes: a worker forks payloads for its
clients, relays their exit codes, refuses what it must not run, and leaves when idle or
stopped.  The payload is tests/unit/warm_payload.py; the worker preloads json, not torch.
The wrapper's use of it, through the real sshd and tmux, is in tests/integration/test_warm_worker.py."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import timing

from remote import warm

ROOT = Path(__file__).resolve().parents[2]
OTHER_PYTHON = "/usr/bin/python3"  # one another user may run (ours may sit in root's home)
as_another_user = pytest.mark.skipif(
    os.getuid() != 0 or not os.access(OTHER_PYTHON, os.X_OK),
    reason="needs root and a system python to act as another user",
)
MODULE = "tests.unit.warm_payload"


def env(**extra):
    out = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    out["PYTHONPATH"] = str(ROOT)
    out.update(extra)
    return out


def wait_until(check, timeout=15.0):
    """Whether CHECK came true within TIMEOUT seconds (scaled by the load, as timing.wait_for);
    each caller asserts with its own message."""
    deadline = time.time() + timing.scaled(timeout)
    while time.time() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


class Worker:
    def __init__(self, idle=30.0, preload="json", pythonpath="", key=""):
        self.key = key or "test-" + uuid.uuid4().hex[:12]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "remote.warm", "--name", warm.socket_name(self.key), "--idle", str(idle)]
            + ["--preload", preload, "--allow", MODULE, "--room", warm.ROOM],
            cwd=ROOT,
            env=env(**({"PYTHONPATH": f"{ROOT}:{pythonpath}"} if pythonpath else {})),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.groups = []
        assert wait_until(self.bound), self.proc.communicate(timeout=5)

    def bound(self) -> bool:
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect("\0" + warm.socket_name(self.key))
            return True
        except OSError:
            return False
        finally:
            probe.close()

    def spawn(self, *args, python=sys.executable, module=MODULE, **extra):
        child = warm.spawn(self.key, [python, "-m", module, *args], env(**extra), str(ROOT))
        if child is not None:
            self.groups.append(child.pid)
        return child

    def stop(self) -> str:
        """Kill it and its payloads; its output."""
        for pgid in self.groups:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.communicate(timeout=10)[0]


@pytest.fixture
def worker():
    w = Worker()
    yield w
    w.stop()


def test_a_payload_runs_forked_with_the_clients_argv_env_cwd_and_exit_code(worker):
    child = worker.spawn("echo", "x y", WARM_TEST="from the wrapper")
    assert child is not None
    assert child.pid != worker.proc.pid
    out = child.stdout.read().decode()
    assert child.wait() == 3
    assert "argv ['echo', 'x y']" in out
    assert f"cwd {ROOT}" in out
    assert "env from the wrapper" in out
    assert "own group True" in out  # the wrapper's killpg reaches it
    # a full collection walked torch's ~170k objects in a child: 0.1 s of a smoke job's scoring
    assert "frozen True" in out
    assert "to stderr" in out  # stderr shares the stdout pipe, as the wrapper's Popen has it
    # ps and pgrep see the job's command line, as for a cold start, not the worker's
    assert f"cmdline {sys.executable} -m {MODULE} echo x y\n" in out


def test_a_signalled_payload_is_reported_as_popen_reports_it(worker):
    child = worker.spawn("sleep")
    assert child.stdout.readline() == b"ready\n"
    assert child.poll() is None
    os.killpg(child.pid, signal.SIGTERM)
    assert child.wait() == -signal.SIGTERM
    assert not child.lost


def test_a_payload_signalled_the_moment_its_pid_is_known_stops_and_shows_its_command(worker):
    """A cancel that came while the wrapper waited for the worker is passed on as soon as
    the pid arrives: the child must not be running the worker's handlers by then (it did,
    and ignored the SIGTERM: a cancelled job trained on)."""
    for _ in range(30):
        child = worker.spawn("sleep")
        # ... and ps, pgrep and pkill see the job's command line from then on, not the worker's
        with open(f"/proc/{child.pid}/cmdline", "rb") as fh:
            assert f"-m\0{MODULE}\0sleep".encode() in fh.read()
        os.killpg(child.pid, signal.SIGTERM)
        assert wait_until(lambda c=child: c.poll() is not None, timeout=10), "the payload ignored SIGTERM"
        assert child.returncode == -signal.SIGTERM


@pytest.mark.parametrize(
    "case, why",
    [("module", "runs only"), ("python", "is not this worker's"), ("import-env", "environment torch imports")],
)
def test_a_request_the_worker_must_not_run_is_refused_and_it_goes_on(worker, case, why):
    with pytest.raises(warm.Declined, match=why):
        if case == "module":
            worker.spawn("status", module="remote.hostctl")
        elif case == "python":
            worker.spawn("echo", python="/bin/sh")
        else:
            worker.spawn("echo", OMP_NUM_THREADS="97")  # torch would have imported under another value
    again = worker.spawn("echo")
    assert again is not None and again.wait() == 3


def snapshot(folder: Path) -> Path:
    """Another code snapshot: the payload and the remote package, copied."""
    shutil.copytree(ROOT / "remote", folder / "remote", ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "tests" / "unit").mkdir(parents=True)
    shutil.copy(ROOT / "tests/unit/warm_payload.py", folder / "tests/unit/warm_payload.py")
    return folder


def test_a_job_of_another_snapshot_runs_that_snapshots_code(worker, tmp_path):
    """After a code change the next run's jobs come from another snapshot: the worker (started
    from ROOT) serves them, and they import their own code, as a cold start there would."""
    other = snapshot(tmp_path / "other")
    child = warm.spawn(worker.key, [sys.executable, "-m", MODULE, "where"], env(PYTHONPATH=str(other)), str(other))
    assert child is not None
    worker.groups.append(child.pid)
    out = child.stdout.read().decode()
    assert child.wait() == 0, out
    assert f"payload {other}/tests/unit/warm_payload.py\n" in out
    assert f"remote {other}/remote/__init__.py\n" in out  # not the worker's own remote package
    assert f"path0 {other}\n" in out
    # ... and the worker's own snapshot is served as before
    assert f"remote {ROOT}/remote/__init__.py\n" in worker.spawn("where").stdout.read().decode()


def test_a_snapshot_with_its_own_copy_of_a_preloaded_module_starts_cold(worker, tmp_path):
    other = snapshot(tmp_path / "other")
    (other / "json.py").write_text("raise SystemExit('a cold start imports this json')\n")
    with pytest.raises(warm.Declined, match="has its own json"):
        warm.spawn(worker.key, [sys.executable, "-m", MODULE, "echo"], env(PYTHONPATH=str(other)), str(other))
    assert worker.spawn("echo").wait() == 3


def test_a_worker_whose_libraries_changed_on_disk_retires(tmp_path):
    """Bootstrap may install another torch into the same env: a worker holding the old one
    in memory refuses the next job (it starts cold) and leaves."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "warmlib.py").write_text("VERSION = 1\n")
    w = Worker(preload="json,warmlib", pythonpath=str(lib))
    try:
        assert w.spawn("echo", PYTHONPATH=f"{ROOT}:{lib}").wait() == 3
        (lib / "warmlib.py").write_text("VERSION = 2  # reinstalled\n")
        with pytest.raises(warm.Declined, match="changed on disk"):
            w.spawn("echo", PYTHONPATH=f"{ROOT}:{lib}")
        assert w.proc.wait(timeout=15) == 0
    finally:
        w.stop()


def test_a_worker_that_finds_cuda_initialised_after_its_preload_declines_every_job(tmp_path):
    """CUDA does not survive a fork.  A preload that initialised it (here a stand-in torch
    saying so) leaves a worker that declines each job at once, saying why: the job starts
    cold, and the next one does not start another worker only to wait for the same."""
    lib = tmp_path / "lib"
    lib.mkdir()
    (lib / "cudastarted.py").write_text(
        "import sys, types\n"
        "sys.modules['torch'] = types.SimpleNamespace(cuda=types.SimpleNamespace(is_initialized=lambda: True))\n"
    )
    w = Worker(preload="json,cudastarted", pythonpath=str(lib))
    try:
        for _ in range(2):
            with pytest.raises(warm.Declined, match="CUDA was initialised before the fork"):
                w.spawn("echo", PYTHONPATH=f"{ROOT}:{lib}")
        assert w.proc.poll() is None  # still there to decline the next one
    finally:
        out = w.stop()
    assert "declining every job: CUDA was initialised" in out


def test_importing_torch_leaves_cuda_uninitialised():
    """What the worker's fork relies on, with the torch installed here."""
    pytest.importorskip("torch")
    assert warm.cuda_in_use() == ""


@as_another_user
def test_another_user_gets_nothing_from_the_worker(worker):
    script = (
        "import json, os, socket\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        f"s.connect({chr(0) + warm.socket_name(worker.key)!r})\n"
        "r, w = os.pipe()\n"
        f"req = {{'argv': [{sys.executable!r}, '-m', {MODULE!r}, 'echo'], 'env': {{}}, 'cwd': {str(ROOT)!r}}}\n"
        "try:\n"
        "    socket.send_fds(s, [json.dumps(req).encode() + b'\\n'], [w])\n"
        "    s.settimeout(10)\n"
        "    print(repr(s.recv(100)))\n"
        "except (BrokenPipeError, ConnectionResetError):\n"
        "    print('closed')\n"
    )
    out = subprocess.run(
        [OTHER_PYTHON, "-c", script], user=65534, group=65534, capture_output=True, text=True, timeout=30
    )
    assert out.stdout.strip() in ("b''", "closed"), out  # closed unanswered, nothing forked
    assert worker.spawn("echo").wait() == 3


@as_another_user
def test_another_users_socket_under_the_workers_name_is_never_handed_a_job():
    """The name is in the abstract namespace, which anyone may bind first: the client checks
    the server's uid and sends it nothing."""
    key = "test-" + uuid.uuid4().hex[:12]
    script = (
        "import socket, sys\n"
        "s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
        f"s.bind({chr(0) + warm.socket_name(key)!r})\n"
        "s.listen(1)\n"
        "print('bound', flush=True)\n"
        "c, _ = s.accept()\n"
        "c.settimeout(10)\n"
        "print('got', repr(c.recv(100)), flush=True)\n"
    )
    squatter = subprocess.Popen(
        [OTHER_PYTHON, "-c", script], user=65534, group=65534, stdout=subprocess.PIPE, text=True
    )
    try:
        assert squatter.stdout.readline() == "bound\n"
        with pytest.raises(warm.Declined, match="another user"):
            warm.spawn(key, [sys.executable, "-m", MODULE, "echo"], env(WARM_TEST="secret"), str(ROOT))
        assert squatter.stdout.readline() == "got b''\n"  # connected, then left: no request, no environment
    finally:
        squatter.kill()
        squatter.communicate(timeout=10)


def test_an_idle_worker_leaves():
    w = Worker(idle=1)
    try:
        assert w.proc.wait(timeout=15) == 0
        assert warm.spawn(w.key, [sys.executable, "-m", MODULE, "echo"], env(), str(ROOT)) is None
    finally:
        w.stop()


def test_a_stopped_worker_takes_no_new_job_and_leaves_once_its_children_end(worker):
    child = worker.spawn("sleep")
    assert child.stdout.readline() == b"ready\n"
    worker.proc.send_signal(signal.SIGHUP)  # its tmux session was killed
    assert wait_until(lambda: not worker.bound(), timeout=10)
    assert worker.proc.poll() is None  # still there for its child
    assert worker.spawn("echo") is None
    os.killpg(child.pid, signal.SIGTERM)
    assert child.wait() == -signal.SIGTERM  # the exit code still reaches the wrapper
    assert worker.proc.wait(timeout=15) == 0


def test_a_killed_worker_leaves_its_payload_and_the_wrapper_says_the_exit_code_is_lost(worker):
    child = worker.spawn("sleep")
    assert child.stdout.readline() == b"ready\n"
    worker.proc.kill()
    worker.proc.wait(timeout=10)
    assert child.poll() is None  # the payload still runs: nothing to report yet
    os.killpg(child.pid, signal.SIGTERM)
    assert child.wait() == 1
    assert "exit code is unknown" in child.lost


def test_the_key_follows_python_worker_code_and_import_environment_not_the_snapshot(tmp_path):
    a, b = str(tmp_path / "code" / "a"), str(tmp_path / "code" / "b")

    def key(cwd=a, python=sys.executable, code="code1", server="/w/tmux.sock", **env):
        return warm.key_of(python, {"OMP_NUM_THREADS": "2", "PYTHONPATH": cwd, **env}, cwd, code, server)

    base = key()
    # another snapshot (on PYTHONPATH as the job's cwd), another GPU, another tmux pane: one worker
    assert base == key(cwd=b) == key(CUDA_VISIBLE_DEVICES="1") == key(TMUX_PANE="%3")
    # what torch imports under, the worker's own code, another python or workdir: another worker
    assert base != key(OMP_NUM_THREADS="1")
    assert base != key(PYTHONPATH=f"{a}:/lib")
    assert base != key(PYTHONPATH=b)  # not the job's snapshot: it stays in the key
    assert base != key(code="code2")
    assert base != key(python="/bin/sh")
    assert base != key(server="/other/tmux.sock")
    assert json.dumps(base)  # a plain string: it names a socket and a tmux session


def test_a_module_is_under_the_folder_its_file_or_package_path_is_in(tmp_path):
    import types

    module = types.ModuleType("m")
    module.__file__ = str(tmp_path / "m.py")
    assert warm._under(module, ("/elsewhere", str(tmp_path))) and not warm._under(module, (str(tmp_path / "m"),))
    package = types.ModuleType("p")
    package.__path__ = [str(tmp_path / "p")]
    assert warm._under(package, (str(tmp_path) + "/",))
    odd = types.ModuleType("torch.classes")
    odd.__path__ = object()  # torch.classes answers with an object of its own: the worker died on it
    assert not warm._under(odd, (str(tmp_path),))


def test_the_worker_code_id_is_its_own_source():
    assert warm.code_id() == warm.code_id() and len(warm.code_id()) == 64


def test_only_a_run_job_payload_with_orch_warm_s_set_goes_to_a_worker(monkeypatch):
    monkeypatch.delenv("ORCH_WARM_S", raising=False)
    assert warm.forked([sys.executable, "-m", "remote.run_job", "--job", "x"]) is None
    monkeypatch.setenv("ORCH_WARM_S", "600")
    monkeypatch.delenv("TMUX", raising=False)  # no tmux server to start one in, and none answers
    assert warm.forked([sys.executable, "-m", "remote.wrapper"]) is None
    said = []
    assert warm.forked([sys.executable, "-m", "remote.run_job", "--job", "x"], say=said.append) is None
    assert said == ["[orch] no tmux server to start a warm worker in: starting the job cold"]


def test_a_declined_job_starts_cold_at_once_and_says_why(monkeypatch):
    """The wrapper writes what SAY gets into the job's log.txt.  A refusal is final: no
    worker is started and none waited for (that path would say "no warm worker listened" here)."""
    monkeypatch.setenv("ORCH_WARM_S", "600")
    monkeypatch.setenv("TMUX", "/nowhere/tmux.sock,1,0")  # no server there: none is started
    key = warm.key_of(sys.executable, dict(os.environ), os.getcwd(), warm.code_id(), "/nowhere/tmux.sock")
    w = Worker(key=key)
    try:
        said = []
        assert warm.forked([sys.executable, "-m", "remote.run_job", "--job", "x"], say=said.append) is None
        assert said == [f"[orch] the warm worker declined the job (this worker runs only {MODULE}): starting it cold"]
    finally:
        w.stop()
