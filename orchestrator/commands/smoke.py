"""orch smoke HOST."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import List, Optional

import typer
from rich.markup import escape

from orchestrator import output
from orchestrator.commands.options import TRUST
from orchestrator.config.project import Project
from orchestrator.errors import ExitCode, OrchError
from orchestrator.runs.smoke import SmokeContext, Step, as_json, junit_xml, run_checklist
from orchestrator.transport.connect import open_transport

MARK = {"passed": "[green]PASS[/]", "failed": "[red]FAIL[/]", "skipped": "[yellow]SKIP[/]"}


def register(app: typer.Typer) -> None:
    @app.command()
    def smoke(
        host: str = typer.Argument(..., metavar="HOST", help="Host to check (`local` for this machine)."),
        experiment: str = typer.Option(
            "smoke", "--experiment", metavar="EXPERIMENT", help="Experiment for the tiny end-to-end run."
        ),
        set_: List[str] = typer.Option(
            [], "--set", metavar="KEY=VALUE", help="Override an experiment key (repeatable)."
        ),
        timeout: float = typer.Option(
            600.0, "--timeout", min=1.0, metavar="SECONDS", help="Seconds to wait for the tiny run (1 or more)."
        ),
        junit: Optional[Path] = typer.Option(
            None, "--junit", metavar="FILE", help="Write JUnit XML (one test case per step)."
        ),
        as_json_: bool = typer.Option(False, "--json", help="Print JSON for scripts instead of the checklist."),
        trust_new_host_key: bool = TRUST,
        quiet: bool = output.quiet_option(),
    ):
        """CI-style check: connect, probe, env, GPU kernels, a tiny per-class run, fetch, evaluate, clean up."""
        project = Project.find()
        if junit is not None and not junit.parent.is_dir():
            raise OrchError(f"--junit {junit}: folder {junit.parent} does not exist", ExitCode.USAGE)
        # A wrong experiment or --set is the user's to fix (exit 3) before any host is asked:
        # found at the run step, it cost a connection and a probe and read as a failed check.
        from orchestrator.config import experiments

        experiments.load(project, experiment, list(set_))
        start = time.time()
        # The checklist is the report (stdout); with --json the JSON is, and the checklist is progress.
        out = output.err if as_json_ else output.out
        live = not (as_json_ and output.quiet())
        if not as_json_:
            out.print(f"orch smoke {host}")
        status = None

        def on_start(name: str) -> None:
            nonlocal status
            if live:
                status = out.status(f"{escape(name)} ...")
                status.start()

        def on_end(step: Step) -> None:
            if status is not None:
                status.stop()
            if not as_json_:
                # The detail quotes the host (errors, GPU names): text, not markup.
                out.print(
                    f"  {MARK[step.status]} {escape(step.name):<44} {step.seconds:6.1f} s  {escape(step.detail)}",
                    soft_wrap=True,
                )

        steps: List[Step] = []
        try:
            with open_transport(project, host, trust_new_host_key) as transport:
                ctx = SmokeContext(project, transport, experiment, list(set_), timeout)
                steps = run_checklist(ctx, on_start, on_end)
        except OrchError as exc:
            # Could not even connect: that is the failing step.
            if status is not None:
                status.stop()
            steps = [Step("connect", "failed", round(time.time() - start, 2), str(exc))]
            on_end(steps[0])
        seconds = time.time() - start
        if junit is not None:
            junit.write_text(junit_xml(host, steps) + "\n")
        failed = [s.name for s in steps if s.status == "failed"]
        if as_json_:
            print(json.dumps(as_json(host, steps, seconds)))
        elif failed:
            out.print(f"[red]smoke FAILED[/] at step '{escape(failed[0])}' after {seconds:.1f} s")
        else:
            out.print(f"[green]smoke passed[/] in {seconds:.1f} s")
        if failed:
            raise typer.Exit(int(ExitCode.FAILED))
