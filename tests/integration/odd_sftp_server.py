"""An SFTP server gone wrong, run by the test sshd as its sftp subsystem (stdin/stdout are
the channel).  What it does is read from the file named by argv[1] when it starts:

- ``stall``: reads requests and never answers, not even the version handshake;
- ``endless``: answers the handshake and OPENDIR, then every READDIR with 1000 new names,
  without end;
- ``open-attrs``: OpenSSH's own sftp-server answers everything (listings, stat) except
  OPEN, which gets an ATTRS reply, a message of the wrong kind (paramiko: SFTPError
  "Expected handle").

Only the SFTP version 3 messages these need are spoken (draft-ietf-secsh-filexfer-02).
"""

import os
import struct
import subprocess
import sys
import threading

INIT, VERSION, OPEN, CLOSE, OPENDIR, READDIR = 1, 2, 3, 4, 11, 12
STATUS, HANDLE, NAME, ATTRS = 101, 102, 104, 105
SERVERS = ("/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server", "/usr/libexec/sftp-server")
OK, FAILURE = 0, 4
BATCH = 1000


def string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def packets(stream):
    while True:
        head = stream.read(4)
        if len(head) < 4:
            return
        body = stream.read(struct.unpack(">I", head)[0])
        yield body[0], body[1:]


def send(out, kind: int, payload: bytes) -> None:
    out.write(struct.pack(">IB", len(payload) + 1, kind) + payload)
    out.flush()


def names(start: int) -> bytes:
    entries = b"".join(
        string(b"e%09d" % i) + string(b"-rw-r--r-- 1 u u 0 Jan 1 00:00 e%09d" % i) + struct.pack(">I", 0)
        for i in range(start, start + BATCH)
    )
    return struct.pack(">I", BATCH) + entries


def wrong_replies(stdin, stdout) -> None:
    """``open-attrs``: relay to the real sftp-server, but answer every OPEN with ATTRS."""
    server = next(path for path in SERVERS if os.path.exists(path))
    real = subprocess.Popen([server], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    lock = threading.Lock()

    def send_raw(data: bytes) -> None:
        with lock:
            stdout.write(data)
            stdout.flush()

    def relay() -> None:
        while True:
            head = real.stdout.read(4)
            if len(head) < 4:
                return
            send_raw(head + real.stdout.read(struct.unpack(">I", head)[0]))

    threading.Thread(target=relay, daemon=True).start()
    for kind, body in packets(stdin):
        if kind == OPEN:
            reply = body[:4] + struct.pack(">IQ", 1, 0)  # request id, attributes: a size of 0
            send_raw(struct.pack(">IB", len(reply) + 1, ATTRS) + reply)
            continue
        real.stdin.write(struct.pack(">IB", len(body) + 1, kind) + body)
        real.stdin.flush()
    real.stdin.close()
    real.wait()


def main() -> None:
    mode = open(sys.argv[1]).read().strip()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    if mode == "open-attrs":
        return wrong_replies(stdin, stdout)
    served = 0
    for kind, body in packets(stdin):
        if mode == "stall":
            continue
        if kind == INIT:
            send(stdout, VERSION, struct.pack(">I", 3))
            continue
        rid = body[:4]
        if kind == OPENDIR:
            send(stdout, HANDLE, rid + string(b"h"))
        elif kind == READDIR:
            send(stdout, NAME, rid + names(served))
            served += BATCH
        elif kind == CLOSE:
            send(stdout, STATUS, rid + struct.pack(">I", OK) + string(b"") + string(b""))
        else:
            send(stdout, STATUS, rid + struct.pack(">I", FAILURE) + string(b"not served here") + string(b""))


if __name__ == "__main__":
    try:
        main()
    except BrokenPipeError:  # the client went away
        pass
