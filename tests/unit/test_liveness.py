"""transport/liveness.py: ssh(1)'s ServerAliveCountMax rule on a fake Paramiko transport.

After each `keepalive` seconds with nothing from the host: give up if `keepalive_count`
probes are unanswered already, else send one more; anything from the host sets the count
back to 0.  Through the real sshd: tests/integration/test_dead_peer.py."""

from __future__ import annotations

import threading
import time

import timing

from orchestrator.transport.liveness import Liveness


class FakeTransport:
    """What Liveness uses of a paramiko.Transport.  ANSWERS: the host replies to each probe
    at once (the reply passes through the packetizer's read_message, as Paramiko's would)."""

    def __init__(self, answers: bool):
        self.answers = answers
        self.sent = 0
        self.closed = threading.Event()
        self.packetizer = type("Packetizer", (), {})()
        self.packetizer.read_message = lambda: "a packet"

    def is_active(self) -> bool:
        return not self.closed.is_set()

    def close(self) -> None:
        self.closed.set()

    def _send_user_message(self, message) -> None:
        self.sent += 1
        if self.answers:
            self.packetizer.read_message()  # the host's reply


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _wait_sends(watch: Liveness, n: int) -> None:
    deadline = time.monotonic() + timing.scaled(5)
    while watch.transport.sent < n or not watch._sending.acquire(blocking=False):
        assert time.monotonic() < deadline, "the probe was not sent"
        time.sleep(0.001)
    watch._sending.release()


def test_a_dead_peer_is_given_up_after_count_unanswered_probes_counting_only_those_sent():
    clock = Clock()
    t = FakeTransport(answers=False)
    watch = Liveness(t, 15, 3, clock=clock)
    for n in (1, 2, 3):  # each silent interval sends one more probe
        clock.now += 15
        assert watch.check()
        _wait_sends(watch, n)
    clock.now += 15
    assert not watch.check()  # the 4th silent interval: 3 unanswered, given up at (3 + 1) x 15 s
    assert watch.verdict == "no answer to 3 keepalives in 60 s (keepalive: 15, keepalive_count: 3)"


def test_with_count_1_a_host_that_answers_is_never_given_up():
    """The old watch gave up at its first check (silence == interval x 1) before any probe."""
    clock = Clock()
    t = FakeTransport(answers=True)
    watch = Liveness(t, 5, 1, clock=clock)
    for n in range(1, 6):
        clock.now += 5
        assert watch.check(), watch.verdict
        _wait_sends(watch, n)
        assert watch.unanswered == 0  # the reply set the count back
    t.answers = False
    clock.now += 5
    assert watch.check()  # the probe goes out...
    _wait_sends(watch, 6)
    clock.now += 5
    assert not watch.check()  # ...and one interval later, unanswered, the host is given up
    assert watch.verdict == "no answer to 1 keepalive in 10 s (keepalive: 5, keepalive_count: 1)"


def test_a_probe_whose_send_never_finishes_is_not_counted_as_sent():
    clock = Clock()
    t = FakeTransport(answers=False)
    release = threading.Event()
    t._send_user_message = lambda m: release.wait(timing.scaled(10))  # a stalled host: the send blocks
    watch = Liveness(t, 1, 2, clock=clock)
    try:
        for _ in range(2):
            clock.now += 1
            assert watch.check()
        clock.now += 1
        assert not watch.check()
        assert watch.verdict == (
            "no answer in 3 s, and the host took no data (0 of 2 keepalives sent) (keepalive: 1, keepalive_count: 2)"
        )
    finally:
        release.set()


def test_the_watch_thread_keeps_a_quiet_host_with_count_1():
    """Real threads and a real clock: a host that answers each probe at once stays for many
    intervals (the old watch closed it at the first)."""
    interval = timing.scaled(0.2)
    t = FakeTransport(answers=True)
    watch = Liveness(t, interval, 1).start()
    try:
        assert not t.closed.wait(interval * 8), watch.verdict
        assert t.sent >= 3
    finally:
        watch.stop()


def test_the_watch_thread_gives_up_a_dead_peer():
    interval = 0.05
    t = FakeTransport(answers=False)
    watch = Liveness(t, interval, 2).start()
    assert t.closed.wait(timing.scaled(10)), "a dead peer was never given up"
    assert t.sent == 2 and watch.verdict.startswith("no answer to 2 keepalives in "), watch.verdict


def test_a_huge_interval_does_not_end_the_watch_thread():
    """keepalive: 1e12 raised OverflowError in Event.wait (timestamp too large): the thread
    died and a host that stopped answering was never noticed."""
    errors = []
    hook, threading.excepthook = threading.excepthook, lambda args: errors.append(args.exc_value)
    try:
        t = FakeTransport(answers=False)
        before = set(threading.enumerate())
        watch = Liveness(t, 1e12, 3).start()
        time.sleep(0.2)
        alive = [th for th in set(threading.enumerate()) - before if th.name == "orch keepalive"]
        assert alive and not errors, errors
        watch.stop()
        deadline = time.monotonic() + timing.scaled(5)
        while any(th.is_alive() for th in alive):
            assert time.monotonic() < deadline, "stop() did not end the watch"
            time.sleep(0.01)
    finally:
        threading.excepthook = hook
