"""Find and stop the processes a test started, by where they live rather than by name.

Everything the tests start (sshd, tmux servers, wrappers, jobs, bootstrap steps) runs
from, or names on its command line, a folder under pytest's temporary directory: that
is how a fixture finds what it must stop, and how the session finds what outlived it.
Linux /proc only; elsewhere nothing is found (and nothing is killed).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Dict, Iterable, List

import timing


def parent_pid(pid: int) -> int:
    """PID's parent, or 0 when it is gone (or not ours to read)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _ancestors() -> set:
    """This process and its parents: never ours to kill."""
    seen, pid = set(), os.getpid()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        pid = parent_pid(pid)
    return seen


def _inside(value: str, folder: str) -> bool:
    return value == folder or value.startswith(folder + "/") or (folder + "/") in value


def processes_under(folders: Iterable[str]) -> Dict[int, str]:
    """pid -> command line of every process whose command line names a path in one of
    ``folders``, or whose working directory is in one of them."""
    folders = [str(f).rstrip("/") for f in folders if f]
    found: Dict[int, str] = {}
    if not folders or not os.path.isdir("/proc"):
        return found
    skip = _ancestors()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in skip:
            continue
        pid = int(entry)
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            continue  # gone, or not ours to read
        argv = [a.decode(errors="replace") for a in args if a]
        if not argv:
            continue  # a zombie: its parent reaps it
        if any(_inside(a, f) for a in argv for f in folders) or any(_inside(cwd, f) for f in folders):
            found[pid] = " ".join(argv)
    return found


def kill_tmux_servers(sockets: Iterable[str]) -> None:
    for sock in sockets:
        if os.path.exists(sock):
            subprocess.run(["tmux", "-S", sock, "kill-server"], capture_output=True)


def terminate(pids: Iterable[int], grace_s: float = 5.0) -> None:
    """SIGTERM, a grace period (a wrapper records `cancelled`), then SIGKILL."""
    pids = list(pids)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.time() + grace_s
    while time.time() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    for pid in pids:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def alive(pid: int) -> bool:
    """PID runs (a zombie has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def stop_everything_under(folders: Iterable[str], sockets: Iterable[str] = ()) -> List[str]:
    """Stop the tmux servers at ``sockets`` and every process living in ``folders``;
    return the command lines of what had to be stopped."""
    folders = list(folders)
    kill_tmux_servers(sockets)
    found = processes_under(folders)
    if found:
        terminate(found)
    return list(found.values())


def ctrl_c_reaches_it() -> None:
    """In the child: SIGINT back to the default, so Python turns it into KeyboardInterrupt.
    A suite started in the background by a shell without job control (nohup, `cmd &` in a
    script, some CI runners) inherits SIGINT ignored, and a test's Ctrl-C would be lost."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Running:
    """A background orch command: wait for what it prints instead of sleeping a fixed time
    (on a loaded machine `orch --help` alone can take 8 s)."""

    def __init__(self, proc: subprocess.Popen):
        import threading

        self.proc = proc
        self.out: List[str] = []
        self.err: List[str] = []
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read, args=(stream, sink), daemon=True)
            for stream, sink in ((proc.stdout, self.out), (proc.stderr, self.err))
        ]
        for t in self._readers:
            t.start()

    def _read(self, stream, sink: List[str]) -> None:
        for line in iter(stream.readline, ""):
            with self._changed:
                sink.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def stdout(self) -> str:
        return "".join(self.out)

    @property
    def stderr(self) -> str:
        return "".join(self.err)

    def wait_for(self, text: str, timeout: float = 60) -> None:
        """Until ``text`` shows on stdout or stderr (``timeout``: idle-machine seconds, scaled)."""
        deadline = time.time() + timing.scaled(timeout)
        with self._changed:
            while text not in self.stdout + self.stderr:
                if self.proc.poll() is not None and not any(t.is_alive() for t in self._readers):
                    raise AssertionError(
                        f"orch ended ({self.proc.returncode}) without printing {text!r}:\n{self.stdout}\n{self.stderr}"
                    )
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError(f"orch printed no {text!r} in time:\n{self.stdout}\n{self.stderr}")
                self._changed.wait(min(left, 0.5))

    def finish(self, timeout: float = 60) -> int:
        """Wait for the command to end (killed if it outlives ``timeout``); its exit code."""
        try:
            self.proc.wait(timeout=timing.scaled(timeout))
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            for t in self._readers:
                t.join(10)
        return self.proc.returncode
