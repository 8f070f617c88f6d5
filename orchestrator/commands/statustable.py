"""The `orch status` table as plain text: standard library only, so that `orch status`
prints it without loading Rich (orchestrator/commands/quickstatus.py), and `--watch`
shows the same table in a Rich Live view (commands/runs.py wraps these lines).

Every cell that came from the host (reasons, GPU names, phases, scheduler notes) is
untrusted: there is no markup to interpret here, and control characters (an escape
sequence, a newline that would start a fake row) are written as visible escapes.
"""

from __future__ import annotations

import os
import unicodedata
from typing import List, Optional, Sequence

from orchestrator.runs.state import StatusRow, fmt_duration, shown_state
from orchestrator.terminal import visible
from remote.jobstate import CANCELLED, FAILED, LOST, UNKNOWN, WAITING

# The colours the Rich table used for a state word (ANSI SGR codes), shown on a terminal.
STATE_COLOURS = {
    "done": "32",  # green
    "fetched": "32",
    "running": "36",  # cyan
    "failed": "31",  # red
    "lost": "31",
    "cancelled": "33",  # yellow
    "unknown": "35",  # magenta
}
LEFT = ("job", "state", "phase")  # text columns; the others are numbers, right-aligned
GAP = "  "


def width(text: str) -> int:
    """Terminal columns TEXT takes: East Asian wide characters two, combining marks none."""
    if text.isascii():
        return len(text)
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def use_colour(stream) -> bool:
    """Colour only on a terminal, and never with NO_COLOR set or TERM=dumb (as Rich does)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def _fmt(value, spec: str = "") -> str:
    if value is None:
        return "-"
    return format(value, spec) if spec else str(value)


def _state(r: StatusRow) -> str:
    """The state word and what explains it, as the table shows it."""
    if r.reason and r.state in (FAILED, CANCELLED, LOST, UNKNOWN):
        return f"{r.state} ({r.reason})"
    if r.state == WAITING and (r.reason or r.note):
        # What it waits for: its place in a GPU's line, a scheduler's stop, ...
        return f"{r.state} (" + "; ".join(x for x in (r.reason, r.note) if x) + ")"
    if r.note:
        return f"{r.state} ({r.note})"
    return r.state


def columns(rows: Sequence[StatusRow], backend) -> List[str]:
    id_column = backend.id_column
    return (
        ["job"]
        + ([id_column] if id_column else [])
        + ["GPU", "state", "phase", "step/total", "loss", "tokens/s", "ETA", "elapsed"]
        + (["requeues"] if any(r.requeues for r in rows) else [])
    )


def cells(r: StatusRow, backend, requeued: bool = False) -> List[str]:
    id_column = backend.id_column
    return [
        r.name,
        *([backend.ident(r.backend) or "-"] if id_column else []),
        f"{r.gpu} (ran on CPU)" if r.gpu_unused else (r.gpu or "-"),
        _state(r),
        r.phase or "-",
        f"{r.step}/{r.total}" if r.step is not None else "-",
        _fmt(r.loss, ".4f"),
        _fmt(r.tokens_per_s, ",.0f"),
        fmt_duration(r.eta_s),
        fmt_duration(r.elapsed_s),
        *([str(r.requeues)] if requeued else []),
    ]


def render(run_id: str, host: str, rows: Sequence[StatusRow], backend, colour: bool = False) -> str:
    """The title line ("RUN on HOST: STATE"), a header, a rule, then one line per job.

    Lines are never wrapped or cut: a long reason stays whole on its row (grep and
    copy-paste find it), and a terminal folds what does not fit."""
    head = columns(rows, backend)
    requeued = "requeues" in head
    body = [cells(r, backend, requeued) for r in rows]
    title = f"{run_id} on {host}: {shown_state(list(rows))}"
    out = table(title, head, body, [r.state for r in rows], LEFT, colour)
    unused = [r.name for r in rows if r.gpu_unused]
    if unused:
        out += (
            f"{', '.join(visible(n) for n in unused)}: given a GPU but running on the CPU; unless the run asks for "
            f"the CPU (train.device: cpu), torch on {visible(host)} cannot use the GPU (the job's log says why): "
            f"`orch bootstrap {visible(host)}` installs a CUDA build of torch\n"
        )
    return out


def table(
    title: str,
    head: Sequence[str],
    body: Sequence[Sequence[str]],
    states: Sequence[str],
    left: Sequence[str],
    colour: bool = False,
) -> str:
    """TITLE, a header, a rule, one line per row: columns named in LEFT left-aligned, the
    others right-aligned; the "state" column's leading word (STATES, one a row) coloured on
    a terminal.  Every cell is made visible (control characters escaped) here."""
    body = [[visible(c) for c in values] for values in body]
    widths = [max([width(h)] + [width(line[i]) for line in body]) for i, h in enumerate(head)]
    state_at = list(head).index("state")

    def line(values: Sequence[str], state: Optional[str] = None) -> str:
        out = []
        for i, (name, value) in enumerate(zip(head, values)):
            pad = " " * (widths[i] - width(value))
            if i == len(head) - 1 and name in left:
                pad = ""  # no trailing blanks
            if colour and state is not None and i == state_at and state in STATE_COLOURS:
                word, rest = value[: len(state)], value[len(state) :]
                value = f"\x1b[{STATE_COLOURS[state]}m{word}\x1b[0m{rest}"
            out.append(value + pad if name in left else pad + value)
        return GAP.join(out).rstrip()

    lines = [visible(title), line(head), GAP.join("-" * w for w in widths)]
    lines += [line(values, state) for values, state in zip(body, states)]
    return "\n".join(lines) + "\n"
