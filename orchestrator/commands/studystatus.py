"""`orch study status NAME [--json]` without Typer, Rich or YAML (issue 14: a study's
status costs about what one run's `orch status` costs).

orchestrator/cli.py hands a command line here (through quickstatus.main) before Typer.
Only the plain forms are taken: `study status NAME [--json] [--trust-new-host-key] [-q]`
with NAME a study's name; a path to a study file (its record is under the name inside
it, which needs YAML), `--help` and anything unusual go the Typer way, whose command
(commands/study.py) calls show() too: one implementation of what the table prints.
"""

from __future__ import annotations

import json
import sys
from typing import List, Optional, Tuple

from orchestrator.commands.quickpath import plain, run

LEFT = ("run", "member", "state", "progress")
HEAD = ("run", "member", "seed", "state", "jobs", "progress", "ETA")


def parse(argv: List[str]) -> Optional[Tuple[str, bool, bool]]:
    """(NAME, --json, --trust-new-host-key) for a plain `study status NAME` command line;
    None for anything else (a path to a study file included)."""
    found = plain(argv, ["study", "status"], flags=("--json", "--trust-new-host-key"))
    if found is None or found[0] is None or "/" in found[0] or found[0].endswith((".yaml", ".yml")):
        return None
    name, given, _ = found
    options = {option for option, _ in given}
    return name, "--json" in options, "--trust-new-host-key" in options


class Hosts:
    """One transport per host, opened when first needed and closed at the end."""

    def __init__(self, project, trust: bool):
        import contextlib

        self.project, self.trust = project, trust
        self.stack = contextlib.ExitStack()
        self.open: dict = {}

    def __call__(self, host: str):
        from orchestrator.transport.connect import open_transport

        if host not in self.open:
            self.open[host] = self.stack.enter_context(open_transport(self.project, host, self.trust))
        return self.open[host]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stack.close()


def render(name: str, views, colour: bool = False) -> str:
    from orchestrator.commands.statustable import table
    from orchestrator.runs.state import fmt_duration
    from orchestrator.terminal import visible

    body = [
        [
            v.run_id,
            v.member,
            str(v.seed),
            v.state + _why(v),
            f"{v.jobs_done}/{v.jobs}" if v.jobs else "-",
            v.progress or "-",
            fmt_duration(v.eta_s),
        ]
        for v in views
    ]
    out = table(f"study {name}", HEAD, body, [v.state for v in views], LEFT, colour)
    for v in views:  # as `orch status` says it under its table, for each run it concerns
        if v.ran_on_cpu:
            jobs, host = ", ".join(v.ran_on_cpu), v.host
            said = (
                f"{v.run_id}: {jobs} given a GPU but ran on the CPU; unless the run asks for the CPU "
                f"(train.device: cpu), torch on {host} cannot use the GPU (`orch logs {v.run_id} "
                f"{v.ran_on_cpu[0]}` says why): `orch bootstrap {host}` installs a CUDA build of torch"
            )
            out += visible(said) + "\n"
    return out


def _why(v) -> str:
    """What the state cell adds to the state word: the reason, and the jobs that ran on the CPU."""
    said = [v.reason] if v.reason else []
    if v.ran_on_cpu:
        said.append(f"{', '.join(v.ran_on_cpu)} ran on CPU")
    return f" ({'; '.join(said)})" if said else ""


def show(record: dict, project, as_json: bool, trust_new_host_key: bool, out=None) -> List:
    """Every run of the study's state (one round trip per host), printed as the table or
    as JSON on ``out`` (stdout).  Returns the views."""
    from orchestrator.commands.statustable import use_colour
    from orchestrator.runs import study_status
    from orchestrator.terminal import visible

    out = out or sys.stdout
    with Hosts(project, trust_new_host_key) as hosts:
        views = study_status.status(project, record, hosts)
    if as_json:
        out.write(json.dumps({"study": record["name"], "runs": [v.to_dict() for v in views]}) + "\n")
    else:
        out.write(render(record["name"], views, colour=use_colour(out)))
    out.flush()
    for note in dict.fromkeys(v.note for v in views if v.note):
        sys.stderr.write(f"note: {visible(note)}\n")  # host words: a bare write, no Rich net
    if study_status.files_changed(record):  # hashes only: YAML is read when the study file changed
        from orchestrator.runs.study import file_edits

        for line in file_edits(project, record)[0]:
            sys.stderr.write(visible(line) + "\n")
    return views


def main(argv: List[str]) -> Optional[int]:
    """The exit code of a plain `orch study status NAME` command line; None when it is not one."""
    parsed = parse(argv)
    if parsed is None:
        return None
    name, as_json, trust = parsed

    def command() -> None:
        from orchestrator.config.project import Project
        from orchestrator.runs.study_status import load_record

        project = Project.find()
        show(load_record(project, name), project, as_json, trust)

    return run(command)
