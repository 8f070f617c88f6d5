"""`orch eval [RUN]` and `orch compare RUN...`: local, offline, read the fetched score files."""

from __future__ import annotations

import json
from typing import List, Optional

import typer

from orchestrator import output


def eval_command(
    run: Optional[str] = typer.Argument(None, metavar="RUN", help="Run id (default: the newest run)."),
    prior: Optional[str] = typer.Option(None, "--prior", metavar="uniform|train", help="Override eval.prior."),
    bands: Optional[str] = typer.Option(None, "--bands", metavar="auto|poc|mdlm", help="Override eval.bands."),
    plots: bool = typer.Option(
        False, "--plots/--no-plots", help="Also draw plots/*.png (a few seconds; kept while the results do not change)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print metrics.json to stdout instead of the tables."),
    quiet: bool = output.quiet_option(),
    # Hidden: only to say what to use instead (Click's "Possible options: --quiet" did not).
    set_: List[str] = typer.Option([], "--set", hidden=True),
) -> None:
    """Evaluate a fetched run: metrics.json, predictions.csv and report.md in runs/RUN/ (--plots: and plots/).

    Exits 1 when the run sets eval.min_accuracy and the accuracy falls below it.
    """
    if set_:
        from orchestrator.errors import ExitCode, OrchError

        raise OrchError(
            f"orch eval takes no --set ({set_[0]}): it evaluates the run with the config it was launched with",
            ExitCode.USAGE,
            hint="--prior uniform|train overrides eval.prior and --bands auto|poc|mdlm eval.bands; other eval.* "
            "keys are set at launch (`orch run EXPERIMENT --set eval.KEY=VALUE`)",
        )
    # One implementation with the quick path that cli.py takes for plain command lines.
    from orchestrator.commands.quickeval import evaluate

    evaluate(run, prior, bands, plots, as_json)


def compare_command(
    runs: List[str] = typer.Argument(
        ..., metavar="RUN...", help="Run ids to compare (two or more for the pairwise tests)."
    ),
    force: bool = typer.Option(False, "--force", help="Compare runs with different test sets on the ids they share."),
    per_token: bool = typer.Option(False, "--per-token", help="Use the per-token (length-normalised) predictions."),
    as_json: bool = typer.Option(False, "--json", help="Print the comparison as JSON."),
    quiet: bool = output.quiet_option(),
) -> None:
    """Table across runs (kind, init, accuracy and 95% CI, F1, verdict, compute time, tokens) and McNemar's exact
    test per pair."""
    from orchestrator.commands.results_view import print_comparison
    from orchestrator.config.project import Project
    from orchestrator.results.compare import compare_runs

    project = Project.find()
    found = [(name, project.existing_run(name, copy_ok=True)) for name in runs]  # local: a copy is its folder
    result = compare_runs(found, force=force, per_token=per_token)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        print_comparison(output.out, result)


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
    app.command("compare")(compare_command)
