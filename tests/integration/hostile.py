"""Helpers for the hostile-input tests: a project fixture that leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import List


def processes_under(root: Path) -> List[int]:
    """Our own processes whose command line names ``root`` (tmux servers on its socket,
    wrappers and jobs with their job folders there)."""
    me, found = os.getpid(), []
    needle = str(root).encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                cmdline = fh.read()
            if os.stat(f"/proc/{entry}").st_uid != os.getuid():
                continue
        except OSError:
            continue
        if needle in cmdline:
            found.append(int(entry))
    return found


def kill_processes_under(root: Path) -> None:
    for sock in Path(root).rglob("tmux.sock"):
        subprocess.run(["tmux", "-S", str(sock), "kill-server"], capture_output=True)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = processes_under(root)
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.time() + 5
        while pids and time.time() < deadline and processes_under(root):
            time.sleep(0.1)


def new_key(path: Path) -> str:
    """A fresh ed25519 public key as 'type base64'."""
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return " ".join(Path(str(path) + ".pub").read_text().split()[:2])


def trainers_under(root: Path) -> List[int]:
    """The job payloads (python -m remote.run_job) among processes_under(root)."""
    found = []
    for pid in processes_under(root):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        if argv[1:3] == [b"-m", b"remote.run_job"]:
            found.append(pid)
    return found
