"""The study report's paper table: the yardsticks as reference rows (once when every run
holds the same predictions, per seed when they differ, and why when none has them), the
compact table first in report.md, and summary.tex with its names escaped for LaTeX."""

from __future__ import annotations

import csv
import io
from typing import Any, Dict

import numpy as np

from orchestrator.results import latex
from orchestrator.results import yardsticks as ystk
from orchestrator.results.study_report import write_study_report
from orchestrator.results.study_summary import summary_markdown, summary_tex
from orchestrator.results.study_terminal import summary_lines
from orchestrator.results.study_yardsticks import SAME, RunYardsticks, yardstick_rows

try:  # the synthetic study lives with the study report's tests
    from .test_study_report import IDS, STUDY, all_runs
except ImportError:
    from test_study_report import IDS, STUDY, all_runs

Y = np.array([0] * 5 + [1] * 5)


def found(nb, lr) -> Dict[str, Any]:
    return {"available": True, "predictions": {"nb": np.array(nb), "tfidf_lr": np.array(lr)}}


NB = [0, 0, 0, 1, 1, 1, 1, 1, 1, 1]  # 8 of 10 right
LR = [0, 0, 0, 0, 0, 1, 1, 1, 1, 0]  # 9 of 10 right


def test_a_yardstick_every_run_holds_alike_is_shown_once():
    runs = [RunYardsticks(m, s, f"{m}-s{s}", found(NB, LR)) for m in ("a", "b") for s in (0, 1)]
    nb, lr = yardstick_rows(runs, Y, ["0", "1"])
    assert nb["kind"] == nb["type"] == "yardstick" and nb["same_in_every_run"] is True
    assert nb["accuracy_mean"] == 0.8 and nb["accuracy_sd"] is None and len(nb["seeds"]) == 1
    assert lr["accuracy_mean"] == 0.9 and SAME in lr["note"] and "4 of 4 runs" in lr["note"]
    lo, hi = nb["accuracy_mean_ci95"]
    assert lo < 0.8 < hi  # the Jeffreys interval over the texts, as the run's metrics.json has it
    # macro-F1 of nb: class 0 recall 3/5 precision 1, class 1 recall 1 precision 5/7
    assert abs(nb["macro_f1_mean"] - (2 * 0.6 / 1.6 + 2 * (5 / 7) / (12 / 7)) / 2) < 1e-12


def test_a_yardstick_that_differs_between_seeds_is_averaged_as_a_member():
    other = [1, 0, 0, 0, 0, 1, 1, 1, 1, 1]  # 9 of 10 right
    runs = [
        RunYardsticks("a", 0, "a-s0", found(NB, LR)),
        RunYardsticks("a", 1, "a-s1", found(other, LR)),
        RunYardsticks("b", 1, "b-s1", found(NB, LR)),  # seed 1's runs disagree
    ]
    nb, lr = yardstick_rows(runs, Y, ["0", "1"])
    assert nb["same_in_every_run"] is False and [s["run_id"] for s in nb["seeds"]] == ["a-s0", "a-s1"]
    assert abs(nb["accuracy_mean"] - 0.85) < 1e-12 and abs(nb["accuracy_sd"] - np.std([0.8, 0.9], ddof=1)) < 1e-12
    assert "seed(s) 1 differ among themselves" in nb["note"]
    assert lr["same_in_every_run"] is True  # each yardstick is checked on its own


def test_runs_without_yardsticks_say_why():
    off = {"available": False, "reason": "turned off (eval.yardsticks: false)"}
    nb, _ = yardstick_rows([RunYardsticks("a", 0, "a-s0", off)], Y, ["0", "1"])
    assert not nb["available"] and nb["accuracy_mean"] is None
    assert nb["note"] == "no run has them: turned off (eval.yardsticks: false)"
    nb, _ = yardstick_rows([RunYardsticks("a", 0, "a-s0", found(NB, LR)), RunYardsticks("a", 1, "a-s1", off)], Y, "01")
    assert nb["available"] and nb["runs_without"] == [
        {"run_id": "a-s1", "member": "a", "seed": 1, "why": "turned off (eval.yardsticks: false)"}
    ]
    assert "1 of 2 runs" in nb["note"] and "a-s1: turned off" in nb["note"]
    assert yardstick_rows([], Y, ["0", "1"]) == []  # no run with results: no rows


HOSTILE = "a_b&c%"


def synthetic_table() -> Dict[str, Any]:
    def row(name, typ, mean, sd, lo, hi, f1, done, planned):
        return {
            "name": name,
            "type": typ,
            "accuracy_mean": mean,
            "accuracy_sd": sd,
            "accuracy_mean_ci95": [lo, hi],
            "macro_f1_mean": f1,
            "n_done": done,
            "n_planned": planned,
            "complete": done == planned,
        }

    nb = yardstick_rows([RunYardsticks("x", 0, "x-s0", found(NB, LR))], Y, ["0", "1"])
    return {
        "study": "paper_study",
        "data": {"n_test": 10, "dataset": "tiny"},
        "rows": [
            row(HOSTILE, "member", 0.8123, 0.0101, 0.79, 0.83, 0.80456, 3, 3),
            row("gpt2", "member", 0.75, None, 0.7, 0.8, 0.7, 1, 3),
            row("duo", "ensemble", 0.9, 0.02, 0.85, 0.95, 0.9, 3, 3),
        ],
        "yardsticks": nb,
    }


def test_the_compact_table_holds_what_a_paper_table_holds():
    lines = summary_markdown(synthetic_table())
    assert lines[0] == "| member | accuracy (mean ± sd) | 95% CI of the mean | macro-F1 | seeds |"
    assert lines[2] == r"| a\_b&amp;c% | 81.23% ± 1.01 | 79.00–83.00% | 0.805 | 3 |"  # markdown-escaped
    assert lines[3] == r"| gpt2 \* | 75.00% | 70.00–80.00% | 0.700 | 1 of 3 |"  # a seed short: marked
    assert lines[4].startswith(r"| duo \(ensemble\) | 90.00% ± 2.00 |")
    assert lines[5].startswith(r"| naive Bayes \(uni+bigram counts\) \(yardstick\) | 80.00% |")
    assert lines[5].endswith(f"| 0.792 | {SAME} |") and "TF-IDF" in lines[6]


def test_summary_tex_is_a_booktabs_tabular_with_names_escaped():
    tex = summary_tex(synthetic_table())
    body = tex[tex.index("\\begin{tabular}") :]
    assert body.startswith("\\begin{tabular}{lrrrl}\n\\toprule\n") and body.endswith("\\bottomrule\n\\end{tabular}\n")
    assert r"a\_b\&c\% & 81.23 $\pm$ 1.01 & [79.00, 83.00] & 0.805 & 3 \\" in body
    assert r"gpt2\textsuperscript{*} & 75.00 & [70.00, 75.00]" not in body
    assert r"gpt2\textsuperscript{*} & 75.00 & [70.00, 80.00] & 0.700 & 1 of 3 \\" in body
    # the yardsticks below a rule of their own, after the members and the ensemble
    assert body.index("duo (ensemble)") < body.index("\\midrule\nnaive Bayes (uni+bigram counts) (yardstick) & 80.00")
    assert f"& {SAME} \\\\" in body
    # every line of the body is LaTeX with no unescaped specials: a comment only where it begins
    for line in body.splitlines():
        stripped = line.replace("\\%", "").replace("\\&", "").replace("\\_", "")
        assert "%" not in stripped and "_" not in stripped
    # the comments above it never carry a line of their own out of the comment
    assert all(li.startswith("%") for li in tex[: tex.index("\\begin")].splitlines())
    assert "paper_study" in tex and "booktabs" in tex


def test_latex_escape_prints_every_special_as_itself():
    assert latex.escape(HOSTILE) == r"a\_b\&c\%"
    assert latex.escape("\\{}$#~^<>|") == (
        r"\textbackslash{}\{\}\$\#\textasciitilde{}\textasciicircum{}\textless{}\textgreater{}\textbar{}"
    )
    assert latex.escape("two\nlines\x1b") == r"two\textbackslash{}nlines\textbackslash{}x1b"


def test_a_study_report_shows_the_yardsticks_and_writes_summary_tex(tmp_path, monkeypatch):
    """Every run holds the same yardstick predictions (as its cached yardsticks.json would):
    one reference row each, in report.md's tables, table.json, table.csv, summary.tex and on
    the terminal, and in no pair."""
    preds = found(NB, LR)
    monkeypatch.setattr(ystk, "predictions", lambda run, scores, *a, **k: ystk.subset(preds, _order(IDS), scores.ids))
    out = tmp_path / "out"
    study = {**STUDY, "members": {HOSTILE: {"model.kind": "ar"}, **STUDY["members"]}}
    study["members"].pop("gpt2")
    runs = all_runs(tmp_path)
    for r in runs:
        if r.member == "gpt2":
            r.member = HOSTILE
    table = write_study_report(out, study, runs)
    nb, lr = table["yardsticks"]
    assert (nb["name"], nb["accuracy_mean"], nb["same_in_every_run"]) == ("nb", 0.8, True)
    assert lr["accuracy_mean"] == 0.9 and len(lr["runs_with"]) == 6
    assert all("yardstick" not in (p["a"], p["b"], "nb", "tfidf_lr") for p in table["pairs"])
    assert {p["a"] for p in table["pairs"]} | {p["b"] for p in table["pairs"]} == set(study["members"])

    report = (out / "report.md").read_text()
    compact = report.split("## Results")[1].split("### Details")[0]
    assert compact.index(r"| a\_b&amp;c% |") < compact.index(r"| naive Bayes \(uni+bigram counts\) \(yardstick\) |")
    assert r"| TF-IDF uni+bigram logistic regression \(yardstick\) | 90.00% |" in compact
    assert "same in every run that computed them (6 of 6" in compact and "no pairwise test" in compact
    details = report.split("### Details")[1].split("## ")[0]
    assert (
        r"naive Bayes \(uni+bigram counts\) \(yardstick\) — *reference, not a member* | same in every run |" in details
    )

    lines = [c for c in csv.DictReader(io.StringIO((out / "table.csv").read_text())) if c["type"] == "yardstick"]
    assert [(c["row"], c["seed"], float(c["accuracy"])) for c in lines] == [
        ("nb", "mean", 0.8),
        ("tfidf_lr", "mean", 0.9),
    ]
    assert lines[0]["judged_on"] == "reference" and SAME in lines[0]["note"]

    tex = (out / "summary.tex").read_text()
    assert r"a\_b\&c\% & " in tex and r"TF-IDF uni+bigram logistic regression (yardstick) & 90.00 &" in tex
    assert table["files"]["latex"] == "summary.tex"
    said = summary_lines(table)
    assert any(
        li.startswith("yardstick nb (naive Bayes (uni+bigram counts), reference): 80.00%, 95% CI") for li in said
    )
    assert any(li.startswith("yardstick tfidf_lr") and f"({SAME})" in li for li in said)


class _order:
    """A stand-in for Scores with only the ids subset() reads."""

    def __init__(self, ids):
        self.ids, self.n = list(ids), len(ids)
