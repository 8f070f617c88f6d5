"""The `orch` command: the command table, `orch --help`, and the hand-over to the Typer app
(orchestrator/commands/app.py), which is imported only when a command runs.

Start-up is paid on every command, so this module imports nothing beyond the standard
library and orchestrator.errors: `orch --help` lists the table below without loading
Typer, Rich, YAML or any command's module.
"""
from __future__ import annotations

import sys
from typing import Dict, Tuple

from orchestrator.errors import exit_code_table

ABOUT = ("Run per-class generative text-classifier experiments on GPU hosts over SSH.\n\n"
         "Results (tables, JSON, logs, run ids) go to stdout; progress, warnings and errors to stderr.")

# command -> (the module of orchestrator/commands that defines it, its one-line summary),
# in the order `orch --help` lists them.  tests/unit/test_cli_help.py checks each summary
# against the command's own help.
COMMANDS: Dict[str, Tuple[str, str]] = {
    "run": ("runs", "Sync code, stage data and launch one detached tmux job per class; returns at once."),
    "status": ("runs", "One table of a run's jobs, read from the host in one SSH round trip."),
    "logs": ("runs", "Tail (or follow) a job's log over SSH."),
    "cancel": ("runs", "Stop a run's jobs (or some of them) and mark them cancelled."),
    "fetch-results": ("runs", "Pull results into runs/<run-id>/, verify them, then evaluate locally."),
    "runs": ("runs", "List local runs and their last known states (no SSH)."),
    "eval": ("evaluate", "Evaluate a fetched run: metrics.json, predictions.csv and report.md in runs/RUN/ "
                         "(--plots: and plots/)."),
    "compare": ("evaluate", "Table across runs (kind, init, accuracy and 95% CI, F1, verdict, compute time, tokens) "
                            "and McNemar's exact test per pair."),
    "bootstrap": ("bootstrap", "Take a host to a verified environment: probe, Miniconda, env, torch, flash-attn, "
                               "verify."),
    "smoke": ("smoke", "CI-style check: connect, probe, env, GPU kernels, a tiny per-class run, fetch, evaluate, "
                       "clean up."),
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


def root_help() -> str:
    width = max(len(n) for n in [*COMMANDS, *(o for o, _ in ROOT_OPTIONS)]) + 2
    lines = ["Usage: orch [OPTIONS] COMMAND [ARGS]...", "", *ABOUT.split("\n"), "", "Options:"]
    lines += [f"  {opt:<{width}}{text}" for opt, text in ROOT_OPTIONS]
    lines += ["", "Commands:"] + [f"  {name:<{width}}{summary}" for name, (_, summary) in COMMANDS.items()]
    return "\n".join(lines + ["", exit_codes_line(), ""])


def main() -> None:
    if sys.argv[1:] == ["--help"]:
        sys.stdout.write(root_help())
        return
    from orchestrator.commands.app import run

    run()


def __getattr__(name: str):
    if name == "app":  # the Typer app, for tests that drive it in-process
        from orchestrator.commands.app import app

        return app
    raise AttributeError(name)


if __name__ == "__main__":
    main()
