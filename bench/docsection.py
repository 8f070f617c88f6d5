"""The one way the benchmark scripts write their figures into a markdown file (--write)."""

from __future__ import annotations

from pathlib import Path


def replace_section(path: Path, section: str, text: str) -> None:
    """Replace the markdown section headed ``section`` (up to the next ``## ``), or append it."""
    old = path.read_text() if path.exists() else ""
    if section in old:
        head, rest = old.split(section, 1)
        tail = rest[rest.find("\n## ") :] if "\n## " in rest else ""
        new = head + text + tail
    else:
        new = old.rstrip("\n") + "\n\n" + text
    path.write_text(new)


def write_or_print(path: "Path | None", section: str, text: str) -> None:
    """Replace the section in PATH (a --write argument), or print the text when there is none."""
    if path:
        replace_section(path, section, text)
        print(f"wrote {path}")
    else:
        print(text)
