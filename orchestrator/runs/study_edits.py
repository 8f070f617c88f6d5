"""What changed in a study file since study.json recorded it, in words (docs/STUDIES.md).

study.json is the study as `orch study run` last recorded it; the file may have moved on
since.  What an edit means depends on what it touches: a launched run's config cannot
change (a study's runs keep the config they were launched with: a new version is another
study), a new member or seed is runs to launch, and a new ensemble only combines runs the
study has (no new runs: the report includes it), and so does a change to the primary
comparisons (`compare:` says which pairs the report corrects for multiple testing over: no
run changes).  `study run` refuses the first kind and names it, and records the report's
kinds; `study status` and `study report` name every kind.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Set

CHANGED = "changed"  # a launched run would get another config: refused
REMOVED = "removed"  # launched runs would leave the study: refused
NEW = "new"  # runs to launch (a member or seed added)
NOT_LAUNCHED = "not launched"  # only runs not launched yet take it (not the job state "pending": queued)
ENSEMBLE = "ensemble"  # the report's combinations: no runs
COMPARE = "compare"  # the report's primary comparisons: no runs
REFUSED = (CHANGED, REMOVED)


@dataclass
class Edit:
    text: str  # "member mdlm: score.mdlm_draws 8 -> 16"
    kind: str
    runs: List[str] = field(default_factory=list)  # the launched runs it concerns (NEW: the runs it adds)


def _shown(value: Any) -> str:
    return "(not set)" if value is _UNSET else json.dumps(value)


_UNSET = object()


def _keys(old: Dict, new: Dict, label: str) -> List[str]:
    """`LABEL: key a -> b` for each key whose value differs between two override maps."""
    out = []
    for key in list(old) + [k for k in new if k not in old]:
        a, b = old.get(key, _UNSET), new.get(key, _UNSET)
        if a != b:
            out.append(f"{label}{key} {_shown(a)} -> {_shown(b)}")
    return out


def edits(record: Dict, study, launched: Set[str]) -> List[Edit]:
    """How STUDY (config.studies.Study, as its file says now) differs from RECORD (study.json);
    LAUNCHED: the run ids of RECORD that were launched."""
    new = study.resolved()
    old_runs = {e["run_id"]: e for e in record.get("runs") or []}
    new_runs = {e["run_id"]: e for e in new["runs"]}
    changed = [
        r
        for r in old_runs
        if r in launched and r in new_runs and old_runs[r].get("fingerprint") != new_runs[r]["fingerprint"]
    ]
    explained: Set[str] = set()
    out: List[Edit] = []

    def add(text: str, runs: List[str], otherwise: str) -> None:
        explained.update(runs)
        out.append(Edit(text, CHANGED if runs else otherwise, runs))

    if record.get("base") != new["base"]:
        add(f"base {_shown(record.get('base'))} -> {_shown(new['base'])}", changed, NOT_LAUNCHED)
    for text in _keys(record.get("set") or {}, new["set"], "set: "):
        add(text, changed, NOT_LAUNCHED)
    old_members, new_members = record.get("members") or {}, new["members"]
    for member in new_members:
        if member not in old_members:
            out.append(Edit(f"added member {member}", NEW, [r for r, e in new_runs.items() if e["member"] == member]))
            continue
        mine = [r for r in changed if old_runs[r]["member"] == member]
        for text in _keys(old_members[member] or {}, new_members[member], f"member {member}: "):
            add(text, mine, NOT_LAUNCHED)
    for member in old_members:
        if member not in new_members:
            gone = [r for r, e in old_runs.items() if e["member"] == member and r in launched]
            out.append(Edit(f"removed member {member}", REMOVED if gone else NOT_LAUNCHED, gone))
    old_seeds, new_seeds = list(record.get("seeds") or []), new["seeds"]
    for seed in new_seeds:
        if seed not in old_seeds:
            mine = [r for r, e in new_runs.items() if e["seed"] == seed and e["member"] in old_members]
            out.append(Edit(f"added seed {seed}", NEW, mine))
    for seed in old_seeds:
        if seed not in new_seeds:
            gone = [r for r, e in old_runs.items() if e["seed"] == seed and r in launched and r not in new_runs]
            out.append(Edit(f"removed seed {seed}", REMOVED if gone else NOT_LAUNCHED, gone))
    rest = [r for r in changed if r not in explained]
    if rest:  # no override of the study file differs: what they start from does
        base_file = next((p for p in new.get("files", {}) if p != new["file"]), new["base"])
        out.append(Edit(f"the base experiment {new['base']} ({base_file}) changed", CHANGED, rest))
    old_ens, new_ens = record.get("ensembles") or {}, new["ensembles"]
    for name in list(old_ens) + [e for e in new_ens if e not in old_ens]:
        a, b = old_ens.get(name), new_ens.get(name)
        if a == b:
            continue
        if a is None:
            out.append(Edit(f"added ensemble {name} ({' + '.join(b)})", ENSEMBLE))
        elif b is None:
            out.append(Edit(f"removed ensemble {name}", ENSEMBLE))
        else:
            out.append(Edit(f"ensemble {name}: {' + '.join(a)} -> {' + '.join(b)}", ENSEMBLE))
    out += _compare_edits(record.get("compare") or [], new["compare"])
    return out


def _compare_edits(old: List[List[str]], new: List[List[str]]) -> List[Edit]:
    """The primary comparisons added and removed (a pair is the same either way round)."""
    if not old and new:  # from every pair to these: one line says what the report does now
        return [
            Edit(
                f"compare: every pair -> {len(new)} primary pair{'s' if len(new) > 1 else ''} ({_pairs(new)})", COMPARE
            )
        ]
    if old and not new:
        return [Edit(f"compare: {len(old)} primary pair{'s' if len(old) > 1 else ''} -> every pair", COMPARE)]
    was, now = {frozenset(p) for p in old}, {frozenset(p) for p in new}
    out = [Edit(f"added primary comparison {a} vs {b}", COMPARE) for a, b in new if frozenset((a, b)) not in was]
    out += [Edit(f"removed primary comparison {a} vs {b}", COMPARE) for a, b in old if frozenset((a, b)) not in now]
    return out


def _pairs(pairs: List[List[str]], shown: int = 3) -> str:
    return listed([f"{a} vs {b}" for a, b in pairs], shown)


def listed(runs: List[str], shown: int = 3) -> str:
    more = len(runs) - shown
    return ", ".join(runs[:shown]) + (f" and {more} more" if more > 0 else "")


def refusal(edit: Edit) -> str:
    """EDIT (a refused one) and the launched runs it concerns, for `study run`'s refusal."""
    runs = f"launched run{'s' if len(edit.runs) > 1 else ''} {listed(edit.runs)}"
    if edit.kind == REMOVED:
        return f"{edit.text} would drop {runs} from the study"
    return f"{edit.text} would change {runs}"


def consequence(edit: Edit, name: str, in_report: bool = False) -> str:
    """What EDIT means for study NAME, and what to do about it."""
    if edit.kind == CHANGED:
        return (
            f"launched runs keep the config they were launched with ({listed(edit.runs)}): "
            f"`orch study run {name}` refuses it; give the new version another name"
        )
    if edit.kind == REMOVED:
        return f"launched runs ({listed(edit.runs)}) stay in study {name}: `orch study run {name}` refuses it"
    if edit.kind == NEW:
        return f"not launched: `orch study run {name}` launches it"
    if edit.kind == NOT_LAUNCHED:
        return f"only runs not launched yet take it (`orch study run {name}`)"
    if in_report:
        return "this report follows the study file"
    return f"no new runs: `orch study report {name}` follows the study file"


def note_lines(record: Dict, found: List[Edit], in_report: bool = False) -> List[str]:
    """The note `study status` and `study report` print when the study file differs."""
    name = record["name"]
    lines = [f"note: {record.get('file') or 'the study file'} differs from what study {name} recorded ({len(found)}):"]
    lines += [f"  {e.text}: {consequence(e, name, in_report)}" for e in found]
    return lines
