"""The Typer app behind `orch`: assembled here, loaded by orchestrator/cli.py only when a
command runs (or for a command's --help), so that `orch --help` needs none of it."""

from __future__ import annotations

import importlib
import sys

import typer

from orchestrator import output
from orchestrator.commands import ABOUT, COMMAND_MODULES, exit_codes_line
from orchestrator.errors import ExitCode, OrchError, interrupted_line

app = typer.Typer(
    name="orch",
    help=ABOUT,
    epilog=exit_codes_line(),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = output.err


def _readable_help() -> None:
    """Typer >= 0.16 labels every parameter in --help with its Python type (`<bool>` on a
    flag, `<str>`, `<list[str]>`): show the metavar a parameter declares, and nothing for
    flags, as command-line tools do."""
    from typer import core

    def option_type(self, ctx):
        if getattr(self, "is_flag", False):
            return None
        return self.metavar or (self.name or "value").upper()

    def argument_type(self, ctx):
        return None  # the argument's name (its metavar) is already in the first column

    def usage_name(self):  # NAME / [NAME] / JOB... as usage lines write them (Typer: {NAME})
        name = self.display_name_raw
        if self.nargs != 1 and not name.endswith("..."):
            name += "..."
        return name if self.required else f"[{name}]"

    for name, display in (("TyperOption", option_type), ("TyperArgument", argument_type)):
        cls = getattr(core, name, None)
        if cls is not None and hasattr(cls, "display_type_rich"):
            cls.display_type_rich = display
    argument = getattr(core, "TyperArgument", None)
    if argument is not None and hasattr(argument, "_usage_display_name"):
        argument._usage_display_name = usage_name


_readable_help()


def _version(value: bool) -> None:
    if value:
        from orchestrator import __version__

        print(f"orch {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    quiet: bool = output.quiet_option(),
) -> None:
    # A callback keeps Typer in command-group mode even when only one command module
    # is loaded (see _register_commands), so `orch smoke HOST` is never parsed as `orch HOST`.
    pass


def register_commands(argv=None) -> None:
    """Only the module a command needs is imported, which keeps `orch status` quick;
    unknown words load them all (Typer then says what is wrong)."""
    argv = sys.argv[1:] if argv is None else argv
    first = next((a for a in argv if not a.startswith("-")), None)
    wanted = [COMMAND_MODULES[first]] if first in COMMAND_MODULES else sorted(set(COMMAND_MODULES.values()))
    for name in wanted:
        importlib.import_module(f"orchestrator.commands.{name}").register(app)


register_commands()


def run() -> None:
    try:
        # Standalone mode: click prints usage errors itself and exits 2; our own
        # failures arrive here as OrchError and become one message and a named code.
        app(prog_name="orch")
    except OrchError as exc:
        # The message is data (it may quote remote output like "[orch] ..."): no markup.
        # Its control characters are escaped by the console itself (output.py).
        # Ctrl-C stops a command, it is not the command's failure: its message says what stopped
        if exc.code != ExitCode.INTERRUPTED:
            err_console.print("[bold red]error:[/] ", end="")
        err_console.print(exc.message, markup=False, soft_wrap=True)
        if exc.hint:
            err_console.print(f"  hint: {exc.hint}", markup=False, soft_wrap=True)
        sys.exit(int(exc.code))
    except KeyboardInterrupt:
        err_console.print(interrupted_line(), markup=False, soft_wrap=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except SystemExit as stop:
        # Typer turns a Ctrl-C that no command caught into a silent exit 130: say it too.
        if stop.code == int(ExitCode.INTERRUPTED) and _ctrl_c(stop):
            err_console.print(interrupted_line(), markup=False, soft_wrap=True)
        raise


def _ctrl_c(exc: BaseException) -> bool:
    """Whether EXC was raised on the way out of a KeyboardInterrupt."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False
