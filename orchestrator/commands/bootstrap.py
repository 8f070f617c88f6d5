"""`orch bootstrap HOST`: probe -> plan -> run the steps (long ones detached in tmux) -> verify.

The decisions live in pure modules (probe, gpu, torch_select, flashattn, bootstrap_plan);
this module only moves text between them and the host:

    1 round trip   probe (facts + the host-side step records)        -> plan, shown as a table
    per step       run it (attached, or in tmux with the log tailed), then re-probe and re-plan
    at the end     state.json on the host, facts in .orch/hosts/HOST.facts.json,
                   the host config's `python` = the env's interpreter

A re-run after success is the probe alone: "nothing to do".
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from orchestrator.provision import flashattn, hostlock, probe
from orchestrator import output
from orchestrator.transport import shell
from orchestrator.provision.plan import SCRIPTS, STEPS, Plan, Step, build_plan, state_json, validate_force
from orchestrator.config.envspec import EnvSpec
from orchestrator.errors import ExitCode, OrchError
from orchestrator.config.project import Project

POLL_S = 1.0
STATUS_EVERY_S = 30.0
MAX_LINES_PER_POLL = 40

STATE_STYLE = {"done": "green", "todo": "yellow", "running": "cyan", "blocked": "red", "skip": "dim"}

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


# --- small helpers ------------------------------------------------------------------------------


def _fmt_s(seconds: float) -> str:
    seconds = int(max(0, seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def scripts_dir(project: Project) -> Path:
    here = project.root / "bootstrap"
    if all((here / s).is_file() for s in SCRIPTS):
        return here
    return Path(__file__).resolve().parents[2] / "bootstrap"


def read_scripts(project: Project) -> Dict[str, str]:
    folder = scripts_dir(project)
    missing = [s for s in SCRIPTS if not (folder / s).is_file()]
    if missing:
        raise OrchError(f"bootstrap scripts missing in {folder}: {', '.join(missing)}", ExitCode.CONFIG)
    return {s: (folder / s).read_text() for s in SCRIPTS}


def verify_digest(scripts: Dict[str, str]) -> str:
    return hashlib.sha256(scripts["verify.py"].encode()).hexdigest()[:16]


def default_env(project: Project, host: str) -> str:
    """The env this host was last bootstrapped with (local record), else `default`."""
    saved = probe.load_facts(project.root, host)
    if saved is not None:
        env = (saved[1].get("bootstrap") or {}).get("env")
        if isinstance(env, str) and env:
            return env
    return "default"


def _blocked_error(step: Step) -> OrchError:
    code = ExitCode.HOST_TOOLS if step.blocked_code == "host" else ExitCode.CONFIG
    return OrchError(f"bootstrap step {step.name} is blocked: {step.why}", code, hint=step.hint)


# --- rendering ---------------------------------------------------------------------------------


def render_facts(facts: probe.HostFacts, title: str, console: Console) -> None:
    table = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for label, value in probe.fact_rows(facts):
        table.add_row(label, escape(value))
    console.print(table)
    for p in probe.problems(facts):
        colour = "red" if p.level == "error" else "yellow"
        console.print(f"[{colour}]{p.level}:[/] {escape(p.message)}" + (f"  ({escape(p.hint)})" if p.hint else ""))


def render_plan(plan: Plan, show_commands: bool, console: Console) -> None:
    spec = plan.spec
    console.print(f"[bold]env {escape(spec.name)}[/] ({escape(spec.path)}): {escape(spec.manager)}, "
                  f"python {escape(str(spec.python))} -> "
                  f"{escape(plan.env_python)}")
    table = Table(title=None, show_lines=False, box=None, pad_edge=False)
    table.add_column("step", style="bold")
    table.add_column("state")
    table.add_column("what / why", overflow="fold")
    for s in plan.steps:
        style = STATE_STYLE.get(s.state, "")
        what = escape(s.title)
        if s.why and s.why != "up to date":
            what += f"\n[dim]{escape(s.why)}[/]"
        if s.hint and s.state == "blocked":
            what += f"\n[dim]hint: {escape(s.hint)}[/]"
        for note in s.notes if show_commands else []:
            what += f"\n[dim]note: {escape(note)}[/]"
        if show_commands and s.command and s.state not in ("skip",):
            mode = "detached in tmux" if s.detached else "attached"
            what += f"\n[dim]$ ({mode})[/] {escape(s.command)}"
        table.add_row(s.name, f"[{style}]{s.state}[/]", what)
    host_state = "done" if plan.host_config_done else "todo"
    table.add_row("config", f"[{STATE_STYLE[host_state]}]{host_state}[/]",
                  escape(f"host config python = {plan.env_python}") + (
                      "" if plan.host_config_done else f"\n[dim]now: {escape(plan.host_python or '(unset)')}[/]"))
    console.print(table)
    for w in plan.warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}")


def render_verify(result: Optional[dict], out: Console) -> None:
    if not result:
        out.print("verify: no result recorded")
        return
    head = (f"torch {result.get('torch')} (CUDA {result.get('torch_cuda')}), python {result.get('python')}, "
            f"GPUs: {', '.join(g['name'] + ' sm' + g['capability'].replace('.', '') for g in result.get('gpus', [])) or 'none visible'}")
    colour = "green" if result.get("ok") else "red"
    out.print(f"[{colour}]verify {'ok' if result.get('ok') else 'FAILED'}[/]: {escape(head)}")
    for name, c in sorted((result.get("checks") or {}).items()):
        status = c.get("status", "?")
        style = {"ok": "green", "failed": "red", "skipped": "dim"}.get(status, "")
        detail = c.get("reason") or c.get("error") or ", ".join(
            f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
            for k, v in c.items() if k in ("rel_err", "max_abs_err", "varlen_max_abs_err", "device", "version"))
        out.print(f"  [{style}]{escape(str(status)):>7}[/] {escape(str(name))}: {escape(str(detail))}")


# --- host effects ------------------------------------------------------------------------------


class Runner:
    """Runs the plan's steps over one transport."""

    def __init__(self, transport, plan: Plan, host: str, json_mode: bool = False,
                 lock: Optional[hostlock.HostLock] = None):
        self.t = transport
        self.plan = plan
        self.host = host
        self.quiet = json_mode
        self.lock = lock or hostlock.HostLock(transport, plan.layout.lock, host, "orch bootstrap")

    def say(self, text: str, soft_wrap: bool = False) -> None:
        """Progress, on stderr (the plan and --json are what bootstrap prints on stdout)."""
        output.say(text, soft_wrap=soft_wrap)

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
        self.say(f"[bold]── {escape(step.name)}[/]: {escape(step.title)}")
        t0 = time.time()
        argv = self.lock.with_heartbeat(self._runner_argv(step, tee=True))
        res = self.t.run(shell.join(argv), check=False, timeout=step.timeout_s + 60)
        out = res.stdout + res.stderr
        if res.rc == 0:
            for line in ([] if step.name == "verify" else out.strip().splitlines()[-6:]):
                self.say(f"   [dim]│[/] {escape(line)}", soft_wrap=True)
            self.say(f"[green]✓[/] {escape(step.name)} done in {_fmt_s(time.time() - t0)}")
        return res.rc, out

    def _run_detached(self, step: Step) -> Tuple[int, str]:
        layout = self.plan.layout
        session = layout.session(step.name)
        if step.state == "running":
            self.say(f"[bold]── {escape(step.name)}[/]: reattaching to the running step (tmux session {session})")
        else:
            self.say(f"[bold]── {escape(step.name)}[/]: {escape(step.title)}")
            path_file = f"{layout.logs}/{step.name}.path"
            inner = shell.join(self._runner_argv(step, tee=False, path_file=path_file))
            res = self.t.run(shell.join(["bash", "-c", _LAUNCH, "orch-launch", layout.tmux_socket, session, path_file,
                                         layout.started(step.name), inner]), check=False, timeout=60)
            if res.rc != 0:
                raise OrchError(f"could not start step {step.name} in tmux on {self.host}: "
                                f"{(res.stderr or res.stdout).strip()[:400]}", ExitCode.REMOTE)
        self.say(f"   [dim]detached in tmux session {session} (socket {escape(layout.tmux_socket)}); "
                 f"log {escape(layout.log(step.name))}[/]")
        return self._follow(step)

    def _follow(self, step: Step) -> Tuple[int, str]:
        layout = self.plan.layout
        session = layout.session(step.name)
        offset, partial, last_status = 0, "", time.time()
        reattach = (f"it keeps running on the host; `orch bootstrap {self.host}` reattaches; stop it with "
                    f"`tmux -S {layout.tmux_socket} kill-session -t {session}`")
        try:
            while True:
                argv = ["bash", "-c", _POLL, "orch-poll", layout.log(step.name), str(offset), layout.result(step.name),
                        layout.tmux_socket, session, layout.started(step.name), *self.lock.poll_args()]
                out = self.t.run(shell.join(argv), check=False, timeout=60).stdout
                info, chunk = _parse_poll(out)
                if info.get("lock") == "lost":
                    raise self.lock.lost_error()
                offset += info.get("chunk", 0)
                lines = (partial + chunk).split("\n")
                partial = lines.pop()
                if len(lines) > MAX_LINES_PER_POLL:
                    self.say(f"   [dim]│ … {len(lines) - MAX_LINES_PER_POLL} lines[/]")
                    lines = lines[-MAX_LINES_PER_POLL:]
                for line in lines:
                    if line.strip():
                        self.say(f"   [dim]│[/] {escape(line.rstrip())}", soft_wrap=True)
                started = info.get("started") or {}
                elapsed = info.get("now", time.time()) - started.get("started", info.get("now", time.time()))
                result = info.get("result")
                if result is not None and "rc" in result:
                    if partial.strip():
                        self.say(f"   [dim]│[/] {escape(partial.rstrip())}", soft_wrap=True)
                    rc = int(result["rc"])
                    if rc == 0:
                        self.say(f"[green]✓[/] {escape(step.name)} done in {_fmt_s(result.get('ended', 0) - result.get('started', 0))}")
                    return rc, self._log_tail(step)
                if not info.get("alive"):
                    raise OrchError(f"step {step.name}: its tmux session {session} is gone without a result "
                                    "(killed? host rebooted?)", ExitCode.REMOTE,
                                    hint=f"re-run `orch bootstrap {self.host}` to start it again; log: {layout.log(step.name)}")
                if elapsed > step.timeout_s:
                    raise OrchError(f"step {step.name} is still running after {_fmt_s(elapsed)} "
                                    f"(timeout {_fmt_s(step.timeout_s)})", ExitCode.REMOTE, hint=reattach)
                if time.time() - last_status >= STATUS_EVERY_S:
                    self.say(f"   [cyan]… {escape(step.name)} running {_fmt_s(elapsed)}[/]")
                    last_status = time.time()
                time.sleep(POLL_S)
        except KeyboardInterrupt:
            raise OrchError(f"stopped following step {step.name}", ExitCode.INTERRUPTED, hint=reattach) from None

    def _log_tail(self, step: Step) -> str:
        res = self.t.run(shell.join(["bash", "-c", _TAIL, "orch-tail", self.plan.layout.log(step.name)]),
                         check=False, timeout=60)
        return res.stdout


def _parse_poll(text: str) -> Tuple[dict, str]:
    info: dict = {}
    head, sep, rest = text.partition("@@chunk ")
    for line in head.splitlines():
        if line.startswith("@@now "):
            info["now"] = float(line[6:].strip() or 0)
        elif line.startswith("@@alive "):
            info["alive"] = line[8:].strip() == "1"
        elif line.startswith("@@started "):
            info["started"] = probe.parse_json_object(line[10:].strip())
        elif line.startswith("@@result "):
            info["result"] = probe.parse_json_object(line[9:].strip())
        elif line.startswith("@@lock "):
            info["lock"] = line[7:].strip()
    chunk = ""
    if sep:
        count, _, chunk = rest.partition("\n")
        info["chunk"] = int(count.strip() or 0)
    return info, chunk


def _failure(step: Step, rc: int, output: str, plan: Plan, host: str) -> OrchError:
    found = flashattn.diagnose_log(output, rc, step.name)
    # the log's own lines, without run_step.sh's bookkeeping and pip's upgrade notices
    tail = [line for line in output.strip().splitlines()
            if line.strip() and not line.startswith(("[orch]", "[notice]"))][-12:]
    message = f"bootstrap step {step.name} failed on {host} (exit {rc})"
    if found:
        message += "\n  diagnosis: " + "\n  diagnosis: ".join(w for w, _ in found)
    message += "\n  last lines of the log:\n    " + "\n    ".join(tail)
    hint = "; ".join(f for _, f in found) if found else ""
    hint = (hint + "; " if hint else "") + (f"full log on the host: {plan.layout.log(step.name)}; "
                                            f"re-run `orch bootstrap {host}` to resume at this step")
    return OrchError(message, ExitCode.REMOTE, hint=hint)


# --- the command -----------------------------------------------------------------------------


def _probe(transport, spec: EnvSpec) -> probe.HostFacts:
    from orchestrator.provision.plan import Layout

    # The env's interpreter (relative: under the workdir, resolved by the probe) and a custom conda's python.
    rel = Layout("", spec.name)
    pythons = [rel.env_python.lstrip("/")]
    if spec.conda.prefix:
        pythons.append(spec.conda.prefix.rstrip("/") + "/bin/python")
    return probe.run_probe(transport, pythons)


def _summary(plan: Plan, facts: probe.HostFacts) -> dict:
    return {"env": plan.spec.name, "env_python": plan.env_python, "spec_digest": plan.spec.digest(),
            "torch": plan.torch.describe(), "flash_attn": plan.flash_attn.describe(),
            "flash_attn_kind": plan.flash_attn.kind, "steps": {s.name: s.state for s in plan.steps},
            "verify": facts.verify, "updated": time.time()}


def bootstrap(
    project: Project,
    host: str,
    *,
    env: Optional[str] = None,
    dry_run: bool = False,
    force: Sequence[str] = (),
    accept_anaconda_tos: bool = False,
    trust_new_host_key: bool = False,
    json_mode: bool = False,
    break_lock: bool = False,
) -> dict:
    from orchestrator.transport.connect import open_transport
    from orchestrator.config.envspec import load
    from orchestrator.config.hosts import resolve_host, set_host_key

    force_left = set(validate_force(force))
    env_name = env or default_env(project, host)
    spec = load(project.root, env_name)
    cfg = resolve_host(project, host)
    scripts = read_scripts(project)
    digest = verify_digest(scripts)
    start = time.time()

    def plan_for(facts: probe.HostFacts) -> Plan:
        return build_plan(facts, spec, host=host, host_python=cfg.python, force=sorted(force_left),
                          accept_tos=accept_anaconda_tos, verify_digest=digest)

    with open_transport(project, host, trust_new_host_key) as transport:
        facts = _probe(transport, spec)
        plan = plan_for(facts)
        probe.save_facts(project.root, host, facts, {"bootstrap": _summary(plan, facts)})
        # --dry-run: the facts and the plan are the result (stdout); before real steps they
        # are progress (stderr); --json replaces them with the JSON document.
        view = output.out if dry_run else (None if output.quiet() else output.err)
        if not json_mode and view is not None:
            render_facts(facts, f"{host}: {cfg.display()} — probed in {time.time() - start:.1f} s", view)
            render_plan(plan, show_commands=dry_run, console=view)
        if dry_run:
            return {"dry_run": True, "plan": plan.to_dict(), "facts": facts.to_dict()}

        runner = Runner(transport, plan, host, json_mode)
        ran: List[str] = []
        if plan.pending:
            runner.lock.acquire(break_lock, warn=output.warn)
            # Probed before the lock was ours: another bootstrap may have done steps since.
            facts = _probe(transport, spec)
            plan = plan_for(facts)
        try:
            if plan.pending:
                runner.upload_scripts(scripts)
            while True:
                step = next((s for s in plan.steps if s.state in ("todo", "running", "blocked")), None)
                if step is None:
                    break
                if step.state == "blocked":
                    raise _blocked_error(step)
                if step.name in ran:
                    raise OrchError(f"step {step.name} succeeded but is still not done on the host: {step.why}",
                                    ExitCode.REMOTE, hint=f"inspect {plan.layout.log(step.name)}")
                runner.plan = plan
                rc, step_log = runner.run_step(step)
                ran.append(step.name)
                if step.name in force_left:
                    force_left.discard(step.name)
                    if step.name != "verify":
                        force_left.add("verify")
                facts = _probe(transport, spec)
                plan = plan_for(facts)
                runner.write_state(state_json(plan, facts.state, time.time()))
                if step.name == "verify" and not output.quiet():
                    render_verify(facts.verify, output.err)
                if rc != 0:
                    probe.save_facts(project.root, host, facts, {"bootstrap": _summary(plan, facts)})
                    raise _failure(step, rc, step_log, plan, host)
        finally:
            runner.lock.release()

    # Everything is done: jobs use the env's interpreter by absolute path.
    if cfg.python != plan.env_python:
        try:
            path = set_host_key(project, host, "python", plan.env_python)
            output.say(f"host config: python = {escape(plan.env_python)} ({escape(str(path))})")
        except OrchError as exc:
            output.warn(f"could not record python in the host config: {exc.message}")
            if exc.hint:  # may hold a YAML block to paste: its own lines, as printed
                output.err.print(f"  hint: {exc.hint}", markup=False, highlight=False, soft_wrap=True)
    summary = _summary(plan, facts)
    probe.save_facts(project.root, host, facts, {"bootstrap": summary})
    elapsed = time.time() - start
    if ran:
        output.say(f"[green]bootstrap of {escape(host)} complete[/] ({escape(', '.join(ran))}) in {_fmt_s(elapsed)}")
    else:
        output.say(f"[green]nothing to do[/]: {escape(host)} is bootstrapped with env {escape(spec.name)} "
                   f"({elapsed:.1f} s)")
    return {"dry_run": False, "ran": ran, "nothing_to_do": not ran, "seconds": round(elapsed, 2), **summary}


def show_host(project: Project, name: str, out: Console = output.out) -> None:
    """The recorded facts and environment of a host (no connection): for `orch hosts show`."""
    saved = probe.load_facts(project.root, name)
    if saved is None:
        raise OrchError(f"no facts recorded for host {name!r}", ExitCode.RUN_STATE,
                        hint=f"run `orch hosts check {name}` or `orch bootstrap {name}`")
    facts, data = saved
    age = time.time() - (facts.probed_at or 0)
    table = Table(title=Text(f"{name} — probed {_fmt_s(age)} ago (workdir {facts.workdir})"), title_justify="left",
                  show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for label, value in probe.fact_rows(facts):
        table.add_row(label, escape(value))
    b = data.get("bootstrap") or {}
    if b:
        steps = b.get("steps") or {}
        table.add_row("env", escape(f"{b.get('env')} -> {b.get('env_python')}"))
        table.add_row("torch", escape(str(b.get("torch"))))
        table.add_row("flash-attn", escape(str(b.get("flash_attn"))))
        table.add_row("steps", escape(", ".join(f"{k} {v}" for k, v in steps.items())))
    out.print(table)
    verify = b.get("verify") if b else facts.verify
    if verify:
        render_verify(verify, out)


def register(app: typer.Typer) -> None:
    @app.command("bootstrap")
    def bootstrap_cmd(
        host: str = typer.Argument(..., metavar="HOST",
                                   help="Host name (configs/hosts/NAME.yaml, an ~/.ssh/config alias, or local)."),
        env: Optional[str] = typer.Option(None, "--env", metavar="ENV", help="Env spec configs/envs/NAME.yaml (default: the one "
                                          "this host was bootstrapped with, else `default`)."),
        dry_run: bool = typer.Option(False, "--dry-run", help="Probe and show the plan (facts, steps, exact commands); change nothing."),
        force: List[str] = typer.Option([], "--force", metavar="STEP", help=f"Redo this step even if done (then re-verify): {', '.join(STEPS)}."),
        accept_anaconda_tos: bool = typer.Option(False, "--accept-anaconda-tos", help="Accept the Anaconda Terms of "
                                                 "Service for Miniconda's default channels (or use manager: miniforge)."),
        trust_new_host_key: bool = typer.Option(False, "--trust-new-host-key", help="Record an unknown host key (trust on first use)."),
        as_json: bool = typer.Option(False, "--json", help="Print the plan (with --dry-run) or the result as JSON."),
        break_lock: bool = typer.Option(False, "--break-lock", help="Take the host's bootstrap lock even if another "
                                        "bootstrap seems to hold it (use when that one is known to be dead)."),
        quiet: bool = output.quiet_option(),
    ):
        """Take a host to a verified environment: probe, Miniconda, env, torch, flash-attn, verify.

        Idempotent: a re-run after success does nothing; after a failure it resumes at the failed step.
        """
        project = Project.find()
        result = bootstrap(project, host, env=env, dry_run=dry_run, force=force,
                           accept_anaconda_tos=accept_anaconda_tos, trust_new_host_key=trust_new_host_key,
                           json_mode=as_json, break_lock=break_lock)
        if as_json:
            print(json.dumps(result, default=str))
