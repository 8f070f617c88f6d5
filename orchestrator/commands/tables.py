"""Rich table columns shared by `orch compare` and `orch runs`."""

from __future__ import annotations

from typing import Any, Iterable


def add_name_column(table: Any, header: str, names: Iterable[str]) -> None:
    """A column that always shows run ids whole.

    Default run ids differ only at the end (smoke-20261126-031341), so rich's squeeze to
    "smoke-…" on an 80-column terminal or a pipe would make them indistinguishable;
    the other columns wrap instead (see add_column).
    """
    width = max([len(header)] + [len(n) for n in names])
    table.add_column(header, no_wrap=True, min_width=width)


def add_column(table: Any, header: str, justify: str = "left") -> None:
    """A column that wraps, folding long words, rather than cutting a value to "…"."""
    table.add_column(header, justify=justify, overflow="fold")
