"""Pull folders of a host's files into a fresh local folder without trusting the host.

Every transport pulls through here (Transport.pull): `local` and SFTP read through a
Source (hostfiles.py: lstat first, no-follow opens), rsync runs without -l/-D.  Either
way nothing but regular files lands, each created new, and nothing bigger than the
spec's ``max_bytes``: a file over it is refused by name, or taken as its last
``max_bytes`` when it is one of the spec's ``tail`` names (a log).  rsync skips such a
file (--max-size) and runs with that file-size limit (RLIMIT_FSIZE), so not even an rsync
on the host that ignores --max-size can write more.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from orchestrator.errors import OrchError
from orchestrator.transport import shell
from orchestrator.transport.hostfiles import NOT_REGULAR, Source


@dataclass
class PullSpec:
    dirs: Sequence[str]  # the folders under the remote folder to pull (a missing one is skipped)
    names: Sequence[str]  # the file names to pull from each
    max_bytes: Optional[int] = None  # a file bigger than this is refused ...
    tail: Sequence[str] = ()  # ... or, with one of these names, taken as its last max_bytes
    cut_note: Callable[[str, int], bytes] = lambda name, size: b""  # the first line of a cut file

    def over(self, job: str, name: str, size: int) -> str:
        return f"{job}/{name}: {size} bytes, over the {self.max_bytes} this fetch takes of it: refused"


@dataclass
class Pulled:
    refused: List[str] = field(default_factory=list)  # "dir/file: why", for the verification message
    cut: Dict[str, int] = field(default_factory=dict)  # "dir/file" -> its size on the host
    over_cap: Dict[str, int] = field(default_factory=dict)  # of those, too big to fetch whole when asked


def _create(path: Path) -> int:
    """A new file in the staging folder: never an existing one, never through a link."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _from_line_start(data: bytes) -> bytes:
    cut = data.find(b"\n")
    return data[cut + 1 :] if 0 <= cut < len(data) - 1 else data


def _copy(source: Source, job: str, name: str, size: int, dest: Path, spec: PullSpec, pulled: Pulled) -> None:
    fd = _create(dest / name)
    try:
        if spec.max_bytes is not None and size > spec.max_bytes:
            pulled.cut[f"{job}/{name}"] = size
            tail: List[bytes] = []
            source.read(job, name, size - spec.max_bytes, spec.max_bytes, tail.append)
            _write_all(fd, spec.cut_note(name, size) + _from_line_start(b"".join(tail)))
        else:
            source.read(job, name, 0, size, lambda data: _write_all(fd, data))
    finally:
        os.close(fd)


def pull_from_source(source: Source, stage: Path, spec: PullSpec) -> Pulled:
    """SFTP and `local`: look at each entry (lstat) before reading it; refuse what is not a
    regular file; read a big log's tail only."""
    pulled = Pulled()
    present = source.jobs()
    for job in spec.dirs:
        if job not in present:
            continue  # not started yet
        if not present[job]:
            pulled.refused.append(f"{job}: not a directory on the host (a link?): refused")
            continue
        files = source.files(job)
        dest = stage / job
        dest.mkdir(exist_ok=True)  # an earlier pull of the same fetch may have made it
        for name in spec.names:
            if name not in files:
                continue
            regular, size = files[name]
            if not regular:
                pulled.refused.append(f"{job}/{name}: {NOT_REGULAR}")
                continue
            if spec.max_bytes is not None and size > spec.max_bytes and name not in spec.tail:
                pulled.refused.append(spec.over(job, name, size))
                continue
            try:
                _copy(source, job, name, size, dest, spec, pulled)
            except OrchError as exc:  # it turned into a link between listing and reading
                if NOT_REGULAR not in exc.message:
                    raise
                pulled.refused.append(exc.message)
    return pulled


def _rsync_once(transport, remote_dir: str, stage: Path, seed: Path, spec: PullSpec) -> str:
    from orchestrator.transport.rsync import run_rsync, timeout_option

    # Exactly the wanted folders' files: `/job` matches the folder (or a link standing in
    # for it, which rsync then names as skipped), `/job/name` each file.
    filters = []
    for job in spec.dirs:
        filters += [f"--include=/{job}"] + [f"--include=/{job}/{n}" for n in spec.names]
    filters.append("--exclude=*")
    # -r -t and nothing of -a's -l -p -o -g -D: a link, device or fifo is skipped and named.
    argv = [
        "rsync",
        "-r",
        "-t",
        "--no-links",
        "--no-devices",
        "--no-specials",
        "--checksum",
        "--info=skip1",
        "--prune-empty-dirs",
    ]
    if seed.is_dir():
        argv.append(f"--link-dest={seed.resolve()}")  # unchanged files: hard links to the verified copy
    if spec.max_bytes is not None:
        argv.append(f"--max-size={spec.max_bytes}")
    argv += [*filters, timeout_option(transport.host), "-e", shell.join(transport.rsync_rsh())]
    argv += [transport.rsync_target(remote_dir + "/"), f"{stage}/"]
    proc = run_rsync(transport, argv, push=False, local_dir=stage, max_file_bytes=spec.max_bytes)
    return proc.stdout + proc.stderr


def pull_rsync(transport, remote_dir: str, stage: Path, seed: Path, spec: PullSpec) -> Pulled:
    """rsync, seeded from SEED (the verified copy) so unchanged files are not sent again;
    a tail file over the limit is then read as its tail over SFTP."""
    from orchestrator.transport.hostfiles import SftpSource

    pulled = Pulled()
    out = _rsync_once(transport, remote_dir, stage, seed, spec)
    for job in spec.dirs:
        if f'skipping non-regular file "{job}"' in out:
            pulled.refused.append(f"{job}: not a directory on the host (a link?): refused")
        for name in spec.names:
            if f'skipping non-regular file "{job}/{name}"' in out:
                pulled.refused.append(f"{job}/{name}: {NOT_REGULAR}")
    over = [(job, name) for job in spec.dirs for name in spec.names if f"{job}/{name} is over max-size" in out]
    source = SftpSource(transport, remote_dir) if over else None
    for job, name in over:
        found = source.lstat(job, name)
        if found is None:
            continue
        regular, size = found
        if not regular:
            pulled.refused.append(f"{job}/{name}: {NOT_REGULAR}")
        elif name not in spec.tail:
            pulled.refused.append(spec.over(job, name, size))
        else:
            (stage / job).mkdir(exist_ok=True)
            _copy(source, job, name, size, stage / job, spec, pulled)
    return pulled


def check_tree(stage: Path, pulled: Pulled) -> None:
    """After any transfer: the staging folder holds folders of regular files, nothing else."""
    for job in stage.iterdir():
        if not stat.S_ISDIR(os.lstat(job).st_mode):
            pulled.refused.append(f"{job.name}: {NOT_REGULAR}")
            os.unlink(job)
            continue
        for entry in job.iterdir():
            if not stat.S_ISREG(os.lstat(entry).st_mode):
                pulled.refused.append(f"{job.name}/{entry.name}: {NOT_REGULAR}")
                if entry.is_dir() and not entry.is_symlink():
                    shutil.rmtree(entry)
                else:
                    os.unlink(entry)
