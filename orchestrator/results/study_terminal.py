"""What `orch study report` says on the terminal (plain text): each row's mean, interval and
verdict, the yardsticks' accuracies, the runs that decided nothing, and the pairs it claims
(the primary ones only, after Holm's correction, as report.md's *Comparisons*).

The words and the choice of what is claimed are study_report.py's, shared with report.md;
this module only puts them in lines.  (Not in study_summary.py: study_report.py imports
that one for report.md's compact table, and these lines need study_report.py's helpers.)
"""

from __future__ import annotations

from typing import Any, Dict, List

from orchestrator.results.report import ci, pct
from orchestrator.results.study_report import (
    claim,
    claimed,
    collapsed,
    cpu_runs,
    exploratory,
    mean_sd,
    plural,
    primary_pairs,
    row_verdict,
)
from orchestrator.results.study_yardsticks import SAME


def summary_lines(table: Dict[str, Any]) -> List[str]:
    """What `orch study report` says on the terminal: each row's mean, its interval over texts
    and seeds, its verdict; then the pairs that differ after Holm's correction, the primary
    ones only (with `compare:`, the exploratory pairs are counted, never claimed; plain text)."""
    out = []
    for r in table["rows"]:
        if r["accuracy_mean"] is None:
            out.append(f"{r['name']}: no results")
            continue
        noun = "seed" if r["n_planned"] == 1 else "seeds"
        seeds = f"{r['n_done']} of {r['n_planned']} {noun}" if not r["complete"] else f"{r['n_done']} {noun}"
        said = row_verdict(r, escape=str)
        verdict = "" if said == "n/a" else f"; {said}"
        interval = ci(r["accuracy_mean_ci95"])
        out.append(
            f"{r['name']}: {mean_sd(r['accuracy_mean'], r['accuracy_sd'])}, 95% CI {interval} ({seeds}){verdict}"
        )
    out += yardstick_lines(table)
    for c in collapsed(table) if table.get("data") else []:
        out.append(
            f"warning: run {c['run_id']} ({c['row']}, seed {c['seed']}) predicted class {c['class']} for all "
            f"{c['n']} texts: it decides nothing (report.md, Results)"
        )
    # only the pairs in Holm's family (the primary ones) are claimed, or said to differ in none
    tested = [p for p in table["pairs"] if p["p_holm"] is not None]
    differ = claimed(table)
    out += [claim(p) for p in differ]
    declared = table.get("compare")
    if tested and not differ:
        if declared:
            out.append(f"no primary pair differs at p (Holm) < 0.05 ({plural(len(tested), 'primary pair')} tested)")
        else:
            out.append(f"no pair differs at p (Holm) < 0.05 ({len(tested)} pairs tested)")
    if declared:
        for p in primary_pairs(table):
            if p["p_value"] is None:
                out.append(f"primary pair {p['a']} vs {p['b']}: not tested (no seed with results from both)")
        others = exploratory(table)
        if others:
            out.append(
                f"{plural(len(others), 'exploratory pair')} (not in compare:) tested without correction: "
                "report.md shows them; none is claimed"
            )
    # each caveat whenever some pair of the family rests on that few seeds, a pair claimed or not
    if any(len(p["seeds"]) == 1 for p in tested):
        out.append(
            "pairs over one seed compare two trained models, not the members: seed-to-seed variation is not measured"
        )
    if any(len(p["seeds"]) == 2 for p in tested):
        out.append("with two seeds the seeds' spread is known from one degree of freedom: more seeds say more")
    for c in cpu_runs(table):
        out.append(
            f"note: {c['run_id']} ({c['member']}, seed {c['seed']}): {', '.join(c['jobs'])} given a GPU but ran "
            "on the CPU (torch there had no usable CUDA; report.md has the job's words): its times are CPU times"
        )
    return out


def yardstick_lines(table: Dict[str, Any]) -> List[str]:
    """The terminal's reference lines: each yardstick's accuracy on the same texts, or why none."""
    out = []
    for y in table.get("yardsticks") or []:
        label = f"yardstick {y['name']} ({y['title']}, reference)"
        if not y["available"]:
            out.append(f"{label}: {y['note']}")
            continue
        said = mean_sd(y["accuracy_mean"], y["accuracy_sd"]) if not y["same_in_every_run"] else pct(y["accuracy_mean"])
        how = SAME if y["same_in_every_run"] else f"{y['n_done']} seeds"
        lacking = f"; {len(y['runs_without'])} run(s) without yardsticks" if y["runs_without"] else ""
        out.append(f"{label}: {said}, 95% CI {ci(y['accuracy_mean_ci95'])} ({how}{lacking})")
    return out
