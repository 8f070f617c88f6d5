"""The warm worker: a process on a tmux host that imports torch once and forks each job's
payload from there, so a job does not spend its first seconds importing torch.

    python -m remote.warm --name NAME [--idle SECONDS] [--preload MOD,...] [--allow MOD,...]

Why: a smoke class job spent ~58% of its wall time before its first progress line, most of
it importing torch (docs/BENCHMARKS-controller.md, issue 15).  A forked child starts with
torch already in memory.  The wrapper (remote/wrapper.py) asks the worker for its payload
when the controller set ORCH_WARM_S (the host file's `warm_worker`); it starts the worker
itself, as the tmux session ``orch-warm-<key>`` on its own tmux server, when none answers.
Anything that goes wrong here only means the payload starts cold, as before.

One worker per key: the python, the worker's own code (``code_id``), the environment
variables read while torch imports (``import_env``) and the tmux server (the workdir's).  A
job whose key differs never reaches it.  The code snapshot is not in the key: after a code
change (a new snapshot) the next run's jobs still find torch imported.  So a child runs its
snapshot's code as a cold start would: it drops the modules the worker took from its own
snapshot and puts its own where the worker's was on sys.path; the worker imports its
preloads with its snapshot off sys.path, and refuses a job whose snapshot has a module of
the same name as one it imported (a cold start would import that one).

Only what the wrapper would have run: ``PYTHON -m remote.run_job ...`` from its snapshot,
with the wrapper's environment and cwd.  The socket is in Linux's abstract namespace, so
both ends check the other's uid (SO_PEERCRED): another user can neither use a worker nor
stand in for one.

Protocol (one connection per payload): the request is one JSON line ``{"argv", "env",
"cwd"}`` sent with the payload's stdout (and the GPU locks it must hold) as SCM_RIGHTS
descriptors.  Replies are JSON lines: ``{"pid": N}`` once the child runs in its own
session, then ``{"exit": CODE}`` (Popen's returncode: -N for signal N) when it ends; or
``{"refused": "why"}``.

Lifetime: the worker leaves after ``--idle`` seconds without a request or a live child.
On SIGHUP/SIGTERM (its tmux session or server killed) it takes no new request and
leaves once its children have ended; the wrappers, killed with the same server, stop them.
Standard library only, until the preload.
"""

from __future__ import annotations

import argparse
import errno
import gc
import hashlib
import importlib
import json
import os
import select
import shlex
import signal
import socket
import struct
import sys
import time
from typing import Dict, List, Optional, Tuple

from remote.backends import tmux
from remote.quickexit import exit_now

MODULE = "remote.run_job"
PRELOAD = "torch,numpy,yaml,tokenizers"
REPLY_WAIT_S = 120.0  # the worker may still be importing torch: on a busy host that takes a while
START_WAIT_S = 5.0  # a worker just started binds its socket within this
MAX_REQUEST = 1 << 20
ROOM = " " * 1024  # the worker's last argument: room for a child's command line (retitle)
# Read while torch (and the libraries it loads) import: a worker imported under other values
# would give a job the wrong threads or libraries.  CUDA_VISIBLE_DEVICES is read later, at
# CUDA's first use, in the child: it may differ.
_IMPORT_PREFIXES = ("OMP_", "MKL_", "KMP_", "GOMP_", "OPENBLAS_", "TORCH", "PYTORCH", "LD_", "PYTHON", "CUDA_")
_PER_JOB = ("CUDA_VISIBLE_DEVICES",)


SNAPSHOT = "<snapshot>"


def _import_vars(env: Dict[str, str]) -> Dict[str, str]:
    return {k: v for k, v in env.items() if k.startswith(_IMPORT_PREFIXES) and k not in _PER_JOB}


def import_env(env: Dict[str, str], cwd: str) -> Dict[str, str]:
    """The variables torch imports under, for a job started in CWD (its code snapshot).  A
    PYTHONPATH entry naming the snapshot reads SNAPSHOT: each child puts its own there."""
    out = _import_vars(env)
    if "PYTHONPATH" in out:
        here = os.path.realpath(cwd)
        entries = out["PYTHONPATH"].split(os.pathsep)
        same = [e and os.path.realpath(os.path.join(cwd, e)) == here for e in entries]
        out["PYTHONPATH"] = os.pathsep.join(SNAPSHOT if s else e for e, s in zip(entries, same))
    return out


def code_id() -> str:
    """The worker's own code (this file and what it imports from remote/): the protocol a
    wrapper and its worker must share.  Snapshots that agree on it share a worker."""
    from remote import quickexit

    digest = hashlib.sha256()
    for path in (__file__, quickexit.__file__):
        with open(path, "rb") as fh:
            digest.update(hashlib.sha256(fh.read()).digest())
    return digest.hexdigest()


def key_of(python: str, env: Dict[str, str], cwd: str, code: str, server: str) -> str:
    """SERVER: the tmux server the worker runs in, one per workdir.  The socket's name is
    the user's across the host: without it, the jobs of one workdir would be children of
    a worker in another's server, and go with it."""
    text = json.dumps([os.path.realpath(python), code, sorted(import_env(env, cwd).items()), server])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def socket_name(key: str) -> str:
    return f"orch-warm-{os.getuid()}-{key}"


def session_name(key: str) -> str:
    return f"orch-warm-{key}"


def module_names(folder: str) -> set:
    """The top-level modules a `python -m` started in FOLDER would import from it first."""
    names = set()
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return names
    for entry in entries:
        if entry.name.endswith(".py"):
            names.add(entry.name[:-3])
        elif entry.name.endswith(".so"):  # an extension module: name.cpython-311-x86_64-linux-gnu.so
            names.add(entry.name.split(".", 1)[0])
        elif os.path.isfile(os.path.join(entry.path, "__init__.py")):
            names.add(entry.name)  # a folder without one is a namespace portion: it never shadows
    return names


def _under(module, folders: Tuple[str, ...]) -> bool:
    """Whether MODULE was imported from one of FOLDERS, as spelled on sys.path (no realpath:
    on each of torch's ~1,500 modules that took 80 ms)."""
    try:
        paths = [getattr(module, "__file__", None)] + list(getattr(module, "__path__", None) or [])
    except Exception:  # torch.classes and its like answer __path__ with objects of their own
        paths = [getattr(module, "__file__", None)]
    prefixes = tuple(f.rstrip(os.sep) + os.sep for f in folders)
    return any(isinstance(p, str) and p.startswith(prefixes) for p in paths)


def loaded_files() -> Dict[str, tuple]:
    """The files of the top-level modules imported so far, with their identity on disk."""
    out = {}
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if "." in name or not path:
            continue
        try:
            st = os.stat(path)
        except OSError:
            continue
        out[path] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return out


def _peer_uid(sock: socket.socket) -> int:
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", raw)[1]


def _send(sock: socket.socket, message: dict) -> None:
    sock.sendall(json.dumps(message).encode() + b"\n")


class _Lines:
    """JSON lines from a socket, read as they come."""

    def __init__(self, sock: socket.socket, data: bytes = b""):
        self.sock = sock
        self.buf = data

    def next(self) -> Optional[dict]:
        """The next message; None at EOF.  Raises socket.timeout / BlockingIOError as the socket does."""
        while b"\n" not in self.buf:
            more = self.sock.recv(65536)
            if not more:
                return None
            self.buf += more
            if len(self.buf) > MAX_REQUEST:
                raise ValueError("message too long")
        line, self.buf = self.buf.split(b"\n", 1)
        message = json.loads(line)
        if not isinstance(message, dict):
            raise ValueError("not a JSON object")
        return message


# ---------------------------------------------------------------- the worker


class Worker:
    def __init__(self, name: str, idle_s: float, allow: List[str]):
        self.name = name
        self.idle_s = idle_s
        self.allow = allow
        self.python = os.path.realpath(sys.executable)
        self.home = os.path.realpath(os.getcwd())  # the snapshot it started from: its own code
        # ... as sys.path spells it (cwd for -m, PYTHONPATH): a child puts its own there
        self.homes = tuple({self.home} | {p for p in sys.path if os.path.realpath(p or ".") == self.home})
        self.env = import_env(dict(os.environ), self.home)
        self.path = list(sys.path)  # as python started it: each child's, with its snapshot for home
        self.children: Dict[int, socket.socket] = {}
        self.loaded: Dict[str, tuple] = {}  # the preloaded modules' files, as they were when imported
        self.preloaded: set = set()  # their top-level names: a snapshot holding one would shadow it
        self.own: List[str] = []  # the modules it took from its own snapshot (home): a child forgets them
        self.stopping = False
        self.unfit = ""  # why no child may be forked from this worker at all (it declines every job)
        self.listener: Optional[socket.socket] = None
        self.wake_r, self.wake_w = os.pipe()

    def bind(self) -> bool:
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self.listener.bind("\0" + self.name)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False  # another worker of this key serves already
            raise
        self.listener.listen(64)  # requests wait here while the preload runs
        return True

    def serve(self) -> int:
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes select: report an exit at once
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop)
        last = time.monotonic()
        while True:
            self._reap()
            if self.stopping and self.listener is not None:
                self.listener.close()  # new requests are refused: their payloads start cold
                self.listener = None
            if not self.children and (self.stopping or time.monotonic() - last > self.idle_s):
                return 0
            ready = select.select([self.wake_r] + ([self.listener] if self.listener else []), [], [], 1.0)[0]
            if self.wake_r in ready:
                try:
                    os.read(self.wake_r, 4096)
                except BlockingIOError:
                    pass
            if self.listener is not None and self.listener in ready:
                conn, _ = self.listener.accept()
                last = time.monotonic()
                try:
                    self._handle(conn)
                except (OSError, ValueError) as exc:
                    print(f"[orch-warm] a request failed: {exc}", flush=True)
                    conn.close()

    def _stop(self, *_):
        self.stopping = True

    def _refuse(self, conn: socket.socket, why: str) -> None:
        try:
            _send(conn, {"refused": why})
        finally:
            conn.close()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        if _peer_uid(conn) != os.getuid():
            conn.close()
            return
        data, fds, _flags, _addr = socket.recv_fds(conn, 65536, 16)
        try:
            req = _Lines(conn, data).next()
            why = self._check(req, fds)
            if why:
                return self._refuse(conn, why)
            if select.select([conn], [], [], 0)[0] and conn.recv(1, socket.MSG_PEEK) == b"":
                conn.close()  # the wrapper stopped waiting (and started its payload cold)
                return
            pid = os.fork()
            if pid == 0:
                self._child(conn, req, fds)  # never returns
        finally:
            for fd in fds:
                os.close(fd)
        # The wrapper signals the payload's process group: it must exist before the pid is told.
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if os.getpgid(pid) == pid:
                    break
            except ProcessLookupError:
                break
            time.sleep(0.001)
        self.children[pid] = conn
        try:
            _send(conn, {"pid": pid})
        except OSError:
            os.kill(pid, signal.SIGKILL)  # nobody supervises it: it must not run

    def _check(self, req: Optional[dict], fds: List[int]) -> str:
        if self.unfit:
            return self.unfit
        if not req or not fds:
            return "no request"
        argv, env, cwd = req.get("argv"), req.get("env"), req.get("cwd")
        if not (isinstance(argv, list) and len(argv) >= 3 and all(isinstance(a, str) for a in argv)):
            return "no argv"
        if not (isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
            return "no env"
        if os.path.realpath(argv[0]) != self.python:
            return f"python {argv[0]} is not this worker's {self.python}"
        if argv[1] != "-m" or argv[2] not in self.allow:
            return f"this worker runs only {', '.join(self.allow)}"
        if not isinstance(cwd, str) or not os.path.isdir(cwd):
            return f"cwd {cwd} is no folder"
        shadowed = sorted(module_names(cwd) & self.preloaded)
        if shadowed:
            return f"{cwd} has its own {shadowed[0]}, which this worker imported from elsewhere"
        if import_env(env, cwd) != self.env:
            return "the environment torch imports under differs from this worker's"
        if self.loaded != loaded_files():
            self.stopping = True  # e.g. bootstrap installed another torch: this worker has retired
            return "the libraries it imported have changed on disk since"
        return ""

    def _child(self, conn: socket.socket, req: dict, fds: List[int]) -> None:
        code = 1
        try:
            # The worker's handlers go first: the wrapper may signal the child the instant
            # it learns its pid (a cancel that came while it waited), which setsid allows.
            signal.set_wakeup_fd(-1)
            for sig in (signal.SIGCHLD, signal.SIGHUP, signal.SIGTERM):
                signal.signal(sig, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            # The job's command line before its pid is told, so ps and pkill never see the worker's.
            retitle(req["argv"])
            os.setsid()  # its own process group: the wrapper's signals reach it and its workers
            for sock in [conn, *self.children.values()] + ([self.listener] if self.listener else []):
                sock.close()
            os.close(self.wake_r)
            os.close(self.wake_w)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(fds[0], 1)
            os.dup2(fds[0], 2)
            # fds[1:] (the GPU locks the wrapper holds) stay open: holding them holds the GPUs.
            for fd in (devnull, fds[0]):
                if fd > 2:
                    os.close(fd)
            sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)
            sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)
            os.chdir(req["cwd"])
            os.environ.clear()
            os.environ.update(req["env"])
            self._take_snapshot()
            if "numpy" in sys.modules:  # as a cold start would: numpy's global state seeded afresh
                sys.modules["numpy"].random.seed()
            import runpy

            argv = req["argv"]
            sys.argv = [argv[2]] + argv[3:]
            runpy.run_module(argv[2], run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            if exc.code is None or isinstance(exc.code, int):
                code = exc.code or 0
            else:
                print(exc.code, file=sys.stderr)
        except KeyboardInterrupt:
            code = 128 + signal.SIGINT
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            exit_now(code)

    def _take_snapshot(self) -> None:
        """Import from the job's snapshot (the cwd), as ``python -m`` started there would:
        forget the modules the worker took from its own (remote/), and put the cwd where
        the worker's snapshot was on sys.path."""
        for name in self.own:
            sys.modules.pop(name, None)
        here = os.getcwd()
        sys.path[:] = [here if p in self.homes else p for p in self.path]
        importlib.invalidate_caches()

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            if conn is not None:
                try:
                    _send(conn, {"exit": os.waitstatus_to_exitcode(status)})
                except OSError:
                    pass  # its wrapper is gone
                conn.close()


def _stat(pid="self") -> List[bytes]:
    """/proc/PID/stat's fields after the command name (proc(5) fields 3 on: state first).
    Raises OSError when PID is gone."""
    with open(f"/proc/{pid}/stat", "rb") as fh:
        return fh.read().rsplit(b")", 1)[1].split()


def retitle(argv: List[str]) -> None:
    """Show ARGV as this process's command line (ps, pgrep, /proc/PID/cmdline), as a cold
    start would: a forked child otherwise shows the worker's.  It is written over the
    worker's own arguments, which ``--room`` made long enough; what does not fit is cut."""
    try:
        fields = _stat()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end (proc(5) fields 48, 49)
        data = b"\0".join(os.fsencode(a) for a in argv)[: end - start - 1]
        with open("/proc/self/mem", "r+b", buffering=0) as mem:
            mem.seek(start)
            mem.write(data.ljust(end - start, b"\0"))
    except (OSError, ValueError, IndexError):
        pass  # a cosmetic: the job runs the same


# ---------------------------------------------------------------- the wrapper's side


class WarmChild:
    """A payload the worker forked, with what the wrapper uses of a Popen: pid, stdout,
    poll(), wait(), returncode.  ``lost``: why the exit code is unknown (the worker died)."""

    def __init__(self, sock: socket.socket, lines: _Lines, pid: int, stdout):
        self.sock = sock
        self.lines = lines
        self.pid = pid
        self.stdout = stdout
        self.returncode: Optional[int] = None
        self.orphaned = False  # the worker's connection ended without an exit code
        self.lost = ""

    def _take(self, message: Optional[dict], block: bool) -> None:
        if self.returncode is not None:  # a poll from a signal handler took the exit already
            return
        if message is None:  # the worker is gone: the payload's own end is all there is to wait for
            self.orphaned = True
        elif isinstance(message.get("exit"), int):
            self.returncode = message["exit"]
        if self.orphaned:
            while block and _alive(self.pid):
                time.sleep(0.2)
            if not _alive(self.pid):
                self.lost = "the warm worker that started it was killed, so its exit code is unknown"
                self.returncode = 1
        if self.returncode is not None:
            self.sock.close()

    def _next(self, block: bool) -> None:
        if self.orphaned:
            return self._take(None, block)
        self.sock.setblocking(block)
        try:
            message = self.lines.next()
        except (BlockingIOError, InterruptedError):
            return
        except (OSError, ValueError):
            message = None
        self._take(message, block)

    def poll(self) -> Optional[int]:
        if self.returncode is None:
            self._next(block=False)
        return self.returncode

    def wait(self) -> int:
        while self.returncode is None:
            self._next(block=True)
        return self.returncode


def _alive(pid: int) -> bool:
    """Whether PID still runs (a zombie nobody reaps has ended)."""
    try:
        return _stat(pid)[0] not in (b"Z", b"X")
    except (OSError, IndexError):
        return False


class Declined(Exception):
    """A worker was reached but will not run the job: it refused (why), or did not answer."""


def spawn(key: str, argv: List[str], env: Dict[str, str], cwd: str, keep_fds=()) -> Optional[WarmChild]:
    """ARGV forked by the worker of KEY; None when no worker listens.  Raises Declined."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect("\0" + socket_name(key))
    except OSError:
        sock.close()
        return None
    if _peer_uid(sock) != os.getuid():
        sock.close()  # never hand our job to someone else's socket under our name
        raise Declined("its socket belongs to another user")
    read_end, write_end = os.pipe()
    reply: Optional[dict] = None
    try:
        sock.settimeout(REPLY_WAIT_S)
        request = json.dumps({"argv": argv, "env": env, "cwd": cwd}).encode() + b"\n"
        socket.send_fds(sock, [request], [write_end, *keep_fds])
        os.close(write_end)
        write_end = -1
        lines = _Lines(sock)
        reply = lines.next()
    except socket.timeout:
        why = f"no answer within {REPLY_WAIT_S:.0f} s"
    except (OSError, ValueError) as exc:
        why = f"the connection failed: {exc}"
    else:
        why = "it hung up without an answer" if reply is None else str(reply.get("refused") or "")
    finally:
        if write_end >= 0:
            os.close(write_end)
    if not reply or not isinstance(reply.get("pid"), int):
        sock.close()
        os.close(read_end)
        raise Declined(why or f"an answer without a pid: {reply}")
    sock.settimeout(None)
    return WarmChild(sock, lines, reply["pid"], os.fdopen(read_end, "rb"))


def start(key: str, python: str, cwd: str, idle_s: float, server: str) -> None:
    """Start the worker of KEY as a session of the tmux server SERVER."""
    env = _import_vars(dict(os.environ))  # the tmux server's own may differ: the worker needs the job's
    command = "cd -- %s && exec env %s %s" % (
        shlex.quote(cwd),
        " ".join(shlex.quote(f"{k}={v}") for k, v in env.items()),
        shlex.join([python, "-m", "remote.warm", "--name", socket_name(key), "--idle", str(idle_s), "--room", ROOM]),
    )
    # A duplicate session (another wrapper started it first) fails, harmlessly; a failure to
    # start leaves no worker listening: the job starts cold after START_WAIT_S.
    tmux.start_session(server, session_name(key), command)


def forked(argv: List[str], keep_fds=(), say=print) -> Optional[WarmChild]:
    """ARGV as a warm worker's child when this job may use one (ORCH_WARM_S set, ARGV is
    ``PYTHON -m remote.run_job``), starting the worker if none listens; else None, and SAY
    gets why the job starts cold."""
    try:
        idle_s = float(os.environ.get("ORCH_WARM_S") or 0)
    except ValueError:
        return None
    if idle_s <= 0 or len(argv) < 3 or argv[1:3] != ["-m", MODULE]:
        return None
    if not hasattr(socket, "send_fds"):
        say(f"[orch] Python {sys.version.split()[0]} cannot hand a warm worker the job (3.9+): starting it cold")
        return None
    server = tmux.current_server()
    if not server:
        say("[orch] no tmux server to start a warm worker in: starting the job cold")
        return None
    env, cwd = dict(os.environ), os.getcwd()
    key = key_of(argv[0], env, cwd, code_id(), server)
    try:
        child = spawn(key, argv, env, cwd, keep_fds)
        if child is not None:
            return child
        start(key, argv[0], cwd, idle_s, server)
        deadline = time.monotonic() + START_WAIT_S
        while child is None and time.monotonic() < deadline:
            time.sleep(0.05)
            child = spawn(key, argv, env, cwd, keep_fds)
    except Declined as exc:
        say(f"[orch] the warm worker declined the job ({exc}): starting it cold")
        return None
    if child is None:
        say(f"[orch] no warm worker listened within {START_WAIT_S:.0f} s of starting one: starting the job cold")
    return child


def cuda_in_use() -> str:
    """Why a child forked now could not use CUDA ("" when it could).  CUDA does not survive a
    fork: a child of a process that initialised it fails at its first CUDA call.  torch's own
    import never initialises it, but a sitecustomize or a preload might."""
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    try:
        started = bool(cuda.is_initialized()) if cuda is not None else False
    except Exception:  # a torch too broken to say: the children would not fare better
        started = True
    return "CUDA was initialised before the fork (a forked job could not use the GPU)" if started else ""


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m remote.warm", description=__doc__.splitlines()[0])
    parser.add_argument("--name", required=True, help="the socket's name (remote.warm.socket_name)")
    parser.add_argument("--idle", type=float, default=600.0, help="seconds without a job before it leaves")
    parser.add_argument("--preload", default=PRELOAD, help="modules imported once, before any fork")
    parser.add_argument("--allow", default=MODULE, help="the modules it may run (python -m MODULE)")
    parser.add_argument("--room", default="", help="blanks: room in the command line for a child's (retitle)")
    opts = parser.parse_args(argv)
    worker = Worker(opts.name, opts.idle, [m for m in opts.allow.split(",") if m])
    if not worker.bind():
        return 0
    # Preloads come from the site, never from a snapshot: each child puts its own first.
    sys.path[:] = [p for p in sys.path if p not in worker.homes]
    import warnings

    # Python 3.12+ warns on every fork of a process with another thread; torch's import
    # leaves one idle (OpenMP's), and its at-fork handlers give the child a fresh pool.
    warnings.filterwarnings("ignore", message=".*fork.*", category=DeprecationWarning)
    for module in [m for m in opts.preload.split(",") if m]:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            if module == "torch":
                print(f"[orch-warm] cannot import torch ({exc}): jobs start cold", flush=True)
                return 1
    worker.unfit = cuda_in_use()
    worker.loaded = loaded_files()
    worker.preloaded = {n.split(".", 1)[0] for n, m in sys.modules.items() if getattr(m, "__file__", None)}
    worker.own = [n for n, m in sys.modules.items() if n != "__main__" and _under(m, worker.homes)]
    worker.preloaded -= {"__main__"} | {n.split(".", 1)[0] for n in worker.own}
    # What the preload made lives as long as the worker: out of the collector's sight, so a
    # child's collections neither walk torch's ~10^5 objects (a full one cost a smoke job's
    # scoring 0.1 s) nor copy the pages they touch (Python's gc.freeze, made for pre-fork).
    gc.collect()
    gc.freeze()
    serving = f"declining every job: {worker.unfit}" if worker.unfit else f"serving {worker.python}"
    print(f"[orch-warm] pid {os.getpid()}: {serving} ({opts.preload} imported)", flush=True)
    return worker.serve()


if __name__ == "__main__":
    sys.exit(main())
