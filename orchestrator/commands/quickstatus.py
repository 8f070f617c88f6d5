"""`orch status [RUN] [--json]` without Typer, Rich or YAML (issue 15: status costs what a
minimal Paramiko client running the same host command costs, plus little).

orchestrator/cli.py hands a command line here first.  Only the plain forms are taken:
`[-q] status [RUN] [--json] [--trust-new-host-key] [-q]`.  Anything else (`--help`,
`--watch`, `--interval`, an unknown option, a second argument) returns None and goes the
Typer way, so help texts, usage errors (one message, exit 2) and the live view stay
exactly Typer's.  The Typer command (commands/runs.py) calls show() for the same forms:
one implementation of what status prints.

tests/unit/test_quickstatus.py pins the modules this path imports.
"""

from __future__ import annotations

import json
import sys
from typing import List, Optional, Tuple

from orchestrator.commands.quickpath import plain, run


def parse(argv: List[str]) -> Optional[Tuple[Optional[str], bool, bool]]:
    """(RUN or None, --json, --trust-new-host-key) for a plain `status` command line;
    None for anything else (Typer parses it, and words any error)."""
    found = plain(argv, ["status"], flags=("--json", "--trust-new-host-key"))
    if found is None:
        return None
    run_id, given, _ = found
    options = {option for option, _ in given}
    return run_id, "--json" in options, "--trust-new-host-key" in options


def show(run_id: Optional[str], as_json: bool, trust_new_host_key: bool, out=None) -> List:
    """Read the run's job states from its host in one round trip, remember them in
    local.json (for `orch runs`), and print the table or the JSON on ``out`` (stdout).
    Returns the rows."""
    from orchestrator import backends
    from orchestrator.commands.statustable import render, use_colour
    from orchestrator.config.project import Project
    from orchestrator.contract import records
    from orchestrator.runs.state import run_state, unanswered
    from orchestrator.terminal import visible
    from orchestrator.transport.connect import open_transport

    out = out or sys.stdout
    project = Project.find()
    run_dir = project.existing_run(run_id)
    run_id = run_dir.name
    record = records.load_record(run_dir)
    planned = records.planned_jobs(run_dir, record)
    with open_transport(project, record["host"], trust_new_host_key) as transport:
        rows = host_rows(transport, run_dir, record, planned)
    remember(run_dir, record, rows)
    if as_json:
        doc = {"run": run_id, "host": record["host"], "state": run_state(rows), "jobs": [r.to_dict() for r in rows]}
        out.write(json.dumps(doc) + "\n")
    else:
        out.write(render(run_id, record["host"], rows, backends.for_record(record), colour=use_colour(out)))
    out.flush()
    note = unanswered(rows)
    if note:
        sys.stderr.write(f"note: {visible(note)}\n")  # host words: a bare write, no Rich net
    return rows


def host_rows(transport, run_dir, record, planned) -> List:
    """The run's rows as its host reports them (one round trip); an error when the host
    has no such run."""
    from orchestrator import backends
    from orchestrator.runs import hostops
    from orchestrator.runs.state import rows_from_remote

    run_id = run_dir.name
    backend = backends.for_record(record)
    remote = hostops.remote_status(transport, record["workdir"], record["code_hash"], run_id, backend)
    if not remote.get("exists"):
        raise hostops.not_on_host(run_dir, record, remote.get("run_dir"))
    return rows_from_remote(remote, planned, backend)


def remember(run_dir, record, rows) -> None:
    """Keep the last job states seen in the local record, for `orch runs` (no SSH)."""
    from orchestrator.contract import records

    records.note_states(run_dir, record, {r.name: r.state for r in rows})


def main(argv: List[str]) -> Optional[int]:
    """The exit code of a plain `orch status` command line; None when it is not one."""
    parsed = parse(argv)
    return None if parsed is None else run(lambda: show(*parsed))
