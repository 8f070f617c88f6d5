"""A study's report: runs/studies/<name>/report.md, summary.tex, table.csv, table.json and plots/.

:func:`write_study_report` is the entry point (``orch study report`` calls it).  The
numbers come from ``study_table.py`` (every run evaluated as ``orch eval`` does, the
members' rows, the ensembles, McNemar with Holm's correction: its docstring says how each
is computed); the figures from ``study_plots.py``.  This module only writes them:

- ``report.md``: a short results section to paste into a paper draft: what was run, on
  what data, with which code and software, the table, the comparisons it claims (the
  primary ones, Holm-corrected), the pairwise tests, the verdict bands and what is missing;
- ``summary.tex``: report.md's compact table as a LaTeX booktabs tabular (study_summary.py);
- ``table.json``: the same numbers in full precision (what this function returns; the
  yardsticks, reference rows on the same test texts, under ``yardsticks``);
- ``table.csv``: one line per row and seed, then the yardsticks and the pairs (study_csv.py).

Only primary pairs are claimed (the terminal's "X beats Y" lines, report.md's
*Comparisons*): with ``compare:`` declared, the other pairs are exploratory, shown with their
unadjusted p and never called a difference.

Names and facts a host produced are untrusted: in report.md they are escaped so they
render as the text they are (no links, images, HTML or emphasis of their own), and the
tables go through report.md_table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence

from orchestrator.localfiles import atomic_write_text
from orchestrator.results.report import PLOTS, ci, code, compute_time, esc, md_table, num, pct, whole
from orchestrator.results.seedvar import P_FLOOR
from orchestrator.results.study_csv import table_csv
from orchestrator.results.study_plots import draw_curves, write_plots
from orchestrator.results.study_summary import SUMMARY_TEX, summary_markdown, summary_tex
from orchestrator.results.study_table import ENSEMBLE_METHOD, MemberRun, study_table
from orchestrator.results.study_yardsticks import SAME, reference_label

__all__ = ["MemberRun", "write_study_report", "REPORT", "SUMMARY_TEX", "TABLE_CSV", "TABLE_JSON"]

REPORT = "report.md"
TABLE_CSV = "table.csv"
TABLE_JSON = "table.json"


def mean_sd(mean: Any, sd: Any) -> str:
    if mean is None:
        return "n/a"
    return pct(mean) + (f" ± {100.0 * sd:.2f}" if sd is not None else " (one seed)")


def row_verdict(row: Dict[str, Any], escape: Callable[[str], str] = esc) -> str:
    """The row's verdict: its mean's band, or its runs' own verdicts against the yardsticks
    (ESCAPE: esc for report.md, str for the terminal)."""
    if row["verdict"] is not None:
        span = row.get("verdict_span") or []
        unsettled = f"; its interval reaches {' to '.join([span[0], span[-1]])}" if len(span) > 1 else ""
        return f"{row['verdict']} ({row['bands']}{unsettled})"
    judged = [s for s in row["seeds"] if s["verdict"]]
    if row["verdict_basis"] == "yardsticks":
        # an ensemble has no yardstick verdict of its own: its components were judged
        if not judged:
            return "not judged (not the bands' data set)"
        return "per run, vs yardsticks: " + seedwise(judged, lambda s: escape(s["verdict"]))
    return "n/a"


def seedwise(seeds: Sequence[Dict[str, Any]], cell: Callable[[Dict[str, Any]], str]) -> str:
    """One value per seed record ("s0 A, s1 B"), or the value once when every seed has it."""
    values = [cell(s) for s in seeds]
    if len(set(values)) == 1:
        return values[0] + (f" (all {len(values)} seeds)" if len(values) > 1 else "")
    return ", ".join(f"s{s['seed']} {v}" for s, v in zip(seeds, values))


def _throughput(row: Dict[str, Any]) -> str:
    """Training tokens/s of the class models, and of a pretraining job the runs train, apart."""
    pre = row.get("pretrain_tokens_per_s")
    return whole(row["train_tokens_per_s"]) + (f" (pretrain {whole(pre)})" if pre is not None else "")


def _mean_ci_cell(row: Dict[str, Any]) -> str:
    if row["accuracy_mean_ci95"] is None:
        return "n/a"
    return ci(row["accuracy_mean_ci95"]) + (" (one seed: the run's own interval)" if row["n_done"] == 1 else "")


def _seed_cells(row: Dict[str, Any]) -> str:
    return (
        "; ".join(
            f"s{s['seed']} {pct(s['accuracy'])} ({ci(s['accuracy_ci95'])}"
            + (", ran on CPU †" if s.get("ran_on_cpu") else "")
            + ")"
            for s in row["seeds"]
        )
        or "none"
    )


def cpu_runs(table: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The member runs with jobs given a GPU that ran on the CPU: [{run_id, member, seed, jobs}]."""
    return [
        {"run_id": s["run_id"], "member": r["name"], "seed": s["seed"], "jobs": s["ran_on_cpu"]}
        for r in table["rows"]
        if r["type"] == "member"
        for s in r["seeds"]
        if s.get("ran_on_cpu")
    ]


def _cpu_section(table: Dict[str, Any]) -> List[str]:
    """report.md's note on runs that were given a GPU and ran on the CPU, as a run's report.md says it."""
    found = cpu_runs(table)
    if not found:
        return []
    which = "; ".join(f"{code(c['run_id'])} ({', '.join(esc(j) for j in c['jobs'])})" for c in found)
    first = next(iter(found[0]["jobs"].values()))
    return [
        f"† **Given a GPU but ran on the CPU:** {which}. Their results count as any run's (the models were "
        f"trained and scored as configured, on the CPU); their compute times are CPU times. The first job's "
        f"own words: {esc(first)}",
        "",
    ]


def _name(row: Dict[str, Any]) -> str:
    return esc(row["name"]) + ("" if row["complete"] else " \\*")


def results_rows(table: Dict[str, Any]) -> List[List[str]]:
    out = []
    for r in table["rows"]:
        out.append(
            [
                _name(r),
                f"{r['n_done']}/{r['n_planned']}",
                mean_sd(r["accuracy_mean"], r["accuracy_sd"]),
                _mean_ci_cell(r),
                _seed_cells(r),
                num(r["macro_f1_mean"]),
                num(r["roc_auc_mean"]),
                mean_sd(r["per_token_accuracy_mean"], r["per_token_accuracy_sd"]),
                num(r["per_token_macro_f1_mean"]),
                num(r["per_token_roc_auc_mean"]),
                compute_time(r["gpu_seconds"], r["job_seconds"]) if r["n_done"] else "n/a",
                _throughput(r),
                row_verdict(r),
            ]
        )
    return out


def yardstick_results_rows(table: Dict[str, Any]) -> List[List[str]]:
    """The wide table's reference rows: a yardstick's accuracy, interval and macro-F1 (the
    columns a bag-of-words model has), the rest "—"."""
    out = []
    for y in table.get("yardsticks") or []:
        if not y["available"]:
            seeds, each = "—", esc(y["note"])
        elif y["same_in_every_run"]:
            seeds, each = SAME, f"{pct(y['accuracy_mean'])} ({ci(y['accuracy_mean_ci95'])})"
        else:
            seeds = str(y["n_done"])
            each = "; ".join(f"s{s['seed']} {pct(s['accuracy'])} ({ci(s['accuracy_ci95'])})" for s in y["seeds"])
        out.append(
            [esc(reference_label(y)) + " — *reference, not a member*", seeds]
            + [mean_sd(y["accuracy_mean"], y["accuracy_sd"]) if y["available"] else "n/a"]
            + [ci(y["accuracy_mean_ci95"]) if y["available"] else "n/a", each, num(y["macro_f1_mean"])]
            + ["—"] * 7
        )
    return out


def _yardstick_note(table: Dict[str, Any]) -> List[str]:
    """What the yardstick rows are, under the compact table."""
    rows = table.get("yardsticks") or []
    if not table["data"]["n_test"]:
        return []
    if not rows:
        return ["No yardsticks: no run has results.", ""]
    shown = [y for y in rows if y["available"]]
    text = (
        "The yardstick rows are references, not members of the study: "
        + " and ".join(f"{esc(y['title'])} ({code(y['settings'])})" for y in rows)
        + ", trained on the runs' training texts and scored on the same test texts (each run's yardsticks, as "
        "its metrics.json has them). "
    )
    if shown and all(y["same_in_every_run"] for y in shown):
        text += (
            f"They are the same in every run that computed them ({len(shown[0]['runs_with'])} of "
            f"{shown[0]['n_runs']}: the same predictions text by text), so each is shown once, its interval over "
            "the test texts alone. "
        )
    elif shown:
        text += "Their predictions differ between runs: one value per seed, averaged as a member's are. "
    by_why: Dict[str, List[str]] = {}  # the same reason once, with its runs
    for m in {m["run_id"]: m for y in rows for m in y["runs_without"]}.values():
        by_why.setdefault(m["why"], []).append(m["run_id"])
    for why, runs in by_why.items():
        text += f"Without yardsticks, {len(runs)} of {rows[0]['n_runs']} runs ({', '.join(map(code, runs))}): "
        text += _why(why) + ". "
    text += (
        "They are in no pairwise test: a reference is not a claim of the study, and in Holm's family it would "
        "weaken every member's comparison; each run's own report tests its model against both (McNemar)."
    )
    return [text, ""]


RESULTS_HEADER = [
    "member",
    "seeds",
    "accuracy (mean ± sd)",
    "95% CI of the mean (texts and seeds)",
    "each seed (95% CI)",
    "macro-F1",
    "ROC-AUC",
    "per-token accuracy",
    "per-token macro-F1",
    "per-token ROC-AUC",
    "compute (all seeds)",
    "train tokens/s (pretrain apart)",
    "verdict of the mean",
]


def _what_was_run(table: Dict[str, Any]) -> List[str]:
    rows = []
    for r in table["rows"]:
        if r["type"] == "member":
            what = ", ".join(f"{esc(k)} = {esc(v)}" for k, v in r["overrides"].items()) or "the base as it is"
        else:
            what = "ensemble of " + " + ".join(esc(c) for c in r["components"])
        runs = ", ".join(code(s["run_id"]) for s in r["seeds"]) or "—"
        rows.append([esc(r["name"]), what, esc(r["kind"] or "n/a"), runs])
    return md_table(["member", "overrides on the base", "model kind", "runs with results"], rows)


def _data_sentence(table: Dict[str, Any]) -> str:
    d = table["data"]
    if d["n_test"] is None:
        return "No run has results yet, so there is no test set to describe."
    return (
        f"Every run was scored on the same {d['n_test']} test texts of data set {esc(d['dataset'] or 'unnamed')} "
        f"(classes {', '.join(esc(c) for c in d['classes'])}; test ids sha256 {code(d['test_ids_sha256'][:16])}), "
        f"checked run by run against {code(d['checked_against'])}: the same ids with the same labels."
    )


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def claim(p: Dict[str, Any], escape: Callable[[str], str] = str) -> str:
    """A pair that differs after Holm's correction, the better row first."""
    (better, worse), (lo, hi) = (p["a"], p["b"]), p["diff_ci95"]
    if p["accuracy_diff"] < 0:
        (better, worse), (lo, hi) = (p["b"], p["a"]), (-hi, -lo)
    return (
        f"{escape(better)} beats {escape(worse)} by {100.0 * abs(p['accuracy_diff']):.2f} pp "
        f"(95% CI {_diff_ci([lo, hi])}, p (Holm) {_p(p['p_holm'])})"
    )


def primary_pairs(table: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The pairs in Holm's family, in the order `compare:` declares them (every pair, in row
    order, when it declares none)."""
    order = {frozenset(p): i for i, p in enumerate(table.get("compare") or [])}
    pairs = [p for p in table["pairs"] if p.get("primary", True)]
    return sorted(pairs, key=lambda p: order.get(frozenset((p["a"], p["b"])), 0))


def claimed(table: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The pairs that may be called a difference: in Holm's family (primary) and p (Holm) < 0.05."""
    return [p for p in primary_pairs(table) if p["p_holm"] is not None and p["p_holm"] < 0.05]


def exploratory(table: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The pairs tested outside Holm's family (not in `compare:`): never claimed."""
    return [p for p in table["pairs"] if not p.get("primary", True) and p.get("p_value") is not None]


def _comparisons_section(table: Dict[str, Any]) -> List[str]:
    """What the report claims and over which family Holm's correction ran."""
    out = ["## Comparisons", ""]
    declared = table.get("compare")
    family = (table.get("holm") or {}).get("size", 0)
    differ = claimed(table)
    said = "; ".join(claim(p, esc) for p in differ) + "." if differ else ""
    if not declared:
        text = "No primary comparisons were declared (`compare:` in the study file): every pair is primary, and "
        if not family:
            return out + [text + "no pair could be tested yet.", ""]
        text += f"Holm's correction runs over all {plural(family, 'pair')} tested. "
        text += f"Differences at p (Holm) < 0.05: {said}" if differ else "No pair differs at p (Holm) < 0.05."
        return out + [text, ""]
    names = ", ".join(f"{esc(a)} vs {esc(b)}" for a, b in declared)
    untested = [p for p in primary_pairs(table) if p["p_value"] is None]
    text = (
        f"The study declares {plural(len(declared), 'primary comparison')} (`compare:` in the study file): "
        f"{names}. Holm's correction runs over these ({family} tested), and only they are claimed: "
        + (said if differ else "none differs at p (Holm) < 0.05." if family else "none could be tested yet.")
    )
    if untested:
        text += (
            " Not tested (no seed with results from both): "
            + ", ".join(f"{esc(p['a'])} vs {esc(p['b'])}" for p in untested)
            + "."
        )
    others = exploratory(table)
    if others:
        text += (
            f" The other {plural(len(others), 'pair')} are exploratory: tested and shown under *Pairwise tests* "
            "with their unadjusted p, not corrected and not claimed (among that many tests, one reaching "
            "p < 0.05 by chance alone is likely)."
        )
    return out + [text, ""]


def _pairs_section(table: Dict[str, Any]) -> List[str]:
    pairs = table["pairs"]
    out = ["## Pairwise tests", ""]
    if not any(p["p_value"] is not None for p in pairs):
        return out + ["Fewer than two rows have results: nothing to compare.", ""]
    declared = bool(table.get("compare"))
    holm_said = (
        f"Holm's correction runs across the {plural(table['holm']['size'], 'primary pair')} tested (*Comparisons* "
        "above); an exploratory pair's p is unadjusted."
        if declared
        else f"Holm's correction runs across the {table['pairs_tested']} pairs tested."
    )
    out += [
        "Texts are the unit: over the seeds both rows have, each text's difference is the share of those seeds "
        "in which A gets it right minus the share in which B does, and the test is the sign-flip test of those "
        "differences (exact up to 3,000 texts that differ, its normal approximation beyond; with one seed, "
        "McNemar's exact test). *A better* / *B better* count the texts whose "
        "difference favours A / B. A text is not counted once per seed: seeds of one model mostly agree on a "
        "text, and treating them as new texts finds differences that are not there. From two seeds up, p is "
        "the larger of that test's and one that also counts how far the difference moves from seed to seed "
        "(Student's t with seeds − 1 degrees of freedom, on the seeds' spread of A − B but never below what the "
        "texts' own changes from seed to seed give it, so that two seeds that tie by chance do not leave the "
        "texts to decide alone): with many texts, seed luck is larger than the texts' noise, and a test of the "
        "texts alone calls it a difference. The 95% interval of A − B counts both, and holds 0 exactly when "
        "p ≥ 0.05 (where the sign-flip test gives the larger p, its texts' part is widened to agree); with one "
        "seed it is the interval that goes with McNemar's test (which holds 0 exactly when p ≥ 0.05 too). " + holm_said,
        "",
    ]
    if any(p["p_value"] is not None and len(p["seeds"]) == 2 for p in pairs):
        out += [
            "Pairs over two seeds know the seeds' spread from one degree of freedom (t = 12.7): they rarely reach "
            "p < 0.05, and three seeds are the fewest for a claim about the members.",
            "",
        ]
    if any(p["p_value"] is not None and len(p["seeds"]) == 1 for p in pairs):
        out += [
            "Pairs with one seed in common test the two trained models, not the members: how far a member's "
            "accuracy moves from seed to seed is not measured there.",
            "",
        ]
    header = ["A", "B", "seeds", "texts", "A better", "B better", "A − B", "95% CI of A − B", "p", "p (Holm)"]
    if not declared:
        return out + md_table(header, _pair_rows(pairs, holm=True))
    primary = primary_pairs(table)
    out += ["**Primary comparisons** (declared in `compare:`; Holm-corrected over these):", ""]
    out += md_table(header, _pair_rows(primary, holm=True))
    others = [p for p in pairs if not p.get("primary")]
    if others:
        out += ["**Exploratory comparisons** (not in `compare:`; p unadjusted, not claimed):", ""]
        out += md_table(header[:-1], _pair_rows(others, holm=False))
    return out


def _pair_rows(pairs: Sequence[Dict[str, Any]], holm: bool) -> List[List[Any]]:
    rows = []
    for p in pairs:
        if p["p_value"] is None:
            rows.append([esc(p["a"]), esc(p["b"]), "none", "", "", "", "", "", "no seed in common"] + [""] * holm)
            continue
        rows.append(
            [
                esc(p["a"]),
                esc(p["b"]),
                ", ".join(map(str, p["seeds"])),
                p["n"],
                p["a_only"],
                p["b_only"],
                f"{100.0 * p['accuracy_diff']:+.2f} pp",
                _diff_ci(p["diff_ci95"]),
                _p(p["p_value"]),
            ]
            + ([_p(p["p_holm"])] if holm else [])
        )
    return rows


def _diff_ci(interval: Sequence[float]) -> str:
    return f"{100.0 * interval[0]:+.2f} to {100.0 * interval[1]:+.2f} pp"


def _p(p: float) -> str:
    return f"≤ {P_FLOOR:g}" if p <= P_FLOOR else f"{p:.3g}"


def _bands_section(table: Dict[str, Any]) -> List[str]:
    out = ["## Verdict bands", ""]
    if not table["bands"]:
        why = (
            f"the bands judge only data set {esc(table.get('bands_dataset') or 'n/a')} (eval.bands_dataset), this "
            f"study's is {esc(table['data']['dataset'] or 'unnamed')}: each run was judged against the yardsticks"
            if table["data"]["n_test"] is not None
            else "no run has results yet"
        )
        return out + [f"None applied: {why}.", ""]
    for b, spec in table["bands"].items():
        others = spec.get("applied_to") or {}
        also = (
            "; applied for comparison to " + ", ".join(f"{code(name)} ({esc(what)})" for name, what in others.items())
            if others
            else ""
        )
        out.append(f"- `{b}` ({spec['title']}): {spec['thresholds']}{also}.")
    judged = table.get("bands_dataset")
    out += [
        "",
        "A member's verdict is its mean accuracy's band, from the band set its runs were judged by "
        "(eval.bands; `mdlm` for MDLM, `poc` otherwise; an ensemble of members judged on different sets, "
        "the strictest of them); where the mean's 95% interval reaches another band, "
        "the verdict says so, and the study does not settle the band."
        f" The bands judge only data set {esc(judged or 'n/a')} "
        "(eval.bands_dataset); a run on another data set is judged against the yardsticks, run by run.",
        "",
    ]
    return out


def collapsed(table: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The seeds of every row that predicted one class for every text: {row, seed, run_id, class, n}."""
    if len(table["data"].get("classes") or []) < 2:
        return []
    out = []
    for r in table["rows"]:
        for s in r["seeds"]:
            predicted = (s.get("estimator") or {}).get("predicted_classes")
            if predicted is not None and len(predicted) == 1:
                out.append(
                    {"row": r["name"], "seed": s["seed"], "run_id": s["run_id"], "class": predicted[0], "n": s["n"]}
                )
    return out


def _collapsed_lines(table: Dict[str, Any]) -> List[str]:
    runs = collapsed(table)
    if not runs:
        return []
    told = "; ".join(
        f"{code(c['run_id'])} ({esc(c['row'])}, seed {c['seed']}) predicted class {esc(c['class'])} for all "
        f"{c['n']} texts"
        for c in runs
    )
    return [
        f"**Collapsed runs.** {told}. Such a model decides nothing, and its accuracy is that class's share of the "
        "test texts. It enters the row's mean, its interval and the pairwise tests as it is; look at its training "
        "before reading the row.",
        "",
    ]


def _per_seed(row: Dict[str, Any], cell: Callable[[Dict[str, Any]], str]) -> str:
    return seedwise(row["seeds"], lambda s: cell(s.get("estimator") or {}))


def _not_significant(e: Dict[str, Any]) -> str:
    if e.get("not_significant") is not None:
        return pct(e["not_significant"], 1)
    return "not measurable (one draw)" if e.get("draws") == 1 else "n/a"


def _draws_share(e: Dict[str, Any]) -> str:
    if e.get("draws_share") is not None:
        return f"{100.0 * e['draws_share']:.0f}%"
    return "none: one draw, its noise unmeasured" if e.get("draws") == 1 else "n/a"


def _draw_count(e: Dict[str, Any]) -> str:
    if e.get("draws") is None:
        return "n/a"
    return f"adaptive, at most {e['draws']}" if e.get("adaptive_draws") else str(e["draws"])


def _estimator_section(table: Dict[str, Any]) -> List[str]:
    """Ties and, for kinds scored by random draws, the draws' noise, seed by seed: what each
    run's own report says of how its decisions were made."""
    rows = []
    for r in table["rows"]:
        est = [s.get("estimator") or {} for s in r["seeds"]]
        if not any(e.get("tied") or e.get("draws") for e in est):
            continue
        drawn = any(e.get("draws") for e in est)
        rows.append(
            [
                esc(r["name"]),
                _per_seed(r, lambda e: str(e.get("tied", 0))),
                _per_seed(r, _draw_count) if drawn else "—",
                _per_seed(r, _not_significant) if drawn else "—",
                _per_seed(r, _draws_share) if drawn else "—",
            ]
        )
    if not rows:
        return []
    one_draw = any((s.get("estimator") or {}).get("draws") == 1 for r in table["rows"] for s in r["seeds"])
    out = [
        "## Ties and the estimator's noise",
        "",
        "What each run's own report says of how its decisions were made, seed by seed. *Ties*: texts whose best "
        "score two classes share; a coin keyed on the text id decides them (the same toss in every evaluation), "
        "not the models. "
        "For a kind scored by random draws (MDLM): the draws per text; *not significant*, the share of decisions "
        "whose margin between the two leading classes is within Student's t paired standard errors of the "
        "draws (more draws could flip them); and *draws' share*, the share of the seed's accuracy-interval "
        "variance that the draws cause (the rest is the test texts'). From two seeds up the mean's interval "
        "holds the draws' noise through the seeds' spread too: each seed scores with draws of its own.",
        "",
    ]
    if one_draw:
        out += [
            "A run scored with one draw per text has no spread to measure its draws' noise from: how many of its "
            "decisions more draws would flip is unknown, and its own interval holds the texts alone. One draw "
            "that masks nothing in a short text scores 0 under every class: a tie.",
            "",
        ]
    header = ["member", "ties", "draws per text", "decisions not significant", "draws' share of the interval"]
    return out + md_table(header, rows)


def _why(text: str) -> str:
    """A missing run's reason: its `orch ...` commands (between backticks) as code spans,
    the rest as plain text, so the backticks orch wrote are not shown escaped."""
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an odd number of backticks: no pairs to trust
        return esc(text)
    return "".join(code(p) if i % 2 else esc(p) for i, p in enumerate(parts))


def _missing_section(table: Dict[str, Any]) -> List[str]:
    out = ["## What is missing", ""]
    if not table["missing"]:
        return out + ["Nothing: every planned run has results.", ""]
    out += [
        "Rows marked \\* average only the seeds that have results (the *seeds* column says how many); "
        "nothing is averaged as if the seed set were complete.",
        "",
    ]
    rows = [
        [esc(m["member"]), m["seed"], code(m["run_id"]) if m["run_id"] else "—", _why(m["why"])]
        for m in table["missing"]
    ]
    return out + md_table(["member", "seed", "run", "why"], rows)


def report_markdown(study: Dict[str, Any], table: Dict[str, Any]) -> str:
    n_runs = sum(r["n_done"] for r in table["rows"] if r["type"] == "member")
    planned = sum(r["n_planned"] for r in table["rows"] if r["type"] == "member")
    members = [r for r in table["rows"] if r["type"] == "member"]
    code_ = ", ".join(code(h) for h in table["code_hashes"]) or "not recorded"
    out = [
        f"# Study {esc(table['study'])}: results",
        "",
        f"The study has {len(members)} member{'' if len(members) == 1 else 's'}: each starts from the experiment "
        f"{esc(table['base'])} with its own overrides and runs once per seed "
        f"({', '.join(map(str, table['seeds']))}) on host {esc(table['host'] or 'n/a')}; "
        f"{n_runs} of the {planned} planned runs have results. "
        + _data_sentence(table)
        + f" Code: {code_}"
        + (" (the runs differ in code!)" if len(table["code_hashes"]) > 1 else "")
        + ".",
        "",
        *_what_was_run(table),
        "## Results",
        "",
        "Accuracy mean ± sample sd over the seeds with results, the mean's 95% interval over the test texts and "
        "the seeds, macro-F1 (mean over the seeds) and the seeds with results"
        + (" (\\* fewer than planned: *What is missing*)" if any(not r["complete"] for r in table["rows"]) else "")
        + f". The same table for LaTeX (booktabs): {code(SUMMARY_TEX)}.",
        "",
        *summary_markdown(table),
        *_yardstick_note(table),
        "### Details",
        "",
        "Accuracy mean ± sample sd over the seeds with results (percentage points). The mean's 95% interval "
        "counts both the test texts and the seeds: a seed's accuracy moves by more than a large test set can "
        "show, and with few seeds that is known only roughly (Student's t with seeds − 1 degrees of freedom, on "
        "the seeds' spread or, where that is smaller, on what the texts' own changes from seed to seed give it: "
        "seeds that tie by chance are not taken to vary by nothing), so the interval is wide at two seeds; at one "
        "seed it is the run's own and seed-to-seed variation is not measured. Each seed's 95% interval is its "
        "run's Jeffreys interval, as `orch eval` gives it, with the estimator's draws mixed in where the run has "
        "two or more per text; a run scored with one draw per text has no spread to measure its draws' noise "
        "from, and its interval holds the texts alone (*Ties and the estimator's noise* below). Macro-F1 and "
        "ROC-AUC are means over the seeds; per-token columns score each class by its likelihood per token. "
        "Compute is the sum over the seeds' own jobs: a pretraining job that members share (`orch study run "
        "--dry-run` shows which) is counted once, in the member whose runs train it, not in the members that "
        "start from it. Train tokens/s: the tokens the class models (or the classifier) trained on, every "
        "step's batch counted (`tokens_seen`), over their training time, summed over a seed's jobs and "
        "averaged over the seeds, as each run report's `train tok/s` is per job; a pretraining job the runs "
        "train is shown apart, in brackets.",
        "",
        *md_table(RESULTS_HEADER, results_rows(table) + yardstick_results_rows(table)),
        *_cpu_section(table),
        *_collapsed_lines(table),
    ]
    if any(r["type"] == "ensemble" for r in table["rows"]):
        out += [
            f"Ensembles: {ENSEMBLE_METHOD} (this puts model families whose NLL scales differ on one "
            "scale, set by what decides: the class margins); the per-token columns do not apply to them.",
            "",
        ]
    out += _estimator_section(table)
    out += _comparisons_section(table)
    out += _pairs_section(table)
    out += _bands_section(table)
    out += ["## Software and hosts", ""]
    out += md_table(["fact", "value(s)"], [[esc(k), esc("; ".join(v))] for k, v in table["software"].items()])
    out += ["## Plots", ""]
    for name in table["plots"]:
        out += [f"![{Path(name).stem}]({name})", ""]
    out += [f"{esc(n)}." for n in table["plot_notes"]] + ([""] if table["plot_notes"] else [])
    out += _missing_section(table)
    return "\n".join(out)


def write_study_report(out_dir: Path, study: Dict[str, Any], members: Sequence[MemberRun]) -> Dict[str, Any]:
    """Evaluate the study's runs and write report.md, table.csv, table.json and plots/
    into OUT_DIR (runs/studies/<name>/); return the table (table.json's content)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table, results = study_table(study, members)
    curves, why = draw_curves(table, results)
    table["draw_curves"] = {
        name: [{"seed": seed, "k": ks.tolist(), "accuracy": acc.tolist()} for seed, ks, acc in runs]
        for name, runs in curves.items()
    }
    drawn, notes = write_plots(out_dir / PLOTS, table, curves, why)
    table["plots"] = [f"{PLOTS}/{p.name}" for p in drawn]
    table["plot_notes"] = notes
    table["files"] = {"report": REPORT, "csv": TABLE_CSV, "json": TABLE_JSON, "latex": SUMMARY_TEX}
    atomic_write_text(out_dir / TABLE_JSON, json.dumps(table, indent=2, default=str) + "\n")
    atomic_write_text(out_dir / TABLE_CSV, table_csv(table))
    atomic_write_text(out_dir / SUMMARY_TEX, summary_tex(table))
    atomic_write_text(out_dir / REPORT, report_markdown(study, table))
    return table
