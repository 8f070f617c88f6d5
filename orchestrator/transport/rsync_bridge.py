"""Serve rsync's remote shell (orchestrator/transport/rsync_tunnel.py) over this process's SSH connection.

Each rsync call would otherwise be a fresh OpenSSH login: another key exchange and
authentication (about a second at 200 ms round trips, per call), and a second client to
keep in step with the Paramiko one on keys, known hosts and jump hosts.  Instead, the
tunnel program that rsync starts connects to a Unix socket in a private (0700) temporary
folder, and this bridge runs the command it asks for on a new channel of the already
verified connection, relaying stdin, stdout, stderr and the exit status.

Threads, not a select loop: rsync streams both ways at once, and a blocking write in
one direction must never stop the other from draining.

A host's rsync that finishes the transfer and then never exits would hold rsync here for
ever (it waits for its remote shell, this bridge, which waits for the exit status): once
the host's output has ended the exit status is due within ``idle_s`` (the host's
io_timeout), and once nothing has moved either way for twice that (rsync's own --timeout
stops a transfer the host stalls at once), the bridge stops waiting.  Either way it
closes the channel, tells rsync on its stderr (a line starting STOPPED, for rsync's own
output), and records why under the call's id (``stopped``), which transport/rsync.py asks
for the message: never parsed from rsync's stderr, which carries the host's text too.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional

TUNNEL = str(Path(__file__).with_name("rsync_tunnel.py"))
STOPPED = "orch: stopped waiting for the host:"  # then why, on rsync's stderr
GAVE_UP = 255  # the remote shell's exit status then (ssh's own for a failed connection)
POLL_S = 0.2


class RsyncBridge:
    """``open_channel(command)`` must return a Paramiko channel already running ``command``;
    ``idle_s``: the host's io_timeout."""

    def __init__(self, open_channel: Callable[[str], object], idle_s: float):
        self._open_channel = open_channel
        self.idle_s = idle_s
        self._dir = tempfile.mkdtemp(prefix="orch-rsync-")  # 0700: only this user can connect
        self.path = os.path.join(self._dir, "s")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.path)
        self._sock.listen(8)
        self._closed = False
        self._stopped: Dict[str, str] = {}  # call id -> why the bridge stopped waiting for it
        threading.Thread(target=self._serve, name="orch-rsync-bridge", daemon=True).start()

    def rsh(self) -> List[str]:
        """rsync's -e program (as argv)."""
        return [sys.executable, "-S", TUNNEL, self.path]

    def stopped(self, call: str) -> Optional[str]:
        """Why the bridge stopped waiting for the host's side of rsync call CALL (its
        $ORCH_RSYNC_CALL), e.g. "sent nothing for 600 s"; None when it did not.  Asked once."""
        return self._stopped.pop(call, None) if call else None

    def close(self) -> None:
        self._closed = True
        try:
            self._sock.close()
        finally:
            shutil.rmtree(self._dir, ignore_errors=True)

    # --- serving ---------------------------------------------------------------------------

    def _serve(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return  # closed
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        lock = threading.Lock()

        def send(kind: bytes, payload: bytes) -> None:
            with lock:
                conn.sendall(kind + struct.pack(">I", len(payload)) + payload)

        try:
            header = b""
            while not header.endswith(b"\n"):
                chunk = conn.recv(1)
                if not chunk or len(header) > 1 << 20:
                    return
                header += chunk
            request = json.loads(header)
            command, call = request["command"], str(request.get("call") or "")
            try:
                chan = self._open_channel(command)
            except Exception as exc:  # lost connection: rsync reports it with our words
                send(b"E", f"orch: could not open an SSH channel for rsync: {exc}\n".encode())
                send(b"X", struct.pack(">i", 255))
                return
            moved = [time.monotonic()]  # when a byte last went either way

            def seen() -> None:
                moved[0] = time.monotonic()

            pumps = [
                threading.Thread(target=self._to_host, args=(conn, chan, seen), daemon=True),
                threading.Thread(target=self._from_host, args=(chan.recv, b"O", send, seen), daemon=True),
                threading.Thread(target=self._from_host, args=(chan.recv_stderr, b"E", send, seen), daemon=True),
            ]
            for t in pumps:
                t.start()
            why = self._wait(pumps[1:], chan, moved)
            if why:
                if call:
                    self._stopped[call] = why
                chan.close()  # the host's command is left; the pumps end with the channel
                send(b"E", f"{STOPPED} {why}\n".encode())
                send(b"X", struct.pack(">i", GAVE_UP))
                return
            send(b"X", struct.pack(">i", chan.recv_exit_status()))
            chan.close()
        except Exception:  # the tunnel went away (rsync killed), or a bad header: nothing left to tell it
            pass
        finally:
            conn.close()

    def _wait(self, readers: List[threading.Thread], chan, moved: List[float]) -> Optional[str]:
        """Wait for the host's output to end (READERS) and for its exit status; why the
        bridge stopped waiting, or None when the status came."""
        silent = 2 * self.idle_s
        while any(t.is_alive() for t in readers):
            next(t for t in readers if t.is_alive()).join(POLL_S)
            if time.monotonic() - moved[0] > silent:
                return f"sent nothing for {silent:.0f} s"
        if not chan.status_event.wait(self.idle_s):
            return f"ended rsync's output but did not exit within {self.idle_s:.0f} s"
        return None

    @staticmethod
    def _to_host(conn: socket.socket, chan, seen: Callable[[], None]) -> None:
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                chan.sendall(data)
                seen()
            chan.shutdown_write()
        except Exception:  # OSError, EOFError, paramiko.SSHException: the other side is gone
            pass

    @staticmethod
    def _from_host(recv, kind: bytes, send, seen: Callable[[], None]) -> None:
        try:
            while True:
                data = recv(65536)
                if not data:
                    return
                seen()
                send(kind, data)
        except Exception:  # the tunnel or the connection is gone; the exit status says the rest
            return
