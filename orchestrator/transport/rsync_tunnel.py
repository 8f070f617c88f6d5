"""rsync's remote shell when orch syncs files: ``rsync -e "python -S rsync_tunnel.py SOCKET"``.

rsync runs its remote shell as ``PROG [-l USER] [-p PORT] HOST COMMAND...`` and talks the
rsync protocol over the program's stdin/stdout.  Instead of logging in again with
OpenSSH (a second key exchange and authentication per rsync call, with its own idea of
keys, known hosts and jump hosts), this program hands the command to the orch process
that started rsync, through the Unix socket SOCKET; that process runs it on a new channel
of its one verified SSH connection (orchestrator/transport/rsync_bridge.py) and relays the bytes.

Wire format: this side sends one JSON line {"command": ..., "call": ...} (``call``: the
$ORCH_RSYNC_CALL orch gave the rsync that started this, so the bridge can tell that call
why it gave up), then stdin's bytes raw (half-closing at EOF).  The other side sends
frames: 1 byte kind (O stdout, E stderr, X exit status), 4 bytes big-endian length,
payload; X's payload is a signed 4-byte int.

Standard library only, run with ``python -S``: it starts in tens of milliseconds.
"""

import json
import os
import select
import socket
import struct
import sys
import threading

CALL_ENV = "ORCH_RSYNC_CALL"  # set by orch for each rsync it runs (orchestrator/transport/rsync.py)


def remote_command(args):
    """The command words after rsync's remote-shell options and the host, joined with
    spaces for the remote shell, exactly as ssh(1) does (rsync quotes them for that)."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 2 if args[i] in ("-l", "-p") else 1
    return " ".join(args[i + 1 :])


def _pump_stdin(sock):
    try:
        while True:
            try:
                data = os.read(0, 65536)
            except BlockingIOError:  # rsync may hand us non-blocking pipes
                select.select([0], [], [])
                continue
            if not data:
                break
            sock.sendall(data)
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:  # non-blocking pipe, full: wait until rsync reads
            select.select([], [fd], [])
            continue
        view = view[n:]


def main(argv):
    if len(argv) < 3:
        sys.stderr.write("usage: rsync_tunnel.py SOCKET [-l USER] [-p PORT] HOST COMMAND...\n")
        return 255
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(argv[1])
    except OSError as exc:
        sys.stderr.write(f"orch: cannot reach the orch process that started rsync ({argv[1]}): {exc}\n")
        return 255
    header = {"command": remote_command(argv[2:]), "call": os.environ.get(CALL_ENV, "")}
    sock.sendall(json.dumps(header).encode() + b"\n")
    threading.Thread(target=_pump_stdin, args=(sock,), daemon=True).start()
    buf = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            sys.stderr.write("orch: the SSH connection closed before the remote command ended\n")
            return 255
        buf += chunk
        while len(buf) >= 5:
            (n,) = struct.unpack(">I", buf[1:5])
            if len(buf) < 5 + n:
                break
            kind, payload, buf = buf[:1], buf[5 : 5 + n], buf[5 + n :]
            if kind == b"O":
                _write_all(1, payload)
            elif kind == b"E":
                _write_all(2, payload)
            elif kind == b"X":
                return struct.unpack(">i", payload)[0]


if __name__ == "__main__":
    sys.exit(main(sys.argv))
