"""An SFTP server gone wrong, run by the test sshd as its sftp subsystem (stdin/stdout are
the channel).  What it does is read from the file named by argv[1] when it starts:

- ``stall``: reads requests and never answers, not even the version handshake;
- ``endless``: answers the handshake and OPENDIR, then every READDIR with 1000 new names,
  without end.

Only the SFTP version 3 messages these need are spoken (draft-ietf-secsh-filexfer-02).
"""

import struct
import sys

INIT, VERSION, CLOSE, OPENDIR, READDIR = 1, 2, 4, 11, 12
STATUS, HANDLE, NAME = 101, 102, 104
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


def main() -> None:
    mode = open(sys.argv[1]).read().strip()
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
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
