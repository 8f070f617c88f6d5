"""Is the host still answering?  ssh(1)'s ServerAliveInterval and ServerAliveCountMax
for one Paramiko connection.

Paramiko's own keepalive (Transport.set_keepalive) sends `keepalive@lag.net` with
want_reply false: it keeps a NAT's entry open but learns nothing, so a host that stops
answering (suspended, its network gone, a NAT that dropped the flow) held a wait with no
limit of its own (`orch logs -f` on quiet logs) for ever.  Here every `keepalive` seconds a
`keepalive@openssh.com` global request asks for a reply (sshd answers it, with a failure,
as it answers any request it does not know), and any packet from the host counts as an
answer, as in ssh.  Once nothing has come for `keepalive` x `keepalive_count` seconds the
connection is closed, which ends every wait on it (its channels read end-of-file), and
``verdict`` says why for the error the waiter raises.  A host that is merely quiet (a job
that logs nothing for an hour) answers every probe and is never given up.
"""

from __future__ import annotations

import threading
import time
from typing import Optional

from orchestrator.config.sshconfig import paramiko


class Liveness:
    """Watches TRANSPORT (a connected paramiko.Transport) from a daemon thread."""

    def __init__(self, transport, interval: float, count_max: int, clock=time.monotonic):
        self.transport = transport
        self.interval = interval
        self.count_max = count_max
        self._clock = clock
        self.heard = clock()
        self.verdict: Optional[str] = None
        self._stop = threading.Event()
        self._sending = threading.Lock()  # at most one probe in flight to a stalled host
        # Every packet the host sends passes through the packetizer's read_message, in
        # Paramiko's transport thread: the one place that sees them all.
        read = transport.packetizer.read_message

        def read_and_note():
            got = read()
            self.heard = self._clock()
            return got

        transport.packetizer.read_message = read_and_note

    @property
    def limit_s(self) -> float:
        return self.interval * self.count_max

    def start(self) -> "Liveness":
        threading.Thread(target=self._watch, name="orch keepalive", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def silent_too_long(self) -> bool:
        return self._clock() - self.heard >= self.limit_s

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            if not self.transport.is_active():
                return
            if self.silent_too_long():
                self.verdict = (
                    f"no answer to {self.count_max} keepalives in {self.limit_s:.0f} s "
                    f"(keepalive: {self.interval:g}, keepalive_count: {self.count_max})"
                )
                self.transport.close()  # wakes every reader of its channels
                return
            # Sent from a thread of its own: a send blocks while a stalled host's window is
            # full or a key exchange waits for it, and the watch must go on counting.
            if self._sending.acquire(blocking=False):
                threading.Thread(target=self._probe, name="orch keepalive probe", daemon=True).start()

    def _probe(self) -> None:
        try:
            m = paramiko.Message()
            m.add_byte(paramiko.common.cMSG_GLOBAL_REQUEST)
            m.add_string("keepalive@openssh.com")
            m.add_boolean(True)  # want_reply: the answer is the point
            self.transport._send_user_message(m)
        except (OSError, EOFError, paramiko.SSHException):
            pass  # a dead connection is the watch's to say
        finally:
            self._sending.release()
