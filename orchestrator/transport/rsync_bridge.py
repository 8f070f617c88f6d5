"""Serve rsync's remote shell (orchestrator/transport/rsync_tunnel.py) over this process's SSH connection.

Each rsync call would otherwise be a fresh OpenSSH login: another key exchange and
authentication (about a second at 200 ms round trips, per call), and a second client to
keep in step with the Paramiko one on keys, known hosts and jump hosts.  Instead, the
tunnel program that rsync starts connects to a Unix socket in a private (0700) temporary
folder, and this bridge runs the command it asks for on a new channel of the already
verified connection, relaying stdin, stdout, stderr and the exit status.

Threads, not a select loop: rsync streams both ways at once, and a blocking write in
one direction must never stop the other from draining.
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
from pathlib import Path
from typing import Callable, List

TUNNEL = str(Path(__file__).with_name("rsync_tunnel.py"))


class RsyncBridge:
    """``open_channel(command)`` must return a Paramiko channel already running ``command``."""

    def __init__(self, open_channel: Callable[[str], object]):
        self._open_channel = open_channel
        self._dir = tempfile.mkdtemp(prefix="orch-rsync-")  # 0700: only this user can connect
        self.path = os.path.join(self._dir, "s")
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.path)
        self._sock.listen(8)
        self._closed = False
        threading.Thread(target=self._serve, name="orch-rsync-bridge", daemon=True).start()

    def rsh(self) -> List[str]:
        """rsync's -e program (as argv)."""
        return [sys.executable, "-S", TUNNEL, self.path]

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
            command = json.loads(header)["command"]
            try:
                chan = self._open_channel(command)
            except Exception as exc:  # lost connection: rsync reports it with our words
                send(b"E", f"orch: could not open an SSH channel for rsync: {exc}\n".encode())
                send(b"X", struct.pack(">i", 255))
                return
            pumps = [
                threading.Thread(target=self._to_host, args=(conn, chan), daemon=True),
                threading.Thread(target=self._from_host, args=(chan.recv, b"O", send), daemon=True),
                threading.Thread(target=self._from_host, args=(chan.recv_stderr, b"E", send), daemon=True),
            ]
            for t in pumps:
                t.start()
            pumps[1].join()
            pumps[2].join()
            send(b"X", struct.pack(">i", chan.recv_exit_status()))
            chan.close()
        except Exception:  # the tunnel went away (rsync killed), or a bad header: nothing left to tell it
            pass
        finally:
            conn.close()

    @staticmethod
    def _to_host(conn: socket.socket, chan) -> None:
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                chan.sendall(data)
            chan.shutdown_write()
        except Exception:  # OSError, EOFError, paramiko.SSHException: the other side is gone
            pass

    @staticmethod
    def _from_host(recv, kind: bytes, send) -> None:
        try:
            while True:
                data = recv(65536)
                if not data:
                    return
                send(kind, data)
        except Exception:  # the tunnel or the connection is gone; the exit status says the rest
            return
