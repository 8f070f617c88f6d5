"""Download one file over HTTP(S): resumable, checksum-verified, with progress on stderr.

The bytes go to ``<target>.part``; a dropped connection leaves it in place and the next
attempt (in this run, up to ``ATTEMPTS``, or a later run) asks for the rest with an HTTP
Range request. Only a file whose size and sha256 match is renamed to ``target``; a
mismatch deletes the partial file, so a bad download is never resumed or used.
"""

from __future__ import annotations

import os
import socket
import time
import urllib.error
import urllib.request
from http.client import HTTPException
from pathlib import Path
from typing import Optional

from orchestrator import output
from orchestrator.errors import ExitCode, OrchError
from remote.files import sha256_file

ATTEMPTS = 4
RETRY_WAIT_S = (1, 3, 10)
CHUNK = 1 << 16
TIMEOUT_S = 60


class _Progress:
    """A rich progress bar on a terminal, plain lines (every 10%) otherwise, nothing with --quiet."""

    def __init__(self, label: str, total: Optional[int]):
        self.label, self.total = label, total
        self.bar = None
        self.last_step = -1
        if output.quiet():
            return
        if output.err.is_terminal:
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            self.bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=output.err,
                transient=True,
            )
            self.bar.start()
            self.task = self.bar.add_task(label, total=total)

    def update(self, done: int) -> None:
        if output.quiet():
            return
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=self.total)
            return
        if self.total:
            step = min(10, int(10 * done / self.total))
            if step > self.last_step:
                self.last_step = step
                output.say(f"{self.label}: {done / 1e6:.1f} of {self.total / 1e6:.1f} MB ({10 * step}%)", markup=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _request(url: str, start: int):
    headers = {"User-Agent": "orch-data-get"}
    if start:
        headers["Range"] = f"bytes={start}-"
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)


def _total_from(response, start: int) -> Optional[int]:
    """The whole file's size from a 200 (Content-Length) or 206 (Content-Range .../TOTAL)."""
    if response.status == 206:
        content_range = response.headers.get("Content-Range", "")
        tail = content_range.rpartition("/")[2]
        return int(tail) if tail.isdigit() else None
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _attempt(url: str, part: Path, label: str) -> None:
    """One request: append to ``part`` from where it ends (or start over when the server
    ignores the range)."""
    start = part.stat().st_size if part.exists() else 0
    try:
        response = _request(url, start)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and start:  # nothing after `start`: the partial file is whole (or too long)
            return
        raise
    with response:
        if start and response.status != 206:
            start = 0  # the server sent the whole file: begin again
        total = _total_from(response, start)
        progress = _Progress(label, total)
        done = start
        try:
            with open(part, "ab" if start else "wb") as out:
                progress.update(done)
                while True:
                    block = response.read(CHUNK)
                    if not block:
                        break
                    out.write(block)
                    done += len(block)
                    progress.update(done)
        finally:
            progress.close()
        if total is not None and done < total:
            raise ConnectionError(f"the connection closed after {done} of {total} bytes")


def fetch(url: str, target: Path, *, sha256: str, size: Optional[int] = None, label: str = "") -> Path:
    """``target`` with the given sha256 (and size), downloaded from ``url`` unless it is
    already there. Raises OrchError: UNREACHABLE when the server cannot be reached (the
    partial file is kept for the next run), DATA when the bytes are not the expected ones."""
    target = Path(target)
    if target.is_file() and sha256_file(target) == sha256:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    label = label or target.name
    if part.exists():
        output.say(f"resuming {label} at {part.stat().st_size / 1e6:.1f} MB", markup=False)
    for attempt in range(ATTEMPTS):
        try:
            _attempt(url, part, label)
            break
        except (urllib.error.URLError, HTTPException, ConnectionError, socket.timeout, TimeoutError) as exc:
            reason = getattr(exc, "reason", None) or exc
            have = part.stat().st_size if part.exists() else 0
            if isinstance(exc, urllib.error.HTTPError) and exc.code not in (408, 429, 500, 502, 503, 504):
                raise OrchError(
                    f"downloading {url} failed: HTTP {exc.code} {exc.reason}",
                    ExitCode.UNREACHABLE,
                    hint="check the URL (--url)",
                ) from None
            if attempt + 1 == ATTEMPTS:
                raise OrchError(
                    f"downloading {url} failed: {reason}",
                    ExitCode.UNREACHABLE,
                    hint=f"run the same command again: it resumes at {have / 1e6:.1f} MB ({part})"
                    if have
                    else "check the network and run it again",
                ) from None
            wait = RETRY_WAIT_S[min(attempt, len(RETRY_WAIT_S) - 1)]
            output.say(f"download interrupted at {have / 1e6:.1f} MB ({reason}); resuming in {wait} s", markup=False)
            time.sleep(wait)
    got_size = part.stat().st_size if part.exists() else 0
    got_sha = sha256_file(part) if part.exists() else ""
    if (size is not None and got_size != size) or got_sha != sha256:
        part.unlink(missing_ok=True)  # never resume from, or use, bytes that are not the file
        what = f"{got_size} bytes, sha256 {got_sha}" + (
            f"; expected {size} bytes," if size is not None else "; expected"
        )
        raise OrchError(
            f"{url} is not the expected file ({what} sha256 {sha256}): refused",
            ExitCode.DATA,
            hint="the partial download was deleted; if the source really changed, "
            "check docs/DATA.md, else run the command again",
        )
    os.replace(part, target)
    return target
