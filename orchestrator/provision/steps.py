"""Running the plan's steps on the host: attached over the transport, or detached and followed.

Every step runs under bootstrap/run_step.sh, which writes <workdir>/bootstrap/logs/
STEP.{log,started,result}. A short step runs attached (one round trip, its output is the
answer). A long one (installers, pip, a flash-attn build) runs detached in tmux, so a closed
laptop or a dropped connection does not stop it: `TmuxSteps` starts it and polls its log and
result file; `Runner` follows it, reporting through a `Progress`.
"""
from __future__ import annotations

import json
import time
from typing import Dict, List, Optional, Tuple

from orchestrator.errors import ExitCode, OrchError
from orchestrator.provision import flashattn, hostlock
from orchestrator.provision.plan import Layout, Plan, Step
from orchestrator.provision.probe import parse_json_object
from orchestrator.provision.progress import Progress
from orchestrator.transport import shell

POLL_S = 1.0
STATUS_EVERY_S = 30.0
MAX_LINES_PER_POLL = 40

# Static shell programs; their inputs arrive as positional arguments ("$1"...), quoted by shell.join.
_UPLOAD = r"""
dir="$1"; shift
mkdir -p "$dir" "$dir/../logs"
while [ $# -ge 2 ]; do
  tmp="$dir/.$1.tmp.$$"
  printf '%s' "$2" > "$tmp" && chmod 755 "$tmp" && mv -f "$tmp" "$dir/$1" || exit 1
  shift 2
done
"""
_WRITE = r"""
mkdir -p "$(dirname "$2")" && printf '%s\n' "$1" > "$2.tmp.$$" && mv -f "$2.tmp.$$" "$2"
"""
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
_POLL = r"""
log="$1"; off="$2"; res="$3"; sock="$4"; name="$5"; started="$6"
printf '@@now %s\n' "$(date +%s)"
printf '@@started %s\n' "$(head -c 400 "$started" 2>/dev/null | tr -d '\n')"
if tmux -S "$sock" has-session -t "=$name" 2>/dev/null; then echo "@@alive 1"; else echo "@@alive 0"; fi
printf '@@result %s\n' "$(head -c 400 "$res" 2>/dev/null | tr -d '\n')"
LOCK="${7:-}"; LOCK_TOKEN="${8:-}"
""" + hostlock.POLL_SNIPPET + r"""
size=$(wc -c < "$log" 2>/dev/null || echo 0); size=$((size + 0))
n=$((size - off)); [ "$n" -lt 0 ] && n=0; [ "$n" -gt 65536 ] && n=65536
printf '@@chunk %s\n' "$n"
[ "$n" -gt 0 ] && tail -c +"$((off + 1))" "$log" | head -c "$n"
exit 0
"""
_TAIL = r"""tail -c 200000 "$1" 2>/dev/null; exit 0"""


def fmt_s(seconds: float) -> str:
    """12s, 3m05s, 2h10m: how long a step ran, in messages."""
    seconds = int(max(0, seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


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
        res = self.t.run(shell.join(["bash", "-c", _LAUNCH, "orch-launch", layout.tmux_socket, self.session(step),
                                     self.path_file(step), layout.started(step.name), shell.join(argv)]),
                         check=False, timeout=60)
        if res.rc != 0:
            raise OrchError(f"could not start step {step.name} in tmux on {host}: "
                            f"{(res.stderr or res.stdout).strip()[:400]}", ExitCode.REMOTE)

    def poll(self, step: Step, offset: int, lock_args: List[str]) -> Tuple[dict, str]:
        """-> (now / started / alive / result / lock / chunk size, the log's text from offset)."""
        layout = self.layout
        argv = ["bash", "-c", _POLL, "orch-poll", layout.log(step.name), str(offset), layout.result(step.name),
                layout.tmux_socket, self.session(step), layout.started(step.name), *lock_args]
        return parse_poll(self.t.run(shell.join(argv), check=False, timeout=60).stdout)

    def log_tail(self, step: Step) -> str:
        res = self.t.run(shell.join(["bash", "-c", _TAIL, "orch-tail", self.layout.log(step.name)]),
                         check=False, timeout=60)
        return res.stdout


def parse_poll(text: str) -> Tuple[dict, str]:
    info: dict = {}
    head, sep, rest = text.partition("@@chunk ")
    for line in head.splitlines():
        if line.startswith("@@now "):
            info["now"] = float(line[6:].strip() or 0)
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
        info["chunk"] = int(count.strip() or 0)
    return info, chunk


class Runner:
    """Runs the plan's steps over one transport, holding the host's bootstrap lock."""

    def __init__(self, transport, plan: Plan, host: str, progress: Optional[Progress] = None,
                 lock: Optional[hostlock.HostLock] = None, detached: Optional[TmuxSteps] = None):
        self.t = transport
        self.plan = plan  # replaced by the flow after each re-plan; its layout stays the same
        self.host = host
        self.progress = progress or Progress()
        self.lock = lock or hostlock.HostLock(transport, plan.layout.lock, host, "orch bootstrap")
        self.detached = detached or TmuxSteps(transport, plan.layout)

    def upload_scripts(self, scripts: Dict[str, str]) -> None:
        argv: List[str] = ["bash", "-c", _UPLOAD, "orch-upload", self.plan.layout.scripts]
        for name, text in scripts.items():
            argv += [name, text]
        self.t.run(shell.join(argv), timeout=60)

    def write_state(self, data: dict) -> None:
        text = json.dumps(data, sort_keys=True)
        self.t.run(shell.join(["bash", "-c", _WRITE, "orch-write", text, self.plan.layout.state]), timeout=60)

    def _runner_argv(self, step: Step, tee: bool, path_file: str = "") -> List[str]:
        layout = self.plan.layout
        argv = ["bash", layout.script("run_step.sh")]
        if tee:
            argv.append("--tee")
        if path_file:
            argv += ["--path-file", path_file]
        argv += [step.name, step.fingerprint, layout.logs, "--"]
        if step.env:
            argv += ["env"] + [f"{k}={v}" for k, v in step.env.items()]
        return argv + list(step.argv)

    def run_step(self, step: Step) -> Tuple[int, str]:
        """-> (exit code, output/log tail). Raises OrchError on timeouts and interrupts."""
        if step.detached:
            return self._run_detached(step)
        self.progress.step_started(step)
        t0 = time.time()
        argv = self.lock.with_heartbeat(self._runner_argv(step, tee=True))
        res = self.t.run(shell.join(argv), check=False, timeout=step.timeout_s + 60)
        out = res.stdout + res.stderr
        if res.rc == 0:
            self.progress.step_output([] if step.name == "verify" else out.strip().splitlines()[-6:])
            self.progress.step_done(step, time.time() - t0)
        return res.rc, out

    def _run_detached(self, step: Step) -> Tuple[int, str]:
        detached = self.detached
        if step.state == "running":
            self.progress.step_started(step, reattach=detached.describe(step))
        else:
            self.progress.step_started(step)
            detached.launch(step, self._runner_argv(step, tee=False, path_file=detached.path_file(step)), self.host)
        self.progress.step_detached(step, detached.describe(step, socket=True), self.plan.layout.log(step.name))
        return self._follow(step, detached)

    def _follow(self, step: Step, detached: TmuxSteps) -> Tuple[int, str]:
        offset, partial, last_status = 0, "", time.time()
        reattach = (f"it keeps running on the host; `orch bootstrap {self.host}` reattaches; stop it with "
                    f"`{detached.stop_hint(step)}`")
        try:
            while True:
                info, chunk = detached.poll(step, offset, self.lock.poll_args())
                if info.get("lock") == "lost":
                    raise self.lock.lost_error()
                offset += info.get("chunk", 0)
                lines = (partial + chunk).split("\n")
                partial = lines.pop()
                skipped = max(0, len(lines) - MAX_LINES_PER_POLL)
                lines = lines[skipped:]
                shown = [line.rstrip() for line in lines if line.strip()]
                if shown or skipped:
                    self.progress.step_output(shown, skipped)
                started = info.get("started") or {}
                elapsed = info.get("now", time.time()) - started.get("started", info.get("now", time.time()))
                result = info.get("result")
                if result is not None and "rc" in result:
                    if partial.strip():
                        self.progress.step_output([partial.rstrip()])
                    rc = int(result["rc"])
                    if rc == 0:
                        self.progress.step_done(step, result.get("ended", 0) - result.get("started", 0))
                    return rc, detached.log_tail(step)
                if not info.get("alive"):
                    raise OrchError(f"step {step.name}: its {detached.describe(step)} is gone without a result "
                                    "(killed? host rebooted?)", ExitCode.REMOTE,
                                    hint=f"re-run `orch bootstrap {self.host}` to start it again; "
                                         f"log: {self.plan.layout.log(step.name)}")
                if elapsed > step.timeout_s:
                    raise OrchError(f"step {step.name} is still running after {fmt_s(elapsed)} "
                                    f"(timeout {fmt_s(step.timeout_s)})", ExitCode.REMOTE, hint=reattach)
                if time.time() - last_status >= STATUS_EVERY_S:
                    self.progress.step_running(step, elapsed)
                    last_status = time.time()
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            raise OrchError(f"stopped following step {step.name}", ExitCode.INTERRUPTED, hint=reattach) from None


def failure(step: Step, rc: int, log: str, layout: Layout, host: str) -> OrchError:
    """The error for a step that exited rc: known failures diagnosed, the log's last lines."""
    found = flashattn.diagnose_log(log, rc, step.name)
    # the log's own lines, without run_step.sh's bookkeeping and pip's upgrade notices
    tail = [line for line in log.strip().splitlines()
            if line.strip() and not line.startswith(("[orch]", "[notice]"))][-12:]
    message = f"bootstrap step {step.name} failed on {host} (exit {rc})"
    if found:
        message += "\n  diagnosis: " + "\n  diagnosis: ".join(w for w, _ in found)
    message += "\n  last lines of the log:\n    " + "\n    ".join(tail)
    hint = "; ".join(f for _, f in found) if found else ""
    hint = (hint + "; " if hint else "") + (f"full log on the host: {layout.log(step.name)}; "
                                            f"re-run `orch bootstrap {host}` to resume at this step")
    return OrchError(message, ExitCode.REMOTE, hint=hint)
