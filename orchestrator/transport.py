"""Run commands and move files on a host: over SSH (Fabric/Paramiko) or locally.

Both transports take shell text built by orchestrator.shell and offer the same calls,
so everything above them is written once.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, List, Optional

from . import shell
from .errors import ExitCode, OrchError
from .hosts import HostConfig


@dataclass
class Result:
    stdout: str
    stderr: str
    rc: int


def _failed(command: str, result: Result, host: str) -> OrchError:
    tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
    return OrchError(
        f"command failed on {host} (exit {result.rc}): {command[:300]}"
        + ("\n  " + "\n  ".join(tail) if tail else ""),
        ExitCode.REMOTE,
    )


def temp_name(name: str) -> str:
    """A temp name beside NAME that no concurrent upload of the same file shares."""
    import secrets

    return f"{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"


class Transport:
    host: HostConfig

    @property
    def workdir(self) -> str:
        """The workdir as the host's shell sees it (relative = under the login's home)."""
        raise NotImplementedError

    def _exec(self, command: str, timeout: Optional[float], stdin: Optional[str]) -> Result:
        raise NotImplementedError

    def run(self, command: str, *, check: bool = True, timeout: Optional[float] = None,
            stdin: Optional[str] = None) -> Result:
        command = shell.with_path(self.host.extra_path, command)
        result = self._exec(command, timeout, stdin)
        if check and result.rc != 0:
            raise _failed(command, result, self.host.name)
        return result

    def stream(self, command: str, out: IO[str] = sys.stdout) -> int:
        """Run COMMAND, copying its output to OUT as it arrives (for `logs -f`)."""
        raise NotImplementedError

    def put_text(self, text: str, remote_path: str) -> None:
        raise NotImplementedError

    def put_file(self, local_path: Path, remote_path: str) -> None:
        raise NotImplementedError

    def get_file(self, remote_path: str, local_path: Path) -> None:
        raise NotImplementedError

    def rsync_rsh(self) -> Optional[List[str]]:
        """The `ssh` argv rsync should use (same host-key rules); None for a local host."""
        return None

    def rsync_target(self, remote_path: str) -> str:
        return remote_path

    def close(self) -> None:
        pass


class LocalTransport(Transport):
    """The built-in `local` host: the same interface, no SSH."""

    def __init__(self, host: HostConfig):
        self.host = host

    @property
    def workdir(self) -> str:
        return str(Path(self.host.workdir).expanduser())

    def _exec(self, command, timeout, stdin):
        try:
            proc = subprocess.run(
                ["bash", "-c", command], input=stdin, capture_output=True, text=True,
                timeout=timeout, cwd=str(Path.home()),
            )
        except subprocess.TimeoutExpired:
            raise OrchError(f"command timed out after {timeout:.0f} s on local: {command[:200]}", ExitCode.REMOTE)
        return Result(proc.stdout, proc.stderr, proc.returncode)

    def stream(self, command, out=sys.stdout):
        command = shell.with_path(self.host.extra_path, command)
        proc = subprocess.Popen(["bash", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                out.write(line)
                out.flush()
        except KeyboardInterrupt:
            proc.terminate()
            raise
        return proc.wait()

    def _local(self, remote_path: str) -> Path:
        path = Path(remote_path).expanduser()
        return path if path.is_absolute() else Path.home() / path

    def put_text(self, text, remote_path):
        dest = self._local(remote_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(temp_name(dest.name))
        tmp.write_text(text)
        os.replace(tmp, dest)

    def put_file(self, local_path, remote_path):
        dest = self._local(remote_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(temp_name(dest.name))
        shutil.copyfile(local_path, tmp)
        os.replace(tmp, dest)

    def get_file(self, remote_path, local_path):
        local_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self._local(remote_path), local_path)
