"""Text a host sent, made safe to show on a terminal.  Standard library only.

A host is untrusted (docs/ARCHITECTURE.md, "A hostile host"), and so is every byte of its
logs, error output and documents.  A terminal does not just show what it is given: ESC,
CSI (0x9b) and the other C0/C1 controls start sequences that move the cursor and rewrite
what is already on the screen, clear it, set the window title, write the clipboard (OSC
52), make a link say one address and open another (OSC 8), or make the terminal answer a
query, an answer the shell then reads as typed input.  So before host text reaches a
terminal, each control character is shown as its escape (ESC as ``\\x1b``), as git does
for the messages a remote sends.  So are the invisible Unicode format characters
(category Cf) and the line and paragraph separators: a right-to-left override (U+202E)
makes a terminal show ``fdp.exe`` for ``exe.pdf``, reordering the rest of the line, and
zero-width ones hide text or make two different names look the same (they are shown as
``\\u202e``; an emoji joined by U+200D is shown in its parts).  Which controls survive
depends on the text:

- ``visible``: one line (a table cell): none, not even a newline.
- ``shown``: a message (an error quoting the host's output): newlines and tabs.
- ``log_text``: a log (`orch logs`): newlines, tabs, carriage returns (a progress bar
  redrawing its line) and colour (SGR: ``ESC [ digits m``), which cannot move the cursor.
"""

from __future__ import annotations

import re
from typing import IO, List, Optional

# Unicode's format characters (category Cf, as of Unicode 15: bidi embeddings, overrides,
# isolates and marks, zero-width spaces and joiners, the BOM, invisible operators, tag
# characters ...) and the line and paragraph separators U+2028/U+2029 (Zl, Zp).  Written
# out, not built from unicodedata at import (a walk over every code point costs every
# command its start-up time); tests/unit/test_terminal.py checks it against unicodedata.
_FORMAT = (
    "\xad\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e\u200b-\u200f\u2028-\u202e"
    "\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb\U000110bd\U000110cd\U00013430-\U0001343f"
    "\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0001\U000e0020-\U000e007f"
)
# C0 controls, DEL and the C1 controls (0x80-0x9f: a terminal may read 0x9b as CSI), and
# the format characters.
_CONTROL = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{_FORMAT}]")
_CONTROL_BUT_LAYOUT = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{_FORMAT}]")  # all but \t and \n
# A colour sequence (kept) or any control a log may not carry (escaped): one pass.
_LOG_UNSAFE = re.compile(f"\\x1b\\[[0-9;:]*m|[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f-\\x9f{_FORMAT}]")
# The end of a chunk that may be the start of a colour sequence the next chunk completes.
_OPEN_SGR = re.compile(r"\x1b(\[[0-9;:]{0,32})?\Z")


def _escape(ch: str) -> str:
    return repr(ch)[1:-1]  # '\x1b', '\x07', '\r', '\x9b', '\u202e', '\xad'


def _escape_match(m: "re.Match[str]") -> str:
    return _escape(m.group())


def _log_match(m: "re.Match[str]") -> str:
    text = m.group()
    return text if len(text) > 1 else _escape(text)  # a whole colour sequence, or one control


def visible(text: str) -> str:
    """TEXT on one line, with every control character (C0, DEL, C1, format) as its escape."""
    return _CONTROL.sub(_escape_match, text)


def shown(text: str) -> str:
    """TEXT with every control character but newline and tab as its escape."""
    return _CONTROL_BUT_LAYOUT.sub(_escape_match, text)


def log_text(text: str) -> str:
    """A log's TEXT as a terminal may show it: newlines, tabs, carriage returns and colour
    kept, every other control character as its escape."""
    return _LOG_UNSAFE.sub(_log_match, text)


def last_lines(text: str, lines: int = 5, limit: int = 1000) -> List[str]:
    """The last LINES non-blank lines of TEXT (a host's error output) for a message, each
    through ``visible``: at most LIMIT characters of TEXT's end in all, a line cut at its
    start marked ``...``.  A host may print megabytes on one line, and a message quotes it."""
    end = text.rstrip()
    piece = end[-limit:]
    found = piece.splitlines()
    if len(end) > limit and found:
        found[0] = "..." + found[0]  # the first line began before the part kept
    return [visible(line) for line in found if line.strip()][-lines:]


def has_control(text: str) -> bool:
    """Whether ``shown`` would change TEXT."""
    return _CONTROL_BUT_LAYOUT.search(text) is not None


class LogStream:
    """Writes a streamed log through ``log_text``.  A colour sequence split between two
    chunks is held back until the next one completes it (or ``close`` escapes it), so it
    is neither cut in half nor let through as a bare ESC."""

    def __init__(self, out: IO[str]):
        self.out = out
        self._held = ""

    def write(self, text: str) -> None:
        text = self._held + text
        tail: Optional["re.Match[str]"] = _OPEN_SGR.search(text)
        self._held = tail.group() if tail else ""
        if tail:
            text = text[: tail.start()]
        if text:
            self.out.write(log_text(text))

    def flush(self) -> None:
        self.out.flush()

    def close(self) -> None:
        if self._held:
            self.out.write(log_text(self._held))
            self._held = ""
        self.out.flush()
