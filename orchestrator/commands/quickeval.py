"""`orch eval`: evaluate a fetched run; its plain command lines without Typer (issue 15:
an evaluation costs what the arithmetic over its texts costs, not a fixed tax).

orchestrator/cli.py hands a command line here first.  Only the plain forms are taken:
`[-q] eval [RUN] [--prior uniform|train] [--bands auto|poc|mdlm] [--plots|--no-plots]
[--json] [-q]`.  Anything else (`--help`, an unknown option, a second argument, an option
without its value) returns None and goes the Typer way, so help texts and usage errors
stay exactly Typer's.  Typer's parsing builds a pydantic adapter per parameter (~0.2 s of
CPU on a small machine); the Typer command (commands/evaluate.py) calls :func:`evaluate`
too: one implementation of the command.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, List, Optional

from orchestrator.commands.quickpath import plain, run
from orchestrator.errors import ExitCode, OrchError

VALUED = {"--prior": "prior", "--bands": "bands"}
FLAGS = {"--plots": ("plots", True), "--no-plots": ("plots", False), "--json": ("as_json", True)}


def parse(argv: List[str]) -> Optional[Dict[str, Any]]:
    """{"run", "prior", "bands", "plots", "as_json", "quiet"} for a plain `eval` command
    line; None for anything else (Typer parses it, and words any error)."""
    found = plain(argv, ["eval"], flags=FLAGS, valued=VALUED)
    if found is None:
        return None
    run_id, given, quiet = found
    parsed: Dict[str, Any] = {"run": run_id, "prior": None, "bands": None, "plots": False, "as_json": False}
    for option, value in given:  # in order: the last of --plots / --no-plots wins
        if option in VALUED:
            parsed[VALUED[option]] = value
        else:
            key, flag = FLAGS[option]
            parsed[key] = flag
    parsed["quiet"] = quiet
    return parsed


def _check_choice(option: str, value: Optional[str], choices: tuple) -> None:
    if value is not None and value not in choices:
        raise OrchError(f"{option}: expected one of {', '.join(choices)}, got {value!r}", ExitCode.USAGE)


def evaluate(run: Optional[str], prior: Optional[str], bands: Optional[str], plots: bool, as_json: bool) -> None:
    """Evaluate a fetched run: metrics.json, predictions.csv and report.md in runs/RUN/
    (with PLOTS: and plots/); the summary, or metrics.json with AS_JSON, on stdout.
    Exits 1 (OrchError FAILED) when the run sets eval.min_accuracy and falls below it."""
    from orchestrator.config.project import Project
    from orchestrator.results.evaluate import check_min_accuracy, evaluate_run

    _check_choice("--prior", prior, ("uniform", "train"))
    _check_choice("--bands", bands, ("auto", "poc", "mdlm"))
    run_dir = Project.find().existing_run(run, copy_ok=True)  # a copy is evaluated as the folder it is
    metrics = evaluate_run(run_dir, prior=prior, bands=bands, plots=plots)
    if as_json:
        sys.stdout.write(json.dumps(metrics, indent=2, default=str) + "\n")
        sys.stdout.flush()
    else:
        from orchestrator import output
        from orchestrator.commands.results_view import print_summary

        print_summary(output.out, metrics, run_dir)
    check_min_accuracy(metrics)


def main(argv: List[str]) -> Optional[int]:
    """The exit code of a plain `orch eval` command line; None when it is not one."""
    parsed = parse(argv)
    if parsed is None:
        return None
    from orchestrator import output

    output.set_quiet(parsed.pop("quiet"))
    return run(lambda: evaluate(**parsed))
