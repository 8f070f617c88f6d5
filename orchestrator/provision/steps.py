"""Running the plan's steps on the host: attached over the transport, or detached and followed.

Every step runs under bootstrap/run_step.sh, which writes <workdir>/bootstrap/logs/
STEP.{log,started,result}. A short step runs attached (one round trip, its output is the
answer). A long one (installers, pip, a flash-attn build) runs detached, so a closed laptop or a
dropped connection does not stop it: the host's job backend starts it and polls its log and
result file (``JobBackend.detached_steps``, e.g. orchestrator/backends/tmux_steps.py);
`Runner` follows it, reporting through a `Progress`.
"""

from __future__ import annotations

import json
import time
from typing import Dict, List, Optional, Tuple

from orchestrator import backends
from orchestrator.contract.hostdocs import number
from orchestrator.errors import ExitCode, OrchError
from orchestrator.provision import flashattn, hostlock
from orchestrator.provision.plan import Layout, Plan, Step
from orchestrator.provision.progress import Progress
from orchestrator.terminal import last_lines
from orchestrator.transport import shell

POLL_S = 1.0
STATUS_EVERY_S = 30.0
MAX_LINES_PER_POLL = 40
MAX_PARTIAL = 64 << 10  # of a line still without its end, what is kept for when it ends
TAIL_CHARS = 4000  # of a step's output, what a message quotes (its last lines)

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


def fmt_s(seconds: float) -> str:
    """12s, 3m05s, 2h10m: how long a step ran, in messages."""
    seconds = int(max(0, seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


class Runner:
    """Runs the plan's steps over one transport, holding the host's bootstrap lock."""

    def __init__(
        self,
        transport,
        plan: Plan,
        host: str,
        progress: Optional[Progress] = None,
        lock: Optional[hostlock.HostLock] = None,
        detached=None,
    ):
        self.t = transport
        self.plan = plan  # replaced by the flow after each re-plan; its layout stays the same
        self.host = host
        self.progress = progress or Progress()
        self.lock = lock or hostlock.HostLock(transport, plan.layout.lock, host, "orch bootstrap")
        # How long steps run detached: the host's job backend (tmux unless told otherwise).
        self.detached = detached or backends.get("tmux").detached_steps(transport, plan.layout)

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
        if step.detached or self._must_detach(step):
            return self._run_detached(step)
        self.progress.step_started(step)
        t0 = time.time()
        argv = self.lock.with_heartbeat(self._runner_argv(step, tee=True))
        res = self.t.run(shell.join(argv), check=False, timeout=step.timeout_s + 60)
        out = res.stdout + res.stderr
        if res.rc == 0:
            self.progress.step_output([] if step.name == "verify" else last_lines(out, 6, TAIL_CHARS))
            self.progress.step_done(step, time.time() - t0)
        return res.rc, out

    def _must_detach(self, step: Step) -> bool:
        """A step the plan runs attached that the backend runs detached anyway (on a Slurm
        host: verify, which needs a compute node's GPU)."""
        must = getattr(self.detached, "must_detach", None)
        return bool(must and must(step))

    def _run_detached(self, step: Step) -> Tuple[int, str]:
        detached = self.detached
        if step.state == "running":
            self.progress.step_started(step, reattach=detached.describe(step))
        else:
            self.progress.step_started(step)
            detached.launch(step, self._runner_argv(step, tee=False, path_file=detached.path_file(step)), self.host)
        self.progress.step_detached(step, detached.describe(step, socket=True), self.plan.layout.log(step.name))
        return self._follow(step, detached)

    def _follow(self, step: Step, detached) -> Tuple[int, str]:
        offset, partial, last_status, queue = 0, "", time.time(), ""
        reattach = (
            f"it keeps running on the host; `orch bootstrap {self.host}` reattaches; stop it with "
            f"`{detached.stop_hint(step)}`"
        )
        try:
            while True:
                info, chunk = detached.poll(step, offset, self.lock)
                if info.get("lock") == "lost":
                    raise self.lock.lost_error()
                offset += info.get("chunk", 0)
                lines = (partial + chunk).split("\n")
                partial = lines.pop()[-MAX_PARTIAL:]  # a host's line without an end: its end only
                skipped = max(0, len(lines) - MAX_LINES_PER_POLL)
                lines = lines[skipped:]
                shown = [line.rstrip() for line in lines if line.strip()]
                if shown or skipped:
                    self.progress.step_output(shown, skipped)
                if info.get("queue") and info["queue"] != queue:  # a batch job's queue state, in words
                    queue = info["queue"]
                    self.progress.note(f"step {step.name}: {queue}")
                now = info.get("now", time.time())
                started = info.get("started") or {}
                began = number(started.get("started"))
                elapsed = now - began if began is not None else 0.0
                result = info.get("result")
                if result is not None and "rc" in result:
                    if partial.strip():
                        self.progress.step_output([partial.rstrip()])
                    rc = result["rc"] if type(result["rc"]) is int and -256 < result["rc"] < 256 else 1
                    if rc == 0:
                        took = (number(result.get("ended")) or 0.0) - (number(result.get("started")) or 0.0)
                        self.progress.step_done(step, took)
                    return rc, detached.log_tail(step)
                if not info.get("alive"):
                    raise OrchError(
                        f"step {step.name}: its {detached.describe(step)} is gone without a result "
                        "(killed? host rebooted?)",
                        ExitCode.REMOTE,
                        hint=f"re-run `orch bootstrap {self.host}` to start it again; "
                        f"log: {self.plan.layout.log(step.name)}",
                    )
                if elapsed > step.timeout_s:
                    raise OrchError(
                        f"step {step.name} is still running after {fmt_s(elapsed)} (timeout {fmt_s(step.timeout_s)})",
                        ExitCode.REMOTE,
                        hint=reattach,
                    )
                if started and time.time() - last_status >= STATUS_EVERY_S:  # (a queued job: its note says)
                    self.progress.step_running(step, elapsed)
                    last_status = time.time()
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            raise OrchError(f"stopped following step {step.name}", ExitCode.INTERRUPTED, hint=reattach) from None


def failure(step: Step, rc: int, log: str, layout: Layout, host: str) -> OrchError:
    """The error for a step that exited rc: known failures diagnosed, the log's last lines."""
    found = flashattn.diagnose_log(log, rc, step.name)
    # the log's own lines, without run_step.sh's bookkeeping and pip's upgrade notices; the
    # host's words, so a bounded tail (one line may be megabytes)
    lines = log[-4 * TAIL_CHARS :].splitlines()
    if len(log) > 4 * TAIL_CHARS and lines:
        lines[0] = "..." + lines[0]  # begun before the part read
    tail = last_lines("\n".join(line for line in lines if not line.startswith(("[orch]", "[notice]"))), 12, TAIL_CHARS)
    message = f"bootstrap step {step.name} failed on {host} (exit {rc})"
    if found:
        message += "\n  diagnosis: " + "\n  diagnosis: ".join(w for w, _ in found)
    message += "\n  last lines of the log:\n    " + "\n    ".join(tail)
    hint = "; ".join(f for _, f in found) if found else ""
    if step.hint:  # what the plan knew would fix it (verify: a CPU torch on a host with GPUs)
        hint = step.hint + ("; " + hint if hint else "")
    hint = (hint + "; " if hint else "") + (
        f"full log on the host: {layout.log(step.name)}; re-run `orch bootstrap {host}` to resume at this step"
    )
    return OrchError(message, ExitCode.REMOTE, hint=hint)
