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

import atexit
import importlib
import os
import sys

try:
    from orchestrator.commands import ABOUT, COMMAND_MODULES, COMMANDS, ROOT_OPTIONS, exit_codes_line  # noqa: F401 (re-exported for tests)
except KeyboardInterrupt:  # Ctrl-C this early: quietly, as every Ctrl-C (entry())
    sys.stderr.write("interrupted while orch was starting: nothing was done\n")
    os._exit(130)

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
    from orchestrator.commands import start_note
    from orchestrator.errors import on_ctrl_c

    on_ctrl_c(start_note(sys.argv[1:]))  # what a Ctrl-C leaves until the command says otherwise
    from orchestrator.commands.app import run

    run()


def entry() -> None:
    """The `orch` process: :func:`main`, then the end of the process (:func:`finish`)."""
    try:
        main()
        code = 0
    except SystemExit as stop:
        code = stop.code
    except KeyboardInterrupt:
        # Ctrl-C before a command ran (importing Typer, a command's module, a quick path's):
        # one line, exit 130, never a traceback.  Once a command runs, its own handler speaks
        # (commands/app.py run(), quickpath.run()).
        from orchestrator.commands import starting_line

        sys.stderr.write(starting_line(sys.argv[1:]) + "\n")
        code = 130
    finish(code)


def finish(code) -> None:
    """End the process with CODE (as ``sys.exit`` takes it) without the interpreter's teardown.

    Unloading modules at exit is CPU the user waits for and nothing needs: ~0.3 s after
    matplotlib drew a report (of the ~2 s that drawing adds to `orch eval`), ~0.05 s after
    numpy (docs/BENCHMARKS-controller.md).  The exit handlers still run (atexit: logging, temporary
    folders, Paramiko's transports) and the standard streams are flushed; only module and
    object teardown is skipped.  Where a thread that is not a daemon still runs, the
    interpreter's own exit waits for it, as it always did.
    """
    if code is None:
        code = 0
    elif not isinstance(code, int):  # a message: printed, and exit status 1, as sys.exit does
        sys.stderr.write(f"{code}\n")
        code = 1
    threading = sys.modules.get("threading")
    waiting = threading and any(
        t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()
    )
    run_handlers = getattr(atexit, "_run_exitfuncs", None)
    if waiting or run_handlers is None:
        sys.exit(code)
    run_handlers()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: what the interpreter's own exit reports as 120
            code = code or 120
    os._exit(code)


def __getattr__(name: str):
    if name == "app":  # the Typer app, for tests that drive it in-process
        from orchestrator.commands.app import app

        return app
    raise AttributeError(name)


if __name__ == "__main__":
    entry()
