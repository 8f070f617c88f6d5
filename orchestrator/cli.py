"""The `orch` command: the command table, `orch --help`, and the hand-over to the Typer app
(orchestrator/commands/app.py), which is imported only when a command runs.

Start-up is paid on every command, so this module imports nothing beyond the standard
library and the command table (orchestrator/commands/__init__.py): `orch --help` lists it
without loading Typer, Rich, YAML or any command's module, and a plain `orch status` runs
without them (orchestrator/commands/quickstatus.py), nor a plain `orch study status NAME`
(studystatus.py); plain `orch fetch-results` and `orch eval` run without Typer (quickfetch.py,
quickeval.py).
"""

from __future__ import annotations

import importlib
import sys

from orchestrator.commands import ABOUT, COMMAND_MODULES, COMMANDS, ROOT_OPTIONS, exit_codes_line  # noqa: F401 (re-exported for tests)

QUICK = {"status": "quickstatus", "study": "studystatus", "fetch-results": "quickfetch", "eval": "quickeval"}


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
    # Plain command lines of these go without Typer: `orch status` and `orch study status`
    # without Rich or YAML either (commands/quickstatus.py, studystatus.py), `fetch-results`
    # and `eval` (quickfetch.py, quickeval.py).
    for command, module in QUICK.items():
        if command in sys.argv[1:3]:
            quick = importlib.import_module(f"orchestrator.commands.{module}")
            code = quick.main(sys.argv[1:])
            if code is not None:
                sys.exit(code)
    from orchestrator.commands.app import run

    run()


def __getattr__(name: str):
    if name == "app":  # the Typer app, for tests that drive it in-process
        from orchestrator.commands.app import app

        return app
    raise AttributeError(name)


if __name__ == "__main__":
    main()
