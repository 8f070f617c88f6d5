"""The limits on one SSH command's waits (transport/ssh.py _Deadline), without a host."""

import socket
import threading
import time

import pytest

from orchestrator.transport.base import read_capped
from orchestrator.transport.ssh import _Deadline


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_without_an_overall_limit_every_wait_is_the_idle_limit():
    clock = Clock()
    limits = _Deadline(5, clock=clock)
    clock.now += 10_000
    assert limits.wait_s() == 5


def test_an_overall_limit_cuts_the_waits_and_ends_them():
    clock = Clock()
    limits = _Deadline(120, 120, clock=clock)
    assert limits.wait_s() == 120
    clock.now += 100
    assert limits.wait_s() == pytest.approx(20)
    clock.now += 20
    with pytest.raises(socket.timeout):
        limits.wait_s()


def test_the_idle_limit_still_bounds_a_wait_inside_a_longer_overall_one():
    clock = Clock()
    limits = _Deadline(5, 300, clock=clock)
    assert limits.wait_s() == 5 and not limits.expired()
    clock.now += 298
    assert limits.wait_s() == pytest.approx(2)
    clock.now += 2
    assert limits.expired() and not _Deadline(5, clock=clock).expired()  # no overall limit: never


class Trickle:
    """A channel whose host sends one byte every 10 ms, forever: never silent long enough
    for a per-read timeout."""

    def __init__(self):
        self.timeouts = []
        self.status_event = threading.Event()

    def settimeout(self, seconds):
        self.timeouts.append(seconds)

    def recv(self, nbytes):
        time.sleep(0.01)
        return b" "

    def recv_exit_status(self):
        return 0


def test_a_trickle_is_stopped_at_the_overall_limit():
    chan = Trickle()
    limits = _Deadline(0.3, 0.3)
    started = time.monotonic()
    with pytest.raises(socket.timeout):
        read_capped(limits.recv(chan, chan.recv), 1 << 20, lambda: None)
    assert time.monotonic() - started < 2
    assert len(chan.timeouts) > 3 and chan.timeouts == sorted(chan.timeouts, reverse=True)


def test_the_exit_status_wait_is_bounded():
    chan = Trickle()  # its status never comes
    started = time.monotonic()
    with pytest.raises(socket.timeout):
        _Deadline(0.2).exit_status(chan)
    assert time.monotonic() - started < 2
    chan.status_event.set()
    assert _Deadline(0.2).exit_status(chan) == 0
