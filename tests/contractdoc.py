"""The key lists docs/CONTRACT.md gives for each JSON document the host side writes.

The contract states them as sentences like "Keys: `a`, `b`." or "Reply keys: `x`, `y`;
job keys: ...", under a section heading (`## status.json`) or a command's name
(**`launch`**). ``documented()`` returns {"<section>/<label>": {keys}}, e.g.
{"status.json/keys": {...}, "launch/reply keys": {...}}.
"""

import re
from pathlib import Path
from typing import Dict, Set

CONTRACT = Path(__file__).resolve().parents[1] / "docs" / "CONTRACT.md"
_LABEL = re.compile(r"(?:^|(?<=[.;] )|(?<=\n))((?:(?:[A-Z][a-z]*|[a-z]+) ){0,2}[Kk]eys(?: of `[^`]+`)?): ")
_CONTEXT = re.compile(r"^## (.+)$|\*\*`([\w-]+)[^`]*`\*\*", re.M)


def documented(text: str = "") -> Dict[str, Set[str]]:
    text = text or CONTRACT.read_text()
    out: Dict[str, Set[str]] = {}
    for m in _LABEL.finditer(text):
        before = list(_CONTEXT.finditer(text, 0, m.start()))
        if not before:
            continue
        context = (before[-1].group(1) or before[-1].group(2)).split(" (")[0].strip()
        body = re.split(r";|\.\s|\.$|\s\(", text[m.end() :], maxsplit=1)[0]
        out[f"{context}/{m.group(1).lower()}"] = set(re.findall(r"`([^`]+)`", body))
    return out


if __name__ == "__main__":
    for k, v in documented().items():
        print(k, sorted(v))
