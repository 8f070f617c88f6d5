"""LaTeX for a paper draft: text escaped so it prints as the text it is, and a booktabs
tabular (``\\usepackage{booktabs}``) a study report writes as summary.tex.

Names in a study come from its file and from what hosts send back: ``a_b&c%`` must print as
those five characters, not end a cell, start a comment or fail to compile.
"""

from __future__ import annotations

import re
from typing import Iterable, List, Sequence

from orchestrator.terminal import visible

# Each character LaTeX reads as markup, as the text command that prints it.
_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    # in T1 and OT1 encodings these print other glyphs (¡ ¿ or a dash ligature)
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}
_PATTERN = re.compile("|".join(re.escape(c) for c in _SPECIAL))


def escape(value: object) -> str:
    """VALUE as literal LaTeX text on one line: its special characters printed as
    themselves, its control characters shown as escapes (terminal.visible), so no line
    break, comment or command of its own reaches the file."""
    text = visible(str(value)).replace("\n", " ").replace("\r", " ")
    return _PATTERN.sub(lambda m: _SPECIAL[m.group(0)], text)


def tabular(
    columns: str, header: Sequence[str], groups: Iterable[Sequence[Sequence[str]]], comments: Sequence[str] = ()
) -> str:
    """A booktabs tabular: COLUMNS its column spec ("lrrr"), HEADER and each row's cells
    LaTeX already (escape text first), GROUPS of rows split by \\midrule, COMMENTS as
    %-lines above it (escaped here: a comment ends at the line's end only)."""
    out: List[str] = [f"% {visible(c).replace(chr(10), ' ')}" for c in comments]
    out += [f"\\begin{{tabular}}{{{columns}}}", "\\toprule", " & ".join(header) + " \\\\", "\\midrule"]
    first = True
    for rows in groups:
        if not rows:
            continue
        if not first:
            out.append("\\midrule")
        first = False
        out += [" & ".join(cells) + " \\\\" for cells in rows]
    out += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(out)
