"""Compare evaluated runs: one table across runs and McNemar's exact test between pairs.

Read-only: every number is recomputed from the runs' score files (the same code as
``orch eval``), nothing is written into the run folders. Runs must have scored the same
test ids (with the same labels); with ``force`` they are compared on the ids they share.

McNemar's exact test: of the texts exactly one of two runs classifies correctly, b went
to run A and c to run B; under "equally accurate" b ~ Binomial(b + c, 1/2), and the
two-sided p-value is scipy.stats.binomtest(b, b + c).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np

from orchestrator.errors import ExitCode, OrchError
from orchestrator.results.evaluate import Evaluation, RunData, Scores, name_examples, evaluate, load_run, load_scores


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts b and c."""
    if b < 0 or c < 0:
        raise ValueError("discordant counts must be >= 0")
    if b + c == 0:
        return 1.0
    try:
        from scipy.stats import binomtest
    except ImportError:  # scipy comes with scikit-learn; this is only a fallback
        import math

        n, k = b + c, min(b, c)
        return min(1.0, 2.0 * sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n)
    return float(binomtest(b, b + c, 0.5, alternative="two-sided").pvalue)


def mcnemar_pair(correct_a: np.ndarray, correct_b: np.ndarray) -> Dict[str, Any]:
    """Counts of the 2x2 agreement table and the exact McNemar p-value."""
    a = np.asarray(correct_a, dtype=bool)
    b = np.asarray(correct_b, dtype=bool)
    a_only, b_only = int(np.sum(a & ~b)), int(np.sum(~a & b))
    return {
        "n": int(a.size),
        "both_correct": int(np.sum(a & b)),
        "a_only": a_only,
        "b_only": b_only,
        "both_wrong": int(np.sum(~a & ~b)),
        "accuracy_diff": float(a.mean() - b.mean()) if a.size else 0.0,
        "p_value": mcnemar_exact(a_only, b_only),
    }


@dataclass
class Loaded:
    name: str
    run: RunData
    scores: Scores


def holm(p_values: Sequence[float]) -> List[float]:
    """Holm-Bonferroni adjusted p-values (same order as given).

    With m pairs, one of them reaching p < 0.05 by chance alone is likely when m is large
    (10 pairs for 5 runs); Holm's step-down keeps the family-wise error at the nominal
    level and is never less powerful than Bonferroni.  Adjusted p_(i) = max over j <= i of
    min(1, (m - j + 1) p_(j)) in ascending order of p.
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _in_run(name: str, exc: OrchError) -> OrchError:
    """The error prefixed with the run's name, unless the message already starts with it
    (load_scores and friends name the run themselves)."""
    prefix = f"run {name!r}"
    message = exc.message if exc.message.startswith(prefix) else f"{prefix}: {exc.message}"
    return OrchError(message, exc.code, exc.hint)


def _load(name: str, run_dir: Path) -> Loaded:
    try:
        run = load_run(run_dir)
        return Loaded(name, run, load_scores(run))
    except OrchError as exc:
        raise _in_run(name, exc) from None


def common_ids(loaded: Sequence[Loaded], force: bool) -> Tuple[List[str], bool]:
    """The shared test ids (first run's order) and whether the sets differed."""
    sets = [set(x.scores.ids) for x in loaded]
    shared = set.intersection(*sets)
    differ = any(s != sets[0] for s in sets[1:])
    if differ and not force:
        parts = []
        for x, s in zip(loaded, sets):
            only = sorted(s - shared)
            parts.append(f"{x.name!r} has {len(s)}" + (f" ({len(only)} not in every run, e.g. {name_examples(only)})" if only else ""))
        raise OrchError(
            "the runs scored different test sets: " + "; ".join(parts),
            ExitCode.USAGE,
            hint=f"--force compares them on the {len(shared)} test ids they share",
        )
    if not shared:
        raise OrchError("the runs share no test ids: nothing to compare", ExitCode.USAGE)
    ids = [tid for tid in loaded[0].scores.ids if tid in shared]
    # Same ids must mean the same texts: the labels have to agree too.
    ref = dict(zip(loaded[0].scores.ids, loaded[0].scores.labels))
    for x in loaded[1:]:
        bad = [tid for tid, label in zip(x.scores.ids, x.scores.labels) if tid in shared and ref[tid] != label]
        if bad:
            raise OrchError(
                f"runs {loaded[0].name!r} and {x.name!r} give different labels to {len(bad)} test id(s): {name_examples(bad)}",
                ExitCode.DATA,
                hint="they were scored on different data sets",
            )
    return ids, differ


def _row(name: str, ev: Evaluation, per_token: bool) -> Dict[str, Any]:
    m = ev.metrics
    head = m["per_token"] if per_token else m
    return {
        "run_id": name,
        "kind": m["kind"],
        "init": m["init"],
        "prior": m["prior"]["applied"],
        "n": m["n"],
        "accuracy": head["accuracy"],
        "accuracy_ci95": head["accuracy_ci95"],
        "macro_f1": head["macro_f1"],
        "roc_auc": head["roc_auc"],
        "verdict": head["verdict"] if per_token else m["verdict"]["label"],
        "bands": m["verdict"]["bands"],
        "compute": "gpu" if m["gpu_seconds"] else "cpu",  # what the time below was spent on
        "gpu_seconds": m["gpu_seconds"],
        "job_seconds": m.get("timings", {}).get("wall_seconds", 0.0),
        "train_tokens": m["train_tokens"],
        "scored_tokens": m["scored_tokens"],
    }


def compare_runs(runs: Sequence[Tuple[str, Path]], *, force: bool = False, per_token: bool = False) -> Dict[str, Any]:
    """{"runs": [row...], "pairs": [McNemar...], "n_common", "test_sets_differ", "per_token"}."""
    names = [name for name, _ in runs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise OrchError(f"run(s) named more than once: {', '.join(dupes)}", ExitCode.USAGE)
    if not runs:
        raise OrchError("name at least one run to compare", ExitCode.USAGE)
    loaded = [_load(name, Path(path)) for name, path in runs]
    ids, differ = common_ids(loaded, force)
    rows, correct = [], []
    for x in loaded:
        try:
            ev = evaluate(x.run, x.scores.subset(ids))
        except OrchError as exc:
            raise _in_run(x.name, exc) from None
        rows.append(_row(x.name, ev, per_token))
        correct.append((ev.pred_norm if per_token else ev.pred) == ev.scores.y)
    pairs = []
    for (i, a), (j, b) in itertools.combinations(enumerate(names), 2):
        pairs.append({"a": a, "b": b, **mcnemar_pair(correct[i], correct[j])})
    for pair, adjusted in zip(pairs, holm([p["p_value"] for p in pairs])):
        pair["p_holm"] = adjusted
    return {
        "runs": rows,
        "pairs": pairs,
        "n_common": len(ids),
        "test_sets_differ": differ,
        "per_token": per_token,
    }


def print_comparison(console: Any, result: Dict[str, Any]) -> None:
    from rich.table import Table
    from rich.text import Text

    from rich.markup import escape

    from orchestrator.results.evaluate import BAND_TITLES, describe_bands
    from orchestrator.results.report import VERDICT_STYLE, ci, compute_time, count, num, pct
    from orchestrator.commands.tables import add_column, add_name_column

    scoring = "per-token NLL" if result["per_token"] else "raw NLL"
    table = Table(title=f"{len(result['runs'])} run(s) on {result['n_common']} shared test texts ({scoring})",
                  title_justify="left")
    add_name_column(table, "run", [r["run_id"] for r in result["runs"]])
    for col, justify in [("kind", "left"), ("init", "left"), ("accuracy (95% CI)", "right"),
                         ("macro-F1", "right"), ("verdict (bands)", "left"), ("compute time", "right"),
                         ("train tokens", "right")]:
        add_column(table, col, justify)
    for r in result["runs"]:
        style = VERDICT_STYLE.get(r["verdict"], "")
        verdict = f"[{style}]{escape(r['verdict'])}[/]" if style else escape(r["verdict"])
        # The bootstrap interval is not symmetric near 100%: print it, not "± half-width".
        accuracy = f"{pct(r['accuracy'])} ({ci(r['accuracy_ci95'])})" if r["accuracy_ci95"] else pct(r["accuracy"])
        spent = compute_time(r["gpu_seconds"], r["job_seconds"])
        table.add_row(escape(r["run_id"]), escape(r["kind"]), escape(str(r["init"])), accuracy, num(r["macro_f1"]),
                      f"{verdict} ({escape(r['bands'])})", spent, count(r["train_tokens"]))
    console.print(table)
    used = sorted({r["bands"] for r in result["runs"]})
    console.print("bands: " + "; ".join(f"{b} = {BAND_TITLES.get(b, b)} ({describe_bands(b)})" for b in used)
                  + (" — the runs were judged against different bands" if len(used) > 1 else ""),
                  markup=False, highlight=False)
    if any(r["compute"] == "cpu" for r in result["runs"]):
        console.print("compute time: sum of the jobs' wall times, on GPUs, or on the CPU where no job had a GPU",
                      markup=False, highlight=False)
    if result["test_sets_differ"]:
        console.print(f"note: the runs' test sets differ; compared on the {result['n_common']} ids they share (--force)",
                      highlight=False)
    if not result["pairs"]:
        return
    several = len(result["pairs"]) > 1
    pt = Table(title="McNemar's exact test (pairs of runs, same test texts)", title_justify="left")
    add_name_column(pt, "A", [p["a"] for p in result["pairs"]])
    add_name_column(pt, "B", [p["b"] for p in result["pairs"]])
    columns = [("only A right", "right"), ("only B right", "right"),
               ("accuracy A − B", "right"), ("p-value", "right")] + ([("p (Holm)", "right")] if several else [])
    for col, justify in columns:
        add_column(pt, col, justify)
    for p in result["pairs"]:
        pt.add_row(Text(p["a"]), Text(p["b"]), str(p["a_only"]), str(p["b_only"]), f"{100 * p['accuracy_diff']:+.2f} pts",
                   _p(p["p_value"]), *([_p(p["p_holm"])] if several else []))
    console.print(pt)
    if several:
        console.print(f"p (Holm): adjusted for the {len(result['pairs'])} comparisons made (Holm-Bonferroni); "
                      "judge significance by this column", highlight=False)


def _p(value: float) -> str:
    return f"{value:.2e}" if value < 1e-3 else f"{value:.4f}"


def resolve_runs(project: Any, names: Sequence[str]) -> List[Tuple[str, Path]]:
    return [(name, project.existing_run(name)) for name in names]

