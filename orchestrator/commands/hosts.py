"""hosts list / check / show."""

from __future__ import annotations

import json
import time

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from orchestrator import backends, output
from orchestrator.commands.options import TRUST
from orchestrator.config.hosts import list_hosts, resolve_host
from orchestrator.config.project import Project
from orchestrator.errors import ExitCode, OrchError
from orchestrator.transport.connect import open_transport

console = output.out
hosts_app = typer.Typer(help="Configured hosts: list, check, show.", no_args_is_help=True)


@hosts_app.command("list")
def list_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."), quiet: bool = output.quiet_option()
):
    """Hosts from configs/hosts/*.yaml, ~/.ssh/config aliases, and the built-in `local`."""
    project = Project.find()
    hosts = list_hosts(project)
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "name": h.name,
                        "address": h.display(),
                        "workdir": h.workdir,
                        "python": h.python,
                        "source": h.source,
                    }
                    for h in hosts
                ]
            )
        )
        return
    table = Table(title="hosts", title_justify="left")
    for col in ("name", "address", "workdir", "python", "from"):
        table.add_column(col)
    for h in hosts:
        if h.description.startswith("INVALID: "):
            table.add_row(escape(h.name), f"[red]{escape(h.description)}[/]", "", "", escape(h.source))
            continue
        table.add_row(
            escape(h.name), escape(h.display()), escape(h.workdir), escape(h.python or "(python3)"), escape(h.source)
        )
    console.print(table)


@hosts_app.command("check")
def check_cmd(
    host: str = typer.Argument(..., metavar="HOST", help="Host name."),
    trust_new_host_key: bool = TRUST,
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
    quiet: bool = output.quiet_option(),
):
    """Connect (verifying the host key) and report OS, python, tmux, rsync, GPUs (and Slurm partitions)."""
    from orchestrator.provision.probe import fact_rows, problems, run_probe, save_facts

    project = Project.find()
    start = time.time()
    with open_transport(project, host, trust_new_host_key) as transport:
        facts = run_probe(transport, project_root=project.root)
    cfg = resolve_host(project, host)
    backend = backends.for_host(cfg)
    found = problems(facts, login_node=backend.login_node) + backend.host_problems(facts)
    save_facts(project.root, host, facts)
    if as_json:
        data = facts.to_dict()
        data["problems"] = [{"level": p.level, "message": p.message, "hint": p.hint} for p in found]
        data["seconds"] = round(time.time() - start, 2)
        print(json.dumps(data, default=str))
        _check_failed(found)
        return
    # `local` is this machine, reached without SSH: there was no host key to verify.
    title = (
        f"{host}: {cfg.display()} ({time.time() - start:.1f} s)"
        if cfg.is_local
        else f"{host}: {cfg.display()} (host key verified, {time.time() - start:.1f} s)"
    )
    table = Table(title=escape(title), title_justify="left", show_header=False)
    for label, value in fact_rows(facts):
        table.add_row(label, escape(value))
    console.print(table)
    for p in found:  # the check's findings: part of its report
        colour = "red" if p.level == "error" else "yellow"
        console.print(f"[{colour}]{p.level}:[/] {escape(p.message)}" + (f"  ({escape(p.hint)})" if p.hint else ""))
    _check_failed(found)


def _check_failed(found) -> None:
    """`hosts check` is a check: an error among its findings fails it (exit 1), after the
    report (warnings do not)."""
    if any(p.level == "error" for p in found):
        raise typer.Exit(int(ExitCode.FAILED))


@hosts_app.command("show")
def show_cmd(host: str = typer.Argument(..., metavar="HOST", help="Host name."), quiet: bool = output.quiet_option()):
    """The facts and environment recorded for a host by `hosts check` / `bootstrap` (no SSH)."""
    project = Project.find()
    resolve_host(project, host)  # an unknown name says so, before "nothing recorded"
    show_host(project, host, out=console)


def show_host(project: Project, name: str, out: Console = output.out) -> None:
    """The recorded facts and environment of a host (no connection)."""
    from orchestrator.commands.bootstrap import render_verify
    from orchestrator.provision import probe
    from orchestrator.provision.steps import fmt_s

    saved = probe.load_facts(project.root, name)
    if saved is None:
        raise OrchError(
            f"no facts recorded for host {name!r}",
            ExitCode.RUN_STATE,
            hint=f"run `orch hosts check {name}` or `orch bootstrap {name}`",
        )
    facts, data = saved
    age = time.time() - (facts.probed_at or 0)
    table = Table(
        title=Text(f"{name} — probed {fmt_s(age)} ago (workdir {facts.workdir})"),
        title_justify="left",
        show_header=False,
        box=None,
        pad_edge=False,
    )
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
    app.add_typer(hosts_app, name="hosts")
