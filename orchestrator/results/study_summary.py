"""A study's compact table, what a paper's results table holds: each member, ensemble and
yardstick with its accuracy mean ± sd over the seeds, the mean's 95% interval (texts and
seeds), macro-F1 and how many seeds.  report.md shows it first (the wide table follows as
the details); summary.tex is the same table as a LaTeX booktabs tabular.

The cells come from table.json's rows (study_table.py) and yardsticks
(study_yardsticks.py); names are escaped for where they go (report.esc for markdown,
latex.escape for LaTeX).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence

from orchestrator.results import latex
from orchestrator.results.report import ci, esc, md_table
from orchestrator.results.study_yardsticks import reference_label, seeds_cell

SUMMARY_TEX = "summary.tex"
HEADER = ["member", "accuracy (mean ± sd)", "95% CI of the mean", "macro-F1", "seeds"]
TEX_HEADER = ["Member", r"Accuracy (\%, mean $\pm$ sd)", r"95\% CI of the mean (\%)", "Macro-F1", "Seeds"]


def _pp(x: float) -> str:
    return f"{100.0 * x:.2f}"


def _accuracy(mean: Optional[float], sd: Optional[float], pm: str, percent: str) -> str:
    if mean is None:
        return "n/a"
    return _pp(mean) + percent + (f" {pm} {_pp(sd)}" if sd is not None else "")


def _interval(interval: Optional[Sequence[float]], percent: str) -> str:
    """report.md's interval as the wide table writes it (report.ci); LaTeX's in brackets."""
    if percent:
        return ci(interval)
    return "n/a" if not interval else f"[{_pp(interval[0])}, {_pp(interval[1])}]"


def _f1(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def _seeds(row: Dict[str, Any]) -> str:
    if row["n_done"] == row["n_planned"]:
        return str(row["n_done"])
    return f"{row['n_done']} of {row['n_planned']}"


def _cells(
    table: Dict[str, Any], escape: Callable[[Any], str], pm: str, percent: str, star: str
) -> List[List[List[str]]]:
    """The table's groups of rows (members and ensembles; yardsticks), each cell text in
    the target's markup."""
    studied = []
    for r in table["rows"]:
        name = escape(r["name"]) + (escape(" (ensemble)") if r["type"] == "ensemble" else "")
        studied.append(
            [
                name + ("" if r["complete"] else star),
                _accuracy(r["accuracy_mean"], r["accuracy_sd"], pm, percent),
                _interval(r["accuracy_mean_ci95"], percent),
                _f1(r["macro_f1_mean"]),
                _seeds(r),
            ]
        )
    reference = [
        [
            escape(reference_label(y)),
            _accuracy(y["accuracy_mean"], y["accuracy_sd"], pm, percent),
            _interval(y["accuracy_mean_ci95"], percent),
            _f1(y["macro_f1_mean"]),
            escape(seeds_cell(y)),
        ]
        for y in table.get("yardsticks") or []
    ]
    return [studied, reference]


def summary_markdown(table: Dict[str, Any]) -> List[str]:
    """report.md's compact table, members first, then the yardsticks as reference rows."""
    studied, reference = _cells(table, esc, "±", "%", " \\*")
    return md_table(HEADER, studied + reference)


def summary_tex(table: Dict[str, Any]) -> str:
    """summary.tex: the compact table as a booktabs tabular; percentages without the % sign
    (the header says so), the yardsticks below a rule."""
    groups = _cells(table, latex.escape, r"$\pm$", "", r"\textsuperscript{*}")
    comments = [
        f"orch study report: study {table.get('study')}, {table['data'].get('n_test')} test texts "
        f"(data set {table['data'].get('dataset') or 'unnamed'}); needs \\usepackage{{booktabs}}",
        "accuracy: mean and sample sd over the seeds; 95% CI of the mean over the test texts and the seeds",
        "yardstick rows are references on the same test texts, not members of the study",
    ]
    if any(not r["complete"] for r in table["rows"]):
        comments.append("* marks a row with fewer seeds than planned (report.md, What is missing)")
    return latex.tabular("lrrrl", TEX_HEADER, groups, comments)
