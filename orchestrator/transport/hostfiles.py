"""Read a host's job files without ever following a link: over SFTP, or on this machine
for host `local`.  Used by fetch.py; a source only reads, the caller decides where bytes go.

SFTP's READDIR reports lstat's attributes (a link is a link); a local read opens the job
folder's entries relative to its descriptor with O_NOFOLLOW (and O_NONBLOCK, so a fifo
never blocks), and checks fstat before reading.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, Optional, Tuple

from orchestrator.errors import ExitCode, OrchError

if TYPE_CHECKING:  # types only: base.py reaches this module through its copiers
    from orchestrator.transport.base import Transport

NOT_REGULAR = "not a regular file on the host (a link, fifo or device): refused"
MAX_ENTRIES = 100_000  # of one folder listed over SFTP (a run's jobs, a job's files)


class Source:
    """The host's jobs folder, read without following links."""

    def jobs(self) -> Dict[str, bool]:
        """entry name -> is a real directory"""
        raise NotImplementedError

    def files(self, job: str) -> Dict[str, Tuple[bool, int]]:
        """file name -> (regular file, size)"""
        raise NotImplementedError

    def lstat(self, job: str, name: str) -> Optional[Tuple[bool, int]]:
        """(regular file, size) of JOB/NAME, a link not followed; None when it is not there."""
        raise NotImplementedError

    def read(self, job: str, name: str, offset: int, limit: int, write: Callable[[bytes], object]) -> None:
        """Hand at most LIMIT of the file's bytes from OFFSET on to WRITE (a file that grows
        while it is read, or a host that lied about its size, cannot make it more)."""
        raise NotImplementedError


def _failures() -> tuple:
    """What an SFTP call can raise (transport/ssh.py), looked up only when one failed: host
    `local` never loads Paramiko."""
    from orchestrator.transport.ssh import SFTP_FAILURES

    return SFTP_FAILURES


class SftpSource(Source):
    def __init__(self, transport: Transport, remote_jobs: str):
        self.transport, self.root = transport, remote_jobs
        self.sftp = transport._sftp_client()  # noqa: SLF001 - the one connection

    def _fail(self, what: str, exc: Exception) -> OrchError:
        return self.transport.sftp_error(f"reading {what}", exc)

    def _listing(self, path: str):
        """A folder's entries (READDIR attributes are lstat's: a link is reported as a
        link), at most MAX_ENTRIES of them: paramiko's listdir_attr collects whatever the
        server sends, and a hostile one can send names without end."""
        try:
            for count, attr in enumerate(self.sftp.listdir_iter(path), 1):
                if count > MAX_ENTRIES:
                    raise OrchError(
                        f"{self.transport.host.name} lists more than {MAX_ENTRIES} entries in {path} over SFTP: "
                        "refused (no run folder holds that many)",
                        ExitCode.REMOTE,
                        hint="look at that folder on the host; a broken or hostile SFTP server sends names without end",
                    )
                yield attr
        except _failures() as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise self._fail(path, exc) from None

    def jobs(self):
        try:
            return {a.filename: stat.S_ISDIR(a.st_mode or 0) for a in self._listing(self.root)}
        except FileNotFoundError:
            return {}

    def files(self, job):
        path = f"{self.root}/{job}"
        try:
            return {a.filename: (stat.S_ISREG(a.st_mode or 0), a.st_size or 0) for a in self._listing(path)}
        except FileNotFoundError as exc:
            raise self._fail(path, exc) from None

    def lstat(self, job, name) -> Optional[Tuple[bool, int]]:
        try:
            a = self.sftp.lstat(f"{self.root}/{job}/{name}")
        except FileNotFoundError:
            return None
        except _failures() as exc:
            raise self._fail(f"{self.root}/{job}/{name}", exc) from None
        return stat.S_ISREG(a.st_mode or 0), a.st_size or 0

    def read(self, job, name, offset, limit, write):
        path = f"{self.root}/{job}/{name}"
        try:
            with self.sftp.open(path, "rb") as fh:
                fh.seek(offset)
                fh.prefetch(offset + limit)  # pipelined reads: one round trip, not one per 32 KB
                while limit > 0:
                    data = fh.read(min(1 << 16, limit))
                    if not data:
                        return
                    limit -= len(data)
                    write(data)
        except _failures() as exc:
            if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
                raise
            raise self._fail(path, exc) from None


class LocalSource(Source):
    """Host `local`: the job files are on this machine; opened relative to their folder's
    descriptor with O_NOFOLLOW, so no link is ever followed."""

    FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)

    def __init__(self, root: Path):
        self.root = root

    def _dir(self, job: Optional[str] = None) -> int:
        fd = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY)
        if job is None:
            return fd
        try:
            return os.open(job, self.FLAGS | os.O_DIRECTORY, dir_fd=fd)
        finally:
            os.close(fd)

    def jobs(self):
        try:
            with os.scandir(self.root) as it:
                return {e.name: e.is_dir(follow_symlinks=False) for e in it}
        except FileNotFoundError:
            return {}

    def files(self, job):
        fd = self._dir(job)
        try:
            out = {}
            for name in os.listdir(fd):
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                out[name] = (stat.S_ISREG(st.st_mode), st.st_size)
            return out
        finally:
            os.close(fd)

    def lstat(self, job, name):
        try:
            fd = self._dir(job)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        finally:
            os.close(fd)
        return stat.S_ISREG(st.st_mode), st.st_size

    def read(self, job, name, offset, limit, write):
        dfd = self._dir(job)
        try:
            src = os.open(name, self.FLAGS | os.O_NONBLOCK, dir_fd=dfd)  # O_NONBLOCK: a fifo never blocks us
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # became a link since it was listed
                raise OrchError(f"{job}/{name}: {NOT_REGULAR}", ExitCode.RUN_STATE) from None
            raise
        finally:
            os.close(dfd)
        try:
            if not stat.S_ISREG(os.fstat(src).st_mode):
                raise OrchError(f"{job}/{name}: {NOT_REGULAR}", ExitCode.RUN_STATE)
            os.lseek(src, offset, os.SEEK_SET)
            while limit > 0:
                data = os.read(src, min(1 << 16, limit))
                if not data:
                    return
                limit -= len(data)
                write(data)
        finally:
            os.close(src)
