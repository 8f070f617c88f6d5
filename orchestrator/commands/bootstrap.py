"""`orch bootstrap HOST`: the command, and how its progress looks.

The flow (probe -> plan -> steps -> verify) is orchestrator/provision/bootstrap.py; it reports
what it does to a `Progress`, which this module renders: the facts and the plan as tables
(stdout with --dry-run, else stderr), each step's output and timing on stderr.
"""

from __future__ import annotations

import json
from typing import List, Optional, Sequence

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator import output
from orchestrator.commands.options import TRUST
from orchestrator.config.project import Project
from orchestrator.provision import probe
from orchestrator.provision.bootstrap import bootstrap
from orchestrator.provision.plan import STEPS, Plan, Step
from orchestrator.provision.progress import Progress
from orchestrator.provision.steps import fmt_s

STATE_STYLE = {"done": "green", "todo": "yellow", "running": "cyan", "blocked": "red", "skip": "dim"}


_FORCE_HELP = f"Redo this step even if done (then re-verify): {', '.join(STEPS)}."


def render_facts(facts: probe.HostFacts, title: str, console: Console, login_node: bool = False) -> None:
    """LOGIN_NODE: a Slurm login node, where no nvidia-smi is expected (the plan's warnings say
    where its GPU facts come from instead)."""
    table = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for label, value in probe.fact_rows(facts):
        table.add_row(label, escape(value))
    console.print(table)
    for p in probe.problems(facts, login_node=login_node):
        colour = "red" if p.level == "error" else "yellow"
        console.print(f"[{colour}]{p.level}:[/] {escape(p.message)}" + (f"  ({escape(p.hint)})" if p.hint else ""))


def step_mode(step: Step, backend) -> str:
    """How a step will run, as the dry run says it (BACKEND: the host's job backend)."""
    if backend.runs_as_job(step):
        return backend.job_step_words
    return "detached in tmux" if step.detached else "attached"


def render_plan(plan: Plan, show_commands: bool, console: Console) -> None:
    spec = plan.spec
    console.print(
        f"[bold]env {escape(spec.name)}[/] ({escape(spec.path)}): {escape(spec.manager)}, "
        f"python {escape(str(spec.python))} -> "
        f"{escape(plan.env_python)}"
    )
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
            mode = step_mode(s, plan.backend)
            what += f"\n[dim]$ ({mode})[/] {escape(s.command)}"
        table.add_row(s.name, f"[{style}]{s.state}[/]", what)
    host_state = "done" if plan.host_config_done else "todo"
    table.add_row(
        "config",
        f"[{STATE_STYLE[host_state]}]{host_state}[/]",
        escape(f"host config python = {plan.env_python}")
        + ("" if plan.host_config_done else f"\n[dim]now: {escape(plan.host_python or '(unset)')}[/]"),
    )
    console.print(table)
    for w in plan.warnings:
        console.print(f"[yellow]warning:[/] {escape(w)}")


def render_verify(result: Optional[dict], out: Console) -> None:
    if not result:
        out.print("verify: no result recorded")
        return
    # The host's verify.py wrote this: anything may be in it, so each part is taken only
    # in the shape verify.py gives it.
    listed = result.get("gpus")
    gpus = ", ".join(
        f"{g.get('name')} sm{str(g.get('capability')).replace('.', '')}"
        for g in (listed if isinstance(listed, list) else [])
        if isinstance(g, dict)
    )
    head = (
        f"torch {result.get('torch')} (CUDA {result.get('torch_cuda')}), python {result.get('python')}, "
        f"GPUs: {gpus or 'none visible'}"
    )
    colour = "green" if result.get("ok") else "red"
    out.print(f"[{colour}]verify {'ok' if result.get('ok') else 'FAILED'}[/]: {escape(head)}")
    checks = result.get("checks")
    for name, c in sorted(checks.items() if isinstance(checks, dict) else (), key=lambda item: str(item[0])):
        if not isinstance(c, dict):
            c = {"status": "?", "reason": f"unreadable check result: {str(c)[:80]}"}
        status = c.get("status", "?")
        if not isinstance(status, str):
            status = "?"
        style = {"ok": "green", "failed": "red", "skipped": "dim"}.get(status, "")
        detail = (
            c.get("reason")
            or c.get("error")
            or ", ".join(
                f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                for k, v in c.items()
                if k in ("rel_err", "max_abs_err", "varlen_max_abs_err", "device", "version")
            )
        )
        label = f"{escape(status):>7}"
        label = f"[{style}]{label}[/]" if style else label  # "[]...[/]" is not markup Rich reads
        out.print(f"  {label} {escape(str(name))}: {escape(str(detail))}")


class RichProgress(Progress):
    """Bootstrap's progress on stderr (dropped with --quiet); the plan on stdout with --dry-run."""

    def __init__(self, dry_run: bool = False, json_mode: bool = False):
        self.dry_run = dry_run
        self.json_mode = json_mode  # --json: stdout is the JSON document, so no tables there

    def planned(self, where: str, facts: probe.HostFacts, plan: Plan, probe_s: float) -> None:
        # --dry-run: the facts and the plan are the result (stdout); before real steps they
        # are progress (stderr); --json replaces them with the JSON document.
        view = output.out if self.dry_run else (None if output.quiet() else output.err)
        if not self.json_mode and view is not None:
            where_ = f"{escape(where)} — probed in {probe_s:.1f} s"
            render_facts(facts, where_, view, login_node=plan.backend.login_node)
            render_plan(plan, show_commands=self.dry_run, console=view)

    def step_started(self, step: Step, reattach: str = "") -> None:
        if reattach:
            output.say(f"[bold]── {escape(step.name)}[/]: reattaching to the running step ({escape(reattach)})")
        else:
            output.say(f"[bold]── {escape(step.name)}[/]: {escape(step.title)}")

    def step_detached(self, step: Step, where: str, log: str) -> None:
        output.say(f"   [dim]detached in {escape(where)}; log {escape(log)}[/]")

    def step_output(self, lines: Sequence[str], skipped: int = 0) -> None:
        if skipped:
            output.say(f"   [dim]│ … {skipped} lines[/]")
        for line in lines:
            output.say(f"   [dim]│[/] {escape(line)}", soft_wrap=True)

    def step_running(self, step: Step, seconds: float) -> None:
        output.say(f"   [cyan]… {escape(step.name)} running {fmt_s(seconds)}[/]")

    def step_done(self, step: Step, seconds: float) -> None:
        output.say(f"[green]✓[/] {escape(step.name)} done in {fmt_s(seconds)}")

    def verified(self, result: Optional[dict]) -> None:
        if not output.quiet():
            render_verify(result, output.err)

    def note(self, text: str) -> None:
        output.say(text, markup=False)

    def warn(self, text: str, hint: str = "") -> None:
        output.warn(text)
        if hint:  # may hold a YAML block to paste: its own lines, as printed
            output.err.print(f"  hint: {hint}", markup=False, highlight=False, soft_wrap=True)

    def finished(self, host: str, env: str, ran: Sequence[str], seconds: float) -> None:
        if ran:
            output.say(f"[green]bootstrap of {escape(host)} complete[/] ({escape(', '.join(ran))}) in {fmt_s(seconds)}")
        else:
            output.say(
                f"[green]nothing to do[/]: {escape(host)} is bootstrapped with env {escape(env)} ({seconds:.1f} s)"
            )


def register(app: typer.Typer) -> None:
    @app.command("bootstrap")
    def bootstrap_cmd(
        host: str = typer.Argument(
            ..., metavar="HOST", help="Host name (configs/hosts/NAME.yaml, an ~/.ssh/config alias, or local)."
        ),
        env: Optional[str] = typer.Option(
            None,
            "--env",
            metavar="ENV",
            help="Env spec configs/envs/NAME.yaml (default: the one this host was bootstrapped with, else `default`).",
        ),
        dry_run: bool = typer.Option(
            False, "--dry-run", help="Probe and show the plan (facts, steps, exact commands); change nothing."
        ),
        force: List[str] = typer.Option([], "--force", metavar="STEP", help=_FORCE_HELP),
        accept_anaconda_tos: bool = typer.Option(
            False,
            "--accept-anaconda-tos",
            help="Accept the Anaconda Terms of Service for Miniconda's default channels (or use manager: miniforge).",
        ),
        trust_new_host_key: bool = TRUST,
        as_json: bool = typer.Option(False, "--json", help="Print the plan (with --dry-run) or the result as JSON."),
        break_lock: bool = typer.Option(
            False,
            "--break-lock",
            help="Take the host's bootstrap lock even if another "
            "bootstrap seems to hold it (use when that one is known to be dead).",
        ),
        quiet: bool = output.quiet_option(),
    ):
        """Take a host to a verified environment: probe, Miniconda, env, torch, flash-attn, verify.

        Idempotent: a re-run after success does nothing; after a failure it resumes at the failed step.
        """
        project = Project.find()
        result = bootstrap(
            project,
            host,
            env=env,
            dry_run=dry_run,
            force=force,
            accept_anaconda_tos=accept_anaconda_tos,
            trust_new_host_key=trust_new_host_key,
            break_lock=break_lock,
            progress=RichProgress(dry_run=dry_run, json_mode=as_json),
        )
        if as_json:
            print(json.dumps(result, default=str))
