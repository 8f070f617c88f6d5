"""Where a command's output goes, the same way in every command.

- stdout carries what the command produces: tables, JSON, logs, run ids. A script can
  capture it (`R=$(orch run smoke)` is the run id and nothing else).
- stderr carries what it says while working: progress, notes, hints, warnings, errors.
  `--quiet` drops the progress and notes; warnings and errors always show.
- Output that is not a terminal is never hard-wrapped: rich would cut lines at 80 columns
  (COLUMNS is ignored there too), which breaks grep and copy-paste of ids and paths.
"""

from __future__ import annotations

from typing import Any, Iterable, List

from rich.console import Console, ConsoleDimensions, ConsoleRenderable, RenderHook
from rich.measure import Measurement
from rich.segment import Segment

from orchestrator import terminal

# Wide enough that no line is ever folded; tables are only as wide as their content.
UNWRAPPED_WIDTH = 10_000

_quiet = False


class _Console(Console):
    """A rich Console that does not wrap when its stream is not a terminal."""

    @property
    def size(self) -> ConsoleDimensions:
        if not self.is_terminal:
            return ConsoleDimensions(UNWRAPPED_WIDTH, 25)
        return super().size

    @size.setter
    def size(self, new_size) -> None:  # rich's own setter, kept for Console's API
        Console.size.fset(self, new_size)

    def _write_buffer(self) -> None:
        # A Ctrl-C as Rich writes a line (likely: a signal that came during the write lands
        # right after it) left the line in Rich's buffer, and the next print, the
        # "interrupted: ..." message, wrote it a second time.
        try:
            super()._write_buffer()
        except KeyboardInterrupt:
            del self._buffer[:]
            raise


class _NoControls:
    """A renderable as Rich renders it, with no control character in its text: host text
    (a GPU name, a reason, a line of output) can reach any table or message, and Rich
    passes ESC through.  Rich's own cursor and colour codes are control segments and
    styles, not text, so they are untouched."""

    def __init__(self, inner: ConsoleRenderable):
        self.inner = inner

    def __rich_console__(self, console: Console, options: Any) -> Iterable[Segment]:
        for segment in console.render(self.inner, options):
            if segment.control is None and terminal.has_control(segment.text):
                segment = Segment(terminal.shown(segment.text), segment.style)
            yield segment

    def __rich_measure__(self, console: Console, options: Any) -> Measurement:
        return Measurement.get(console, options, self.inner)


class _SafetyNet(RenderHook):
    """Under every print of our consoles: the last guard, whatever a command forgot."""

    def process_renderables(self, renderables: List[ConsoleRenderable]) -> List[ConsoleRenderable]:
        return [_NoControls(r) for r in renderables]


def console(stderr: bool = False, **options: Any) -> Console:
    made = _Console(stderr=stderr, highlight=False, **options)
    made.push_render_hook(_SafetyNet())
    return made


out = console()  # data
err = console(stderr=True)  # messages


def set_quiet(value: bool) -> None:
    global _quiet
    _quiet = bool(value)


def quiet() -> bool:
    return _quiet


def say(*objects: Any, **kwargs: Any) -> None:
    """A progress message or note on stderr (dropped with --quiet). Rich markup allowed:
    escape anything that came from a host or a user."""
    if not _quiet:
        err.print(*objects, **kwargs)


def warn(text: str) -> None:
    """A warning on stderr, shown even with --quiet; ``text`` is plain (never markup; its
    control characters are escaped by the console's safety net)."""
    err.print("[yellow]warning:[/] ", end="")
    err.print(text, markup=False, soft_wrap=True)


def _quiet_option(value: bool) -> bool:
    if value:
        set_quiet(True)
    return value


def quiet_option() -> Any:
    """`--quiet/-q` for a command: silence progress messages (data and errors still print)."""
    import typer  # here: the Typer-free paths (commands/quickfetch.py) print through this module too

    return typer.Option(
        False,
        "--quiet",
        "-q",
        callback=_quiet_option,
        is_eager=True,
        help="No progress messages on stderr (results on stdout and errors still print).",
    )
