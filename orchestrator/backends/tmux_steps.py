"""Bootstrap's long steps, detached in tmux: everything bootstrap knows about tmux is here.

The step runner (orchestrator/provision/steps.py) gets this from the host's job backend
(``TmuxBackend.detached_steps``) and only calls launch / poll / log_tail / describe /
stop_hint, so another backend can run long steps its own way (e.g. as batch jobs).
"""

from __future__ import annotations

import re
from typing import List, Tuple

from orchestrator.contract.bootsteps import Layout, Step
from orchestrator.contract.hostdocs import number, parse_json_object
from orchestrator.errors import ExitCode, OrchError
from orchestrator.transport import shell

# Static shell programs; their inputs arrive as positional arguments ("$1"...), quoted by shell.join.
_LAUNCH = r"""
sock="$1"; name="$2"; pathfile="$3"; started="$4"; inner="$5"
mkdir -p "$(dirname "$pathfile")" "$(dirname "$sock")"
printf '%s\n' "$PATH" > "$pathfile"
rm -f "$started"
tmux -S "$sock" new-session -d -s "$name" "$inner" || exit 1
i=0
while [ $i -lt 100 ]; do [ -f "$started" ] && exit 0; sleep 0.1; i=$((i + 1)); done
echo "the tmux session $name did not start its step" >&2
exit 1
"""
# How every poll script ends (a tmux step's, a Slurm step's): the result file, the bootstrap
# lock refreshed (LOCK, LOCK_TOKEN, set before), the log's next chunk from offset $off.
POLL_END = r"""
printf '@@result %s\n' "$(head -c 400 "$res" 2>/dev/null | tr -d '\n')"
@@LOCK_SNIPPET@@
size=$(wc -c < "$log" 2>/dev/null || echo 0); size=$((size + 0))
n=$((size - off)); [ "$n" -lt 0 ] && n=0; [ "$n" -gt 65536 ] && n=65536
printf '@@chunk %s\n' "$n"
[ "$n" -gt 0 ] && tail -c +"$((off + 1))" "$log" | head -c "$n"
exit 0
"""
_POLL = (
    r"""
log="$1"; off="$2"; res="$3"; sock="$4"; name="$5"; started="$6"; LOCK="${7:-}"; LOCK_TOKEN="${8:-}"
printf '@@now %s\n' "$(date +%s)"
printf '@@started %s\n' "$(head -c 400 "$started" 2>/dev/null | tr -d '\n')"
if tmux -S "$sock" has-session -t "=$name" 2>/dev/null; then echo "@@alive 1"; else echo "@@alive 0"; fi"""
    + POLL_END
)
_TAIL = r"""tail -c 200000 "$1" 2>/dev/null; exit 0"""


class TmuxSteps:
    """How a long step runs detached: everything bootstrap knows about tmux is here.

    A step is a tmux session `orch-bootstrap-STEP` on the jobs' socket; run_step.sh inside
    it writes the `started` file when it begins and the `result` file ({"rc": ...}) when it
    ends, and its output goes to the step's log. Following it is polling: one round trip
    reads the clock, `started`, whether the session is alive, `result`, the next chunk of the
    log from an offset, and refreshes the bootstrap lock.
    """

    def __init__(self, transport, layout: Layout):
        self.t = transport
        self.layout = layout

    def must_detach(self, step: Step) -> bool:
        """Whether a step the plan runs attached must run detached anyway: never in tmux."""
        return False

    def session(self, step: Step) -> str:
        return self.layout.session(step.name)

    def describe(self, step: Step, socket: bool = False) -> str:
        where = f"tmux session {self.session(step)}"
        return where + (f" (socket {self.layout.tmux_socket})" if socket else "")

    def stop_hint(self, step: Step) -> str:
        return f"tmux -S {self.layout.tmux_socket} kill-session -t {self.session(step)}"

    def path_file(self, step: Step) -> str:
        """Where launch records the login shell's PATH: run_step.sh --path-file gives it to the
        step (a tmux server started earlier has another environment)."""
        return f"{self.layout.logs}/{step.name}.path"

    def launch(self, step: Step, argv: List[str], host: str) -> None:
        """Start argv (run_step.sh ... --path-file self.path_file(step)) detached; return once
        run_step.sh has begun (its `started` file), else raise."""
        layout = self.layout
        res = self.t.run(
            shell.join(
                [
                    "bash",
                    "-c",
                    _LAUNCH,
                    "orch-launch",
                    layout.tmux_socket,
                    self.session(step),
                    self.path_file(step),
                    layout.started(step.name),
                    shell.join(argv),
                ]
            ),
            check=False,
            timeout=60,
        )
        if res.rc != 0:
            raise OrchError(
                f"could not start step {step.name} in tmux on {host}: {(res.stderr or res.stdout).strip()[:400]}",
                ExitCode.REMOTE,
            )

    def poll(self, step: Step, offset: int, lock) -> Tuple[dict, str]:
        """-> (now / started / alive / result / lock / chunk size, the log's text from offset).
        ``lock``: the bootstrap lock (orchestrator/provision/hostlock.py); each poll refreshes
        it with its constant ``POLL_SNIPPET`` and ``poll_args()``."""
        layout = self.layout
        script = _POLL.replace("@@LOCK_SNIPPET@@", lock.POLL_SNIPPET)
        argv = [
            "bash",
            "-c",
            script,
            "orch-poll",
            layout.log(step.name),
            str(offset),
            layout.result(step.name),
            layout.tmux_socket,
            self.session(step),
            layout.started(step.name),
            *lock.poll_args(),
        ]
        return parse_poll(self.t.run(shell.join(argv), check=False, timeout=60).stdout)

    def log_tail(self, step: Step) -> str:
        res = self.t.run(
            shell.join(["bash", "-c", _TAIL, "orch-tail", self.layout.log(step.name)]), check=False, timeout=60
        )
        return res.stdout


def parse_poll(text: str) -> Tuple[dict, str]:
    """What a poll of a detached step printed (the host's words: a value of the wrong
    form is left out, as if not said)."""
    info: dict = {}
    head, sep, rest = text.partition("@@chunk ")
    for line in head.splitlines():
        if line.startswith("@@now "):
            try:
                now = number(float(line[6:].strip()))
            except ValueError:
                now = None
            if now is not None:
                info["now"] = now
        elif line.startswith("@@alive "):
            info["alive"] = line[8:].strip() == "1"
        elif line.startswith("@@started "):
            info["started"] = parse_json_object(line[10:].strip())
        elif line.startswith("@@result "):
            info["result"] = parse_json_object(line[9:].strip())
        elif line.startswith("@@lock "):
            info["lock"] = line[7:].strip()
    chunk = ""
    if sep:
        count, _, chunk = rest.partition("\n")
        info["chunk"] = int(count.strip()) if re.fullmatch(r"[0-9]{1,15}", count.strip()) else 0
    return info, chunk
