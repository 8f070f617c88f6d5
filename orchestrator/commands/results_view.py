"""How evaluation results look in a terminal: the summary after `orch eval` / `fetch-results`
and the `orch compare` tables.

Rich lives here, not in results/: results/ computes and writes files; this module only
prints what it computed.  Everything from a run (ids, class names, init paths) is shown as
``Text`` or escaped, never read as markup.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from orchestrator.commands.tables import add_column, add_name_column
from orchestrator.results.metrics import BAND_TITLES, applied_to, describe_bands
from orchestrator.results.report import (
    METRICS,
    PLOTS,
    PREDICTIONS,
    REPORT,
    ci,
    compute_time,
    count,
    judged,
    metric_rows,
    num,
    pct,
    unsettled,
)

VERDICT_STYLE = {"Excellent": "bold green", "Good": "green", "Acceptable": "yellow", "Failed": "bold red"}


def print_summary(console: Any, metrics: Dict[str, Any], run_dir: Optional[Path] = None) -> None:
    """The metrics table, the confusion matrix and the verdict line; with RUN_DIR, what was written."""
    m = metrics
    v = m["verdict"]
    style = VERDICT_STYLE.get(v["label"], "bold")
    # Titles and cells as Text: the init path is a --set value, class names come from the data.
    table = Table(
        title=Text(f"run {m['run_id']} · {m['kind']} · init {m['init']} · {m['n']} test texts"), title_justify="left"
    )
    table.add_column("metric")
    table.add_column("raw NLL", justify="right")
    table.add_column("per-token NLL", justify="right")
    for row in metric_rows(m):
        table.add_row(*row)
    for c in m["classes"]:
        pc, tc = m["per_class"][c], m["per_token"]["per_class"][c]
        table.add_row(
            Text(f"class {c}: precision / recall"),
            f"{pc['precision']:.3f} / {pc['recall']:.3f}",
            f"{tc['precision']:.3f} / {tc['recall']:.3f}",
        )
    console.print(table)
    caption = "rows: true class, columns: predicted"
    cm = Table(
        title="confusion matrix, raw NLL",
        caption=caption,
        title_justify="left",
        caption_justify="left",
        min_width=len(caption),  # a caption wraps at the table's width: two classes made it two lines
    )
    cm.add_column("true \\ pred")
    for c in m["classes"]:
        cm.add_column(Text(str(c)), justify="right")
    for c, row in zip(m["classes"], m["confusion_matrix"]):
        cm.add_row(Text(str(c)), *[str(x) for x in row])
    console.print(cm)
    console.print(
        f"verdict: [{style}]{escape(v['label'])}[/] — accuracy {pct(m['accuracy'])} (95% CI {ci(m['accuracy_ci95'])}) "
        + f"{escape(judged(v))}; "
        + f"prior {escape(m['prior']['applied'])}; "
        f"compute time {compute_time(m['gpu_seconds'], m['timings']['wall_seconds'])}",
        highlight=False,
        soft_wrap=True,  # one line: a terminal wraps it, a pipe keeps it whole
    )
    note = unsettled(v)
    if note:
        console.print(escape(note), highlight=False, soft_wrap=True)
    if (m.get("adaptive") or {}).get("prior_note"):
        console.print(f"note: {m['adaptive']['prior_note']}", highlight=False, markup=False, soft_wrap=True)
    fell = [name for name, j in m["timings"]["jobs"].items() if j.get("device_note")]
    if fell:
        console.print(
            f"note: {', '.join(fell)} given a GPU but ran on the CPU (torch there had no usable CUDA; "
            "report.md has the job's words): their times are CPU times",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    if m.get("copy_of"):
        console.print(
            f"note: this folder is a copy of run {m['copy_of']}'s (its local.json names that run): evaluated "
            f"as {m['run_id']}; commands that reach the host (status, fetch-results, --resume) refuse it",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    if m.get("config_edited"):
        console.print(
            "note: run.yaml was edited after the run was launched; report.md shows the edited config, "
            "not necessarily the one the jobs ran",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    ys = (m.get("yardsticks") or {}).get("rows") or []
    if ys:
        console.print(
            "yardsticks on the same split: "
            + "; ".join(f"{r['title']} {pct(r['accuracy'])} (McNemar p {r['p_value']:.3g})" for r in ys),
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
    if run_dir is not None:
        drawn = (m.get("files") or {}).get("plots") or []
        console.print(
            f"wrote {run_dir / METRICS}, {PREDICTIONS}, {REPORT}"
            + (f" and {len(drawn)} plots in {PLOTS}/" if drawn else f" (plots: `orch eval {m['run_id']} --plots`)"),
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


def judged_by(row: Dict[str, Any]) -> str:
    """What a compared run's verdict came from: its band set, or its yardsticks."""
    return row["bands"] if row.get("basis", "bands") == "bands" else "yardsticks"


def _applied(bands: str, runs: List[Dict[str, Any]]) -> str:
    """ ", applied for comparison to a discriminative classifier (run c1)" for the runs that
    band set judged but was not written for."""
    others = [r for r in runs if judged_by(r) == bands and applied_to(bands, r["kind"])]
    if not others:
        return ""
    kinds = sorted({applied_to(bands, r["kind"]) for r in others})
    return f", applied for comparison to {' and '.join(kinds)} ({', '.join(r['run_id'] for r in others)})"


def print_comparison(console: Any, result: Dict[str, Any]) -> None:
    """`orch compare`: the runs table and McNemar's test per pair (results/compare.py's result)."""
    scoring = "per-token NLL" if result["per_token"] else "raw NLL"
    table = Table(
        title=f"{len(result['runs'])} run(s) on {result['n_common']} shared test texts ({scoring})",
        title_justify="left",
    )
    add_name_column(table, "run", [r["run_id"] for r in result["runs"]])
    for col, justify in [
        ("kind", "left"),
        ("init", "left"),
        ("accuracy (95% CI)", "right"),
        ("macro-F1", "right"),
        ("verdict (judged by)", "left"),
        ("compute time", "right"),
        ("train tokens", "right"),
    ]:
        add_column(table, col, justify)
    for r in result["runs"]:
        style = VERDICT_STYLE.get(r["verdict"], "")
        verdict = f"[{style}]{escape(r['verdict'])}[/]" if style else escape(r["verdict"])
        # The interval is not symmetric near 100%: print it, not "± half-width".
        accuracy = f"{pct(r['accuracy'])} ({ci(r['accuracy_ci95'])})" if r["accuracy_ci95"] else pct(r["accuracy"])
        spent = compute_time(r["gpu_seconds"], r["job_seconds"])
        table.add_row(
            escape(r["run_id"]),
            escape(r["kind"]),
            escape(str(r["init"])),
            accuracy,
            num(r["macro_f1"]),
            f"{verdict} ({escape(judged_by(r))})",
            spent,
            count(r["train_tokens"]),
        )
    console.print(table)
    used = sorted({judged_by(r) for r in result["runs"]})
    bands = [b for b in used if b != "yardsticks"]
    if bands:
        console.print(
            "bands: "
            + "; ".join(
                f"{b} = {BAND_TITLES.get(b, b)} ({describe_bands(b)}){_applied(b, result['runs'])}" for b in bands
            )
            + (" — the runs were judged on different grounds" if len(used) > 1 else ""),
            markup=False,
            highlight=False,
        )
    if "yardsticks" in used:
        console.print(
            "yardsticks: judged against the run's own yardstick classifiers (McNemar p < 0.05), or not judged "
            "where the bands are for another data set and the yardsticks were off",
            markup=False,
            highlight=False,
        )
    if any(r["compute"] == "cpu" for r in result["runs"]):
        console.print(
            "compute time: sum of the jobs' wall times, on GPUs, or on the CPU where no job had a GPU",
            markup=False,
            highlight=False,
        )
    borrowed = [r for r in result["runs"] if r.get("pretrain_from")]
    if borrowed:
        console.print(
            "compute time and train tokens count each run's own jobs: "
            + "; ".join(f"{r['run_id']} starts from the pretraining of run {r['pretrain_from']}" for r in borrowed)
            + ", which is not counted in it",
            markup=False,
            highlight=False,
        )
    if result["test_sets_differ"]:
        console.print(
            f"note: the runs' test sets differ; compared on the {result['n_common']} ids they share (--force)",
            highlight=False,
        )
    if not result["pairs"]:
        return
    several = len(result["pairs"]) > 1
    pt = Table(title="McNemar's exact test (pairs of runs, same test texts)", title_justify="left")
    add_name_column(pt, "A", [p["a"] for p in result["pairs"]])
    add_name_column(pt, "B", [p["b"] for p in result["pairs"]])
    columns = [
        ("only A right", "right"),
        ("only B right", "right"),
        ("accuracy A − B", "right"),
        ("p-value", "right"),
    ] + ([("p (Holm)", "right")] if several else [])
    for col, justify in columns:
        add_column(pt, col, justify)
    for p in result["pairs"]:
        pt.add_row(
            Text(p["a"]),
            Text(p["b"]),
            str(p["a_only"]),
            str(p["b_only"]),
            f"{100 * p['accuracy_diff']:+.2f} pp",
            _p(p["p_value"]),
            *([_p(p["p_holm"])] if several else []),
        )
    console.print(pt)
    if several:
        console.print(
            f"p (Holm): adjusted for the {len(result['pairs'])} comparisons made (Holm-Bonferroni); "
            "judge significance by this column",
            highlight=False,
        )
    console.print(SEEDS_NOTE, markup=False, highlight=False)


# McNemar conditions on the trained runs: a seed's luck is invisible to it (docs/RESULTS.md,
# "Seeds as a source of uncertainty"), so a difference here is between runs, not methods.
SEEDS_NOTE = (
    "McNemar compares these runs as trained: how far a run's accuracy moves from seed to seed is not "
    "measured here; `orch study` runs members over seeds and counts it"
)


def _p(value: float) -> str:
    return f"{value:.2e}" if value < 1e-3 else f"{value:.4f}"
