"""Run commands and move files on a host: over SSH (Paramiko) or locally.

Both transports take shell text built by orchestrator.transport.shell and offer the same calls,
so everything above them is written once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, List, Optional, Tuple

from orchestrator.config.hosts import HostConfig
from orchestrator.errors import ExitCode, OrchError
from orchestrator.transport import shell

# What a host prints is untrusted: a command's output is read up to this much, then the
# command is stopped and Result.overflow says so (its output is cut there).
MAX_OUTPUT = 64 << 20


@dataclass
class Result:
    stdout: str
    stderr: str
    rc: int
    overflow: bool = False  # the command printed more than max_output: stopped, output cut


def read_capped(read: Callable[[int], bytes], limit: int, on_overflow: Callable[[], None]) -> Tuple[bytes, bool]:
    """Everything ``read`` returns until EOF, or the first ``limit`` bytes and True when
    there is more (``on_overflow`` then stops the writer)."""
    chunks: List[bytes] = []
    size = 0
    while True:
        data = read(65536)
        if not data:
            return b"".join(chunks), False
        size += len(data)
        if size > limit:
            chunks.append(data[: len(data) - (size - limit)])
            on_overflow()
            return b"".join(chunks), True
        chunks.append(data)


def run_capped(
    argv: List[str], stdin: Optional[str], max_output: int, timeout: Optional[float] = None, **popen: Any
) -> Result:
    """Run ARGV to its end, each of its output streams read up to MAX_OUTPUT bytes: past
    that it is killed and ``overflow`` set (what a host can make a command print must not
    grow without bound here).  After TIMEOUT seconds it is killed and TimeoutExpired raised."""
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen)
    got: dict = {}

    def drain(name, stream):
        got[name] = read_capped(stream.read1, max_output, proc.kill)

    streams = (("out", proc.stdout), ("err", proc.stderr))
    readers = [threading.Thread(target=drain, args=(n, s), daemon=True) for n, s in streams]
    for t in readers:
        t.start()
    try:
        if stdin is not None:
            proc.stdin.write(stdin.encode())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    for t in readers:
        t.join()
    (out, over_out), (err, over_err) = got["out"], got["err"]
    return Result(out.decode(errors="replace"), err.decode(errors="replace"), rc, over_out or over_err)


def _failed(command: str, result: Result, host: str) -> OrchError:
    from orchestrator.terminal import last_lines

    tail = last_lines(result.stderr or result.stdout)  # the host's words: a bounded tail
    return OrchError(
        f"command failed on {host} (exit {result.rc}): {command[:300]}" + ("\n  " + "\n  ".join(tail) if tail else ""),
        ExitCode.REMOTE,
    )


def stall_hint(host: str) -> str:
    """What to do when a transfer (rsync, SFTP) or a quick command heard nothing from HOST for
    its io_timeout."""
    return (
        f"the host or the link to it is stalled: `orch hosts check {host}`; "
        "a slow link can have a longer io_timeout in the host file"
    )


def brief(command: str, limit: int = 200) -> str:
    """COMMAND in short for a message: one line, cut at LIMIT characters."""
    text = " ".join(command.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def timed_out(host: str, seconds: float, command: str) -> OrchError:
    """A command given an overall time limit (``timeout=``) that did not end within it, on
    either transport: one message and a hint (exit code 7, as every stalled command)."""
    return OrchError(
        f"command timed out after {seconds:.0f} s on {host}: {brief(command)}",
        ExitCode.REMOTE,
        hint=unfinished_hint(host, seconds),
    )


def unfinished_hint(host: str, seconds: float) -> str:
    """What to do when a command on HOST did not end within SECONDS (it may still run there)."""
    return f"the host did not finish in {seconds:.0f} s; check it with `orch hosts check {host}`"


def temp_name(name: str) -> str:
    """A temp name beside NAME that no concurrent upload of the same file shares."""
    import secrets

    return f"{name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"


class Transport:
    host: HostConfig
    _copier = None  # how files move (transport/files.py), picked on first use
    _host_tools: Optional[dict] = None  # tools the host is known to have (tool -> bool)
    verified = ""  # how the host was authenticated, in words for a summary line

    @property
    def workdir(self) -> str:
        """The workdir as the host's shell sees it (relative = under the login's home)."""
        raise NotImplementedError

    def _exec(self, command: str, timeout: Optional[float], stdin: Optional[str], max_output: int) -> Result:
        raise NotImplementedError

    def run(
        self,
        command: str,
        *,
        check: bool = True,
        timeout: Optional[float] = None,
        stdin: Optional[str] = None,
        max_output: int = MAX_OUTPUT,
    ) -> Result:
        """Run COMMAND to its exit status.  ``timeout``: seconds from start to exit status,
        however the host paces its output (OrchError, exit 7, past it).  Without one the
        command is a quick one: over SSH it is stopped once the host has been silent for
        its io_timeout, or has ended the output but not exited within it."""
        command = shell.with_path(self.host.extra_path, command)
        result = self._exec(command, timeout, stdin, max_output)
        if check and result.overflow:
            raise OrchError(
                f"a command on {self.host.name} printed more than {max_output >> 20} MB, so orch stopped it: "
                f"{command[:300]}",
                ExitCode.REMOTE,
            )
        if check and result.rc != 0:
            from orchestrator.transport.diskspace import host_no_space, says_no_space

            if says_no_space(result.stderr):
                raise host_no_space(self, result.stderr)
            raise _failed(command, result, self.host.name)
        return result

    def stream(self, command: str, out: IO[str] = sys.stdout) -> int:
        """Run COMMAND, copying its output to OUT as it arrives (for `logs -f`)."""
        raise NotImplementedError

    def put_text(self, text: str, remote_path: str) -> None:
        raise NotImplementedError

    def put_file(self, local_path: Path, remote_path: str) -> None:
        raise NotImplementedError

    def source(self, remote_dir: str):
        """The host's files under REMOTE_DIR, read without following a link
        (transport/hostfiles.py: Source)."""
        raise NotImplementedError

    def learn_tools(self, tools: dict) -> None:
        """What a probe found on the host (tool -> present): spares asking again when the
        copier is picked."""
        self._host_tools = {**(self._host_tools or {}), **tools}

    def _pick_copier(self):
        raise NotImplementedError

    @property
    def copier(self):
        if self._copier is None:
            self._copier = self._pick_copier()
        return self._copier

    def push_tree(self, root: Path, files, dest_dir: str) -> int:
        """root/<f> -> dest_dir/<f> (an existing folder) for each f; returns files sent."""
        return self.copier.push_tree(root, files, dest_dir)

    def push_file(self, local_path: Path, remote_path: str) -> None:
        """One file into an existing folder; it appears whole or not at all."""
        self.copier.push_file(local_path, remote_path)

    def pull(self, remote_dir: str, stage: Path, seed: Path, spec):
        """Folders of REMOTE_DIR into the fresh local folder STAGE, never following a link
        (transport/pull.py); SEED: an earlier verified copy whose unchanged files need not
        travel again."""
        return self.copier.pull(remote_dir, stage, seed, spec)

    def rsync_rsh(self) -> Optional[List[str]]:
        """The `ssh` argv rsync should use (same host-key rules); None for a local host."""
        return None

    def rsync_target(self, remote_path: str) -> str:
        return remote_path

    def rsync_stopped(self, call: str) -> Optional[str]:
        """Why orch stopped waiting for the host's side of rsync call CALL (rsync_bridge.py),
        None when it did not."""
        return None

    def close(self) -> None:
        pass


class LocalTransport(Transport):
    """The built-in `local` host: the same interface, no SSH."""

    def __init__(self, host: HostConfig):
        self.host = host

    @property
    def workdir(self) -> str:
        return str(Path(self.host.workdir).expanduser())

    def _exec(self, command, timeout, stdin, max_output):
        try:
            return run_capped(["bash", "-c", command], stdin, max_output, timeout, cwd=str(Path.home()))
        except subprocess.TimeoutExpired:
            raise timed_out(self.host.name, timeout, command) from None

    def stream(self, command, out=sys.stdout):
        command = shell.with_path(self.host.extra_path, command)
        proc = subprocess.Popen(
            ["bash", "-c", command],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            encoding="utf-8",
            errors="replace",  # a log is not promised to be UTF-8
        )
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                out.write(line)
                out.flush()
        except KeyboardInterrupt:
            proc.terminate()
            raise
        return proc.wait()

    def _pick_copier(self):
        from orchestrator.transport.files import LocalCopier

        return LocalCopier(self)

    def source(self, remote_dir):
        from orchestrator.transport.hostfiles import LocalSource

        return LocalSource(self.local_path(remote_dir))

    def local_path(self, remote_path: str) -> Path:
        path = Path(remote_path).expanduser()
        return path if path.is_absolute() else Path.home() / path

    def put_text(self, text, remote_path):
        dest = self.local_path(remote_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(temp_name(dest.name))
        tmp.write_text(text)
        os.replace(tmp, dest)

    def put_file(self, local_path, remote_path):
        dest = self.local_path(remote_path)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(temp_name(dest.name))
        shutil.copyfile(local_path, tmp)
        os.replace(tmp, dest)
