"""Is the host still answering?  ssh(1)'s ServerAliveInterval and ServerAliveCountMax
for one Paramiko connection.

Paramiko's own keepalive (Transport.set_keepalive) sends `keepalive@lag.net` with
want_reply false: it keeps a NAT's entry open but learns nothing, so a host that stops
answering (suspended, its network gone, a NAT that dropped the flow) held a wait with no
limit of its own (`orch logs -f` on quiet logs) for ever.  Here every `keepalive` seconds a
`keepalive@openssh.com` global request asks for a reply (sshd answers it, with a failure,
as it answers any request it does not know), and any packet from the host counts as an
answer, as in ssh.  ssh(1)'s ServerAliveCountMax rule: each time `keepalive` seconds pass
with nothing from the host, if `keepalive_count` probes have gone unanswered already the
connection is closed, else one more probe is sent; anything from the host sets the count
back to 0.  So a host that stopped answering is given up about (keepalive_count + 1) x
keepalive seconds after it last said anything (60 s with the defaults).  Closing ends every
wait on the connection (its channels read end-of-file), and ``verdict`` says why for the
error the waiter raises.  A host that is merely quiet (a job that logs nothing for an hour)
answers every probe and is never given up, whatever the count (1 included: the probe goes
out before the count is checked again).
"""

from __future__ import annotations

import threading
import time
from typing import Optional

from orchestrator.config.sshconfig import paramiko

# The longest single wait of the watch: a huge interval (keepalive: 1e12) must not reach
# Event.wait, which raises OverflowError past threading.TIMEOUT_MAX and would end the watch.
LONGEST_WAIT_S = 3600.0


class Liveness:
    """Watches TRANSPORT (a connected paramiko.Transport) from a daemon thread."""

    def __init__(self, transport, interval: float, count_max: int, clock=time.monotonic):
        self.transport = transport
        self.interval = interval
        self.count_max = count_max
        self._clock = clock
        self.heard = clock()  # when the host last sent anything
        self.probed = self.heard  # when the last probe went out (the next is due interval after both)
        self.unanswered = 0  # probes handed to the sender since the host last said anything
        self.sent = 0  # of those, the ones whose send finished (a stalled host may take none)
        self.verdict: Optional[str] = None
        self._stop = threading.Event()
        self._lock = threading.Lock()  # the counts: the watch and Paramiko's reader both change them
        self._sending = threading.Lock()  # at most one probe in flight to a stalled host
        # Every packet the host sends passes through the packetizer's read_message, in
        # Paramiko's transport thread: the one place that sees them all.
        read = transport.packetizer.read_message

        def read_and_note():
            got = read()
            with self._lock:
                self.heard = self._clock()
                self.unanswered = self.sent = 0
            return got

        transport.packetizer.read_message = read_and_note

    def start(self) -> "Liveness":
        threading.Thread(target=self._watch, name="orch keepalive", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _due_in(self) -> float:
        """Seconds until the next check: `interval` after the later of the host's last packet
        and the last probe."""
        with self._lock:
            return max(self.heard, self.probed) + self.interval - self._clock()

    def _watch(self) -> None:
        while True:
            if self._stop.wait(min(max(self._due_in(), 0.0), LONGEST_WAIT_S)):
                return
            if not self.transport.is_active():
                return
            if self._due_in() > 0:
                continue  # the host spoke meanwhile (or the wait was clamped): not due yet
            if not self.check():
                self.transport.close()  # wakes every reader of its channels
                return

    def check(self) -> bool:
        """One interval has passed with nothing from the host: send one more probe, or (False)
        give the connection up when count_max of them are unanswered already."""
        with self._lock:
            if self.unanswered >= self.count_max:
                silent, n = self._clock() - self.heard, self.sent  # only the probes that went out
                said = f"no answer to {n} keepalive{'' if n == 1 else 's'} in {silent:.0f} s"
                if n < self.unanswered:  # a send still blocked: the host's side takes no data
                    said = (
                        f"no answer in {silent:.0f} s, and the host took no data "
                        f"({n} of {self.unanswered} keepalives sent)"
                    )
                self.verdict = f"{said} (keepalive: {self.interval:g}, keepalive_count: {self.count_max})"
                return False
            self.unanswered += 1
            self.probed = self._clock()
            heard = self.heard
        # Sent from a thread of its own: a send blocks while a stalled host's window is full
        # or a key exchange waits for it, and the watch must go on counting.
        if self._sending.acquire(blocking=False):
            threading.Thread(target=self._probe, args=(heard,), name="orch keepalive probe", daemon=True).start()
        return True

    def _probe(self, heard: float) -> None:
        try:
            m = paramiko.Message()
            m.add_byte(paramiko.common.cMSG_GLOBAL_REQUEST)
            m.add_string("keepalive@openssh.com")
            m.add_boolean(True)  # want_reply: the answer is the point
            self.transport._send_user_message(m)
            with self._lock:
                if self.heard == heard:  # not answered already (then the count is back at 0)
                    self.sent += 1
        except (OSError, EOFError, paramiko.SSHException):
            pass  # a dead connection is the watch's to say
        finally:
            self._sending.release()
