"""hosts list / check / show."""
from __future__ import annotations

import json
import time

import typer
from rich.console import Console
from rich.table import Table

from .. import hostops
from ..connect import open_transport
from ..hosts import list_hosts, resolve_host
from ..project import Project

console = Console(highlight=False)
hosts_app = typer.Typer(help="Configured hosts: list, check, show.", no_args_is_help=True)


@hosts_app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts.")):
    """Hosts from configs/hosts/*.yaml, ~/.ssh/config aliases, and the built-in `local`."""
    project = Project.find()
    hosts = list_hosts(project)
    if as_json:
        print(json.dumps([{"name": h.name, "address": h.display(), "workdir": h.workdir, "python": h.python,
                           "source": h.source} for h in hosts]))
        return
    table = Table(title="hosts", title_justify="left")
    for col in ("name", "address", "workdir", "python", "from"):
        table.add_column(col)
    for h in hosts:
        table.add_row(h.name, h.display(), h.workdir, h.python or "(python3)", h.source)
    console.print(table)


@hosts_app.command("check")
def check_cmd(
    host: str = typer.Argument(..., help="Host name."),
    trust_new_host_key: bool = typer.Option(False, "--trust-new-host-key", help="Record an unknown host key (trust on first use)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
):
    """Connect (verifying the host key) and report OS, python, tmux, rsync and GPUs."""
    project = Project.find()
    start = time.time()
    with open_transport(project, host, trust_new_host_key) as transport:
        from ..probe import probe_host

        state = hostops.prepare(transport, need_tmux=False)
        facts = probe_host(transport, state.workdir)
    facts["connect_and_probe_s"] = round(time.time() - start, 2)
    facts["workdir"] = state.workdir
    from ..probe import render_facts, save_facts

    save_facts(project, host, facts)
    if as_json:
        print(json.dumps(facts, default=str))
        return
    render_facts(console, resolve_host(project, host), facts)
    problems = [p for p in facts.get("problems", [])]
    if not state.tools["tmux"]:
        problems.append("tmux is missing: orch cannot run jobs there (install tmux)")
    for p in problems:
        console.print(f"[yellow]warning:[/] {p}")


def register(app: typer.Typer) -> None:
    app.add_typer(hosts_app, name="hosts")
