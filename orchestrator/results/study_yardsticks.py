"""A study's yardstick rows: naive Bayes and TF-IDF logistic regression (yardsticks.py) on
the study's test texts, as reference rows beside the members.  Pure: the caller hands it
each run's yardstick predictions (what its evaluation read from the run's cached
yardsticks.json, the same predictions its metrics.json ``yardsticks`` rows were computed
from), already put in the study's test-id order.

**Once or per seed.**  The yardsticks are trained on the run's training texts, which the
data settings fix (data.seed, not the run's seed), and both models are deterministic: so
every run of a study normally holds the very same predictions.  That is checked, not
assumed: when every run that has them agrees text by text the row is shown once, "same in
every run" (its accuracy, the Jeffreys interval over the texts, macro-F1).  When they
differ (a member with other data settings, another scikit-learn), the row is built as a
member's is: one value per seed (the first run of that seed, in member order; the row says
when runs of one seed disagree), mean ± sample sd and the mean's interval over the texts
and the seeds (seedvar.mean_accuracy_ci).

**Not in the pairwise tests.**  The per-text predictions are here, so a pair could be
tested, but the yardsticks are references, not claims of the study: in a study without
``compare:`` every pair is in Holm's family, and adding two reference rows would grow it
(from 3 pairs to 10 for three members) and weaken every member's comparison.  Each run's
own report tests its model against both yardsticks (McNemar, metrics.json ``yardsticks``).

A run whose yardsticks were turned off (eval.yardsticks: false) or not computed (no local
copy of its data, scikit-learn missing, `orch eval` not run) is listed with its reason; a
row no run has predictions for says why instead of a number.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Sequence

import numpy as np

from orchestrator.results import yardsticks as ystk
from orchestrator.results.metrics import accuracy_ci, confusion_matrix, macro_f1, precision_recall_f1
from orchestrator.results.seedvar import mean_accuracy_ci

SAME = "same in every run"


@dataclass
class RunYardsticks:
    """One member run's yardsticks: FOUND is yardsticks.predictions' answer with its
    predictions already in the study's test-id order (None: the run has no results)."""

    member: str
    seed: int
    run_id: str
    found: Dict[str, Any]


def _macro_f1(y: np.ndarray, pred: np.ndarray, k: int) -> float:
    cm = confusion_matrix(y, pred, k)
    return macro_f1(cm, precision_recall_f1(cm)[2])


def _seed_record(run: RunYardsticks, pred: np.ndarray, y: np.ndarray, k: int) -> Dict[str, Any]:
    correct = pred == y
    return {
        "seed": run.seed,
        "run_id": run.run_id,
        "member": run.member,
        "accuracy": float(correct.mean()),
        "accuracy_ci95": accuracy_ci(correct),
        "macro_f1": _macro_f1(y, pred, k),
    }


def yardstick_rows(runs: Sequence[RunYardsticks], y: np.ndarray, classes: Sequence[str]) -> List[Dict[str, Any]]:
    """One row per yardstick (yardsticks.NAMES order) over RUNS (every member run with
    results, in member then seed order); [] when no run has results."""
    if not runs:
        return []
    have = [r for r in runs if r.found.get("available")]
    lacking = [
        {"run_id": r.run_id, "member": r.member, "seed": r.seed, "why": str(r.found.get("reason") or "not computed")}
        for r in runs
        if not r.found.get("available")
    ]
    return [_row(name, have, lacking, len(runs), y, len(classes)) for name in ystk.NAMES]


def _row(
    name: str, have: List[RunYardsticks], lacking: List[Dict[str, Any]], n_runs: int, y: np.ndarray, k: int
) -> Dict[str, Any]:
    row: Dict[str, Any] = {
        "name": name,
        "type": "yardstick",
        "kind": "yardstick",
        "title": ystk.NAMES[name],
        "settings": ystk.SETTINGS[name],
        "runs_with": [r.run_id for r in have],
        "runs_without": lacking,
        "n_runs": n_runs,
        "available": bool(have),
        "same_in_every_run": None,
        "seeds": [],
        "accuracy_mean": None,
        "accuracy_sd": None,
        "accuracy_mean_ci95": None,
        "macro_f1_mean": None,
        "macro_f1_sd": None,
        "n_done": 0,
    }
    if not have:
        row["note"] = _why_none(lacking)
        return row
    preds = [np.asarray(r.found["predictions"][name]) for r in have]
    same = all(np.array_equal(preds[0], p) for p in preds[1:])
    row["same_in_every_run"] = same
    if same:
        rec = _seed_record(have[0], preds[0], y, k)
        row["seeds"] = [rec]
        row.update(
            accuracy_mean=rec["accuracy"],
            accuracy_mean_ci95=rec["accuracy_ci95"],
            macro_f1_mean=rec["macro_f1"],
            n_done=1,
        )
        row["note"] = _said(f"{SAME} ({len(have)} of {n_runs} runs, the same predictions text by text)", lacking)
        return row
    first: Dict[int, int] = {}  # seed -> index of its first run, in member order
    disagree = set()
    for i, r in enumerate(have):
        if r.seed not in first:
            first[r.seed] = i
        elif not np.array_equal(preds[first[r.seed]], preds[i]):
            disagree.add(r.seed)
    picked = [first[s] for s in sorted(first)]
    recs = [_seed_record(have[i], preds[i], y, k) for i in picked]
    acc = [r["accuracy"] for r in recs]
    f1 = [r["macro_f1"] for r in recs]
    correct = np.stack([preds[i] == y for i in picked])
    row.update(
        seeds=recs,
        accuracy_mean=float(np.mean(acc)),
        accuracy_sd=float(np.std(acc, ddof=1)) if len(acc) > 1 else None,
        accuracy_mean_ci95=mean_accuracy_ci(correct) if len(recs) > 1 else recs[0]["accuracy_ci95"],
        macro_f1_mean=float(np.mean(f1)),
        macro_f1_sd=float(np.std(f1, ddof=1)) if len(f1) > 1 else None,
        n_done=len(recs),
    )
    text = "differs between runs: one value per seed, its first run's"
    if disagree:
        text += f"; runs of seed(s) {', '.join(map(str, sorted(disagree)))} differ among themselves too"
    row["note"] = _said(text, lacking)
    return row


def _why_none(lacking: List[Dict[str, Any]]) -> str:
    reasons = sorted({m["why"] for m in lacking})
    if len(reasons) == 1:
        return f"no run has them: {reasons[0]}"
    return "no run has them: " + "; ".join(f"{m['run_id']}: {m['why']}" for m in lacking)


def _said(text: str, lacking: List[Dict[str, Any]]) -> str:
    if not lacking:
        return text
    return text + "; without them: " + "; ".join(f"{m['run_id']}: {m['why']}" for m in lacking)


def reference_label(row: Dict[str, Any]) -> str:
    """How a yardstick row is named in the tables (plain text: callers escape it)."""
    return f"{row['title']} (yardstick)"


def seeds_cell(row: Dict[str, Any]) -> str:
    """The summary tables' *seeds* cell of a yardstick row (plain text)."""
    if not row["available"]:
        return "not computed"
    if row["same_in_every_run"]:
        return SAME
    return str(row["n_done"])
