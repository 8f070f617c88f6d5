"""One module per CLI command group, and the command table `orch` dispatches on.

The table is here, below both orchestrator/cli.py and the Typer app (commands/app.py), and
imports only the standard library and orchestrator.errors: `orch --help` prints it without
loading Typer, Rich or any command's module.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

from orchestrator.errors import exit_code_table

ABOUT = (
    "Run per-class generative text-classifier experiments on GPU hosts over SSH.\n\n"
    "Results (tables, JSON, logs, run ids) go to stdout; progress, warnings and errors to stderr."
)

# command -> (the module of orchestrator/commands that defines it, its one-line summary),
# in the order `orch --help` lists them.  tests/unit/test_cli_help.py checks each summary
# against the command's own help.
COMMANDS: Dict[str, Tuple[str, str]] = {
    "run": (
        "runs",
        "Sync code, stage data and launch the run's jobs (tmux, or Slurm on a cluster); returns at once.",
    ),
    "status": ("runs", "One table of a run's jobs, read from the host in one SSH round trip."),
    "logs": ("runs", "Tail (or follow) a job's log on its host (over SSH; on this machine for host `local`)."),
    "cancel": ("runs", "Stop a run's jobs (or some of them) and mark them cancelled."),
    "fetch-results": ("runs", "Pull results into runs/<run-id>/, verify them, then evaluate locally."),
    "runs": ("runs", "List local runs and their last known states (no SSH)."),
    "eval": (
        "evaluate",
        "Evaluate a fetched run: metrics.json, predictions.csv and report.md in runs/RUN/ (--plots: and plots/).",
    ),
    "compare": (
        "evaluate",
        "Table across runs (kind, init, accuracy and 95% CI, F1, verdict, compute time, tokens) "
        "and McNemar's exact test per pair.",
    ),
    "bootstrap": (
        "bootstrap",
        "Take a host to a verified environment: probe, Miniconda, env, torch, flash-attn, verify.",
    ),
    "smoke": (
        "smoke",
        "CI-style check: connect, probe, env, GPU kernels, a tiny per-class run, fetch, evaluate, clean up.",
    ),
    "study": ("study", "A whole comparison (members x seeds) as one unit: run, status, fetch, report, resume."),
    "data": ("data", "Data sets the shipped experiments use: get."),
    "hosts": ("hosts", "Configured hosts: list, check, show."),
}
COMMAND_MODULES = {name: module for name, (module, _) in COMMANDS.items()}
ROOT_OPTIONS = (
    ("--version", "Print the version and exit."),
    ("--quiet, -q", "No progress messages on stderr (results on stdout and errors still print)."),
    ("--help", "Show this message and exit."),
)


def exit_codes_line() -> str:
    return "Exit codes: " + "; ".join(f"{int(code)} {why}" for code, why in exit_code_table()) + "."


# Commands that keep errors.on_ctrl_c's note true as they go: what a Ctrl-C leaves behind
# before they launch anything (while orch starts, while Typer parses the command line).
NOTHING_YET = {
    ("run",): "nothing was launched",
    ("study", "run"): "nothing was launched",
    ("study", "resume"): "nothing was launched or relaunched",
}


def start_note(argv: List[str]) -> str:
    """The Ctrl-C note for ARGV before its command acts ("" when the command does not keep one)."""
    words = tuple(a for a in argv if not a.startswith("-"))
    return NOTHING_YET.get(words[:1]) or NOTHING_YET.get(words[:2]) or ""


def starting_line(argv: List[str]) -> str:
    """What a Ctrl-C while orch is still starting (importing, before any command ran) prints."""
    return "interrupted while orch was starting: " + (start_note(argv) or "nothing was done")
