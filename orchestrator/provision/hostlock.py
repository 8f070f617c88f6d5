"""A lock on the host that keeps two `orch bootstrap` runs of one host apart.

Two bootstraps of one host at once (two terminals, two laptops) would each probe, find
the same step to do and run it twice into the same prefix: two Miniconda installers, two
pip installs into one env.  The lock is a directory made with ``mkdir`` -- atomic on
every POSIX filesystem, and it needs nothing installed, since bootstrap runs before the
host has a usable python -- holding ``owner.json``: who holds it, since when, and a
random token.

Liveness is a heartbeat: the holder touches the directory while it works (on every poll
of a detached step, and every 30 s during an attached one, from a loop that ends with
its shell).  A lock untouched for ``STALE_S`` belongs to a controller that crashed or
lost the network, and is taken over with a warning naming the old owner;
``--break-lock`` takes any lock.  Release removes the lock only while it still holds
the holder's token, so a controller whose lock was taken over never removes its
successor's.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
import time
import uuid
from typing import List

from orchestrator.contract.hostdocs import loads
from orchestrator.errors import ExitCode, OrchError
from orchestrator.transport import shell

STALE_S = 300
HEARTBEAT_S = 30

# Static shell programs; inputs arrive as positional arguments, quoted by shell.join.
_ACQUIRE = r"""
lock="$1"; owner="$2"; stale="$3"; brk="$4"
mkdir -p "$(dirname "$lock")" || exit 1
old=""; age=""
if [ -d "$lock" ]; then
  old=$(head -c 2000 "$lock/owner.json" 2>/dev/null | tr -d '\n')
  mt=$(date -r "$lock" +%s 2>/dev/null)
  [ -n "$mt" ] && age=$(( $(date +%s) - mt ))
  if [ "$brk" = 1 ] || { [ -n "$age" ] && [ "$age" -gt "$stale" ]; }; then
    mv "$lock" "$lock.old.$$" 2>/dev/null && rm -rf "$lock.old.$$"
  fi
fi
if mkdir "$lock" 2>/dev/null; then
  printf '%s\n' "$owner" > "$lock/owner.json"
  printf '@@acquired\n@@age %s\n@@old %s\n' "$age" "$old"
else
  printf '@@held\n@@age %s\n@@old %s\n' "$age" "$old"
fi
"""
_RELEASE = r"""grep -qF "$2" "$1/owner.json" 2>/dev/null && rm -rf "$1"; exit 0"""
# Runs "$@" while a background loop touches the lock; the loop ends with this shell
# (kill -0 $$), so a dropped connection stops the heartbeat and the lock goes stale.
_WITH_HEARTBEAT = r"""
lock="$1"; token="$2"; every="$3"; shift 3
( while sleep "$every" && kill -0 $$ 2>/dev/null; do
    grep -qF "$token" "$lock/owner.json" 2>/dev/null && touch "$lock"
  done ) </dev/null >/dev/null 2>&1 &
hb=$!
"$@"; rc=$?
kill "$hb" 2>/dev/null
exit $rc
"""
# Appended to a poll: touch the lock if it is still ours, say whether it is.
POLL_SNIPPET = r"""
if [ -n "${LOCK:-}" ]; then
  if grep -qF "$LOCK_TOKEN" "$LOCK/owner.json" 2>/dev/null; then touch "$LOCK"; echo "@@lock ok"
  else echo "@@lock lost"; fi
fi
"""


def _parse(text: str) -> dict:
    info = {}
    for line in text.splitlines():
        if line.startswith("@@"):
            key, _, value = line[2:].partition(" ")
            info[key] = value.strip()
    return info


def describe_owner(raw: str) -> str:
    """'bob@laptop (pid 123), started 14:02' from owner.json's text (or what is known)."""
    try:
        o = loads(raw)
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(o["started"])))
        return f"{o.get('user', '?')}@{o.get('controller', '?')} (pid {o.get('pid', '?')}), started {started}"
    except (ValueError, KeyError, TypeError, RecursionError, OverflowError, OSError):
        return "an unknown owner"  # owner.json is the host's: anything may be in it


class HostLock:
    """The lock at ``path`` on the host behind ``transport``; ``purpose`` names the holder's command."""

    POLL_SNIPPET = POLL_SNIPPET  # for pollers that only see the lock (backends/tmux_steps.py)

    def __init__(self, transport, path: str, host: str, purpose: str):
        self.t = transport
        self.path = path
        self.host = host
        self.purpose = purpose
        self.token = uuid.uuid4().hex
        self.held = False
        self.heartbeat_s: float = HEARTBEAT_S  # seconds between with_heartbeat's touches (a test sets less)

    def owner_json(self) -> str:
        return json.dumps(
            {
                "token": self.token,
                "controller": socket.gethostname(),
                "user": getpass.getuser(),
                "pid": os.getpid(),
                "started": time.time(),
                "command": self.purpose,
            },
            sort_keys=True,
        )

    def acquire(self, break_lock: bool = False, warn=None) -> None:
        """Take the lock or raise OrchError (RUN_STATE) naming who holds it."""
        argv = [
            "bash",
            "-c",
            _ACQUIRE,
            "orch-lock",
            self.path,
            self.owner_json(),
            str(STALE_S),
            "1" if break_lock else "0",
        ]
        res = self.t.run(shell.join(argv), check=False, timeout=60)
        info = _parse(res.stdout)
        if res.rc != 0 or not ({"acquired", "held"} & set(info)):
            raise OrchError(
                f"could not take the bootstrap lock {self.path} on {self.host}: "
                f"{(res.stderr or res.stdout).strip()[:300]}",
                ExitCode.REMOTE,
            )
        old, age = info.get("old", ""), info.get("age", "")
        if "held" in info:
            since = f", last heartbeat {age} s ago" if age else ""
            raise OrchError(
                f"another `{self.purpose}` holds the lock on {self.host}: {describe_owner(old)}{since}",
                ExitCode.RUN_STATE,
                hint=f"wait for it to finish; if it is no longer running (its controller crashed or lost the network), "
                f"re-run with --break-lock (a lock untouched for {STALE_S // 60} minutes is taken over by itself)",
            )
        self.held = True
        if old and warn is not None:
            how = "broke" if break_lock else f"took over a stale (untouched for {age} s)"
            warn(f"{how} lock of `{self.purpose}` by {describe_owner(old)}")

    def poll_args(self) -> List[str]:
        """The arguments that make a poll (POLL_SNIPPET, after LOCK=$7 LOCK_TOKEN=$8) keep the lock alive."""
        return [self.path, self.token] if self.held else []

    def with_heartbeat(self, argv: List[str]) -> List[str]:
        """``argv`` wrapped so the lock stays fresh while it runs (for long attached commands)."""
        if not self.held:
            return list(argv)
        return ["bash", "-c", _WITH_HEARTBEAT, "orch-heartbeat", self.path, self.token, f"{self.heartbeat_s:g}", *argv]

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        try:
            self.t.run(
                shell.join(["bash", "-c", _RELEASE, "orch-unlock", self.path, self.token]), check=False, timeout=30
            )
        except OrchError:
            pass  # unreachable now: the lock goes stale and the next bootstrap takes it over

    def lost_error(self) -> OrchError:
        self.held = False
        return OrchError(
            f"the lock of `{self.purpose}` on {self.host} ({self.path}) was taken by another controller "
            "while this one ran",
            ExitCode.RUN_STATE,
            hint="let that one finish; this one stopped following (the step itself goes on in tmux)",
        )
