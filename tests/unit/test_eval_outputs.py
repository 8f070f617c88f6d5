"""What an evaluation writes and prints: metrics.json, report.md, predictions.csv, plots,
the summary; host text in them shown as text, never as markup or a formula."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from orchestrator.errors import OrchError
from orchestrator.results.evaluate import evaluate_run
from orchestrator.results.report import write_metrics
from tests.unit.evalruns import (
    make_run,
    run_eval,
    summary,
)

# --------------------------------------------------------------------------- outputs


def _not_json(word):
    raise AssertionError(f"metrics.json holds {word}, which is not JSON")


def test_metrics_json_is_never_written_with_nan_or_infinity(tmp_path):
    """NaN and Infinity are not JSON (jq and strict parsers refuse the file): a metric that
    came out non-finite fails the write rather than making such a file."""
    with pytest.raises(ValueError):
        write_metrics(tmp_path, {"accuracy": float("inf")})
    assert not (tmp_path / "metrics.json").exists()


def test_evaluate_run_writes_every_output(tmp_path):
    run_dir = make_run(tmp_path)
    metrics = evaluate_run(run_dir, plots=True)
    on_disk = json.loads((run_dir / "metrics.json").read_text(), parse_constant=_not_json)
    assert on_disk["accuracy"] == metrics["accuracy"] == pytest.approx(0.7)
    for key in (
        "accuracy_ci95",
        "macro_f1",
        "per_class",
        "confusion_matrix",
        "roc_auc",
        "per_token",
        "verdict",
        "by_length",
        "calibration",
        "timings",
        "test_ids_sha256",
        "files",
    ):
        assert key in on_disk
    with open(run_dir / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0])[:5] == ["id", "label", "nll_0", "nll_1", "prediction"]
    assert len(rows) == 10
    first = {r["id"]: r for r in rows}["0/4"]  # margin +2 on a class-0 text
    assert (first["label"], float(first["nll_0"]), float(first["nll_1"]), first["prediction"]) == (
        "0",
        102.0,
        100.0,
        "1",
    )
    plots = sorted(p.name for p in (run_dir / "plots").glob("*.png"))
    assert plots == ["accuracy_by_length.png", "calibration.png", "margin_hist.png", "roc.png"]
    assert all((run_dir / "plots" / p).stat().st_size > 1000 for p in plots)
    report = (run_dir / "report.md").read_text()
    for words in (
        "Acceptable",
        "70.00%",
        "## Per class",
        "## Confusion matrix",
        "## Timings",
        "NVIDIA H200",
        "plots/roc.png",
        "kind: ar",
        "## Host and software",
    ):
        assert words in report
    text = summary(metrics, run_dir, width=120)
    assert "Acceptable" in text and "70.00%" in text and "confusion matrix" in text and "4 plots in plots/" in text
    assert "\nrows: true class, columns: predicted\n" in text  # one line, though two classes make a narrow table
    # a re-run replaces the files and leaves no temporaries
    evaluate_run(run_dir)
    assert not [p for p in run_dir.rglob(".*") if p.is_file()]


@pytest.mark.slow  # draws the plots twice
def test_plots_are_a_step_of_their_own_and_never_stale(tmp_path, monkeypatch):
    """Without plots=True nothing is drawn and report.md says how to draw them; plots drawn
    for an evaluation are kept (not redrawn) while it stays the same, and removed when it
    changes, so report.md, metrics.json and plots/ always describe the same evaluation."""
    from matplotlib.figure import Figure

    drawn = []
    original = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **kw: drawn.append(1) or original(fig, *a, **kw))
    run_dir = make_run(tmp_path, train_texts={"0": 900, "1": 100})
    plot_dir = run_dir / "plots"

    def report_plots():
        return sorted(line for line in (run_dir / "report.md").read_text().splitlines() if line.startswith("!["))

    metrics = evaluate_run(run_dir)
    assert not plot_dir.exists() and not drawn and metrics["files"]["plots"] == []
    assert "Not drawn: `orch eval r1 --plots` draws them into plots/." in (run_dir / "report.md").read_text()
    assert "(plots: `orch eval r1 --plots`)" in summary(metrics, run_dir)

    metrics = evaluate_run(run_dir, plots=True)
    assert len(drawn) == 4 and len(metrics["files"]["plots"]) == 4 and len(report_plots()) == 4
    stamp = {p.name: p.stat().st_mtime_ns for p in plot_dir.iterdir()}
    assert evaluate_run(run_dir, plots=True)["files"]["plots"] == metrics["files"]["plots"]
    assert evaluate_run(run_dir)["files"]["plots"] == metrics["files"]["plots"]  # same results: still theirs
    assert len(drawn) == 4 and {p.name: p.stat().st_mtime_ns for p in plot_dir.iterdir()} == stamp
    assert len(report_plots()) == 4

    (plot_dir / "notes.txt").write_text("mine")  # a user's file in plots/ is never touched
    changed = evaluate_run(run_dir, prior="train")  # other metrics: the old plots would lie
    assert changed["files"]["plots"] == [] and sorted(p.name for p in plot_dir.iterdir()) == ["notes.txt"]
    assert report_plots() == []
    evaluate_run(run_dir, prior="train", plots=True)
    assert len(drawn) == 8 and len(report_plots()) == 4

    (plot_dir / "roc.png").unlink()  # one gone: drawn again, not listed as if there
    assert len(evaluate_run(run_dir, prior="train", plots=True)["files"]["plots"]) == 4 and len(drawn) == 12


def test_cpu_only_run_reports_its_job_time_not_gpu_time_0s(tmp_path):
    from rich.console import Console

    from orchestrator.commands.results_view import print_comparison
    from orchestrator.results.compare import compare_runs

    run_dir = make_run(tmp_path, job_seconds=7)  # two jobs: 14 s in all
    for manifest in run_dir.glob("jobs/*/manifest.json"):
        doc = json.loads(manifest.read_text())
        manifest.write_text(json.dumps({**doc, "device": "cpu", "gpu_name": None}))
    metrics = evaluate_run(run_dir)
    assert metrics["gpu_seconds"] == 0
    verdict = [line for line in summary(metrics).splitlines() if line.startswith("verdict:")][0]
    assert "GPU time" not in verdict and verdict.endswith("compute time 14s CPU")
    report = (run_dir / "report.md").read_text()
    assert "GPU time" not in report and "compute time 14s CPU" in report
    compared = Console(record=True, width=200)
    print_comparison(compared, compare_runs([("r1", run_dir)]))
    assert "14s CPU" in compared.export_text()  # the same words as `orch compare`


def test_jobs_given_a_gpu_that_ran_on_the_cpu_are_named_in_the_report_and_the_summary(tmp_path):
    run_dir = make_run(tmp_path, job_seconds=7)
    note = "this job was given GPU 0 (CUDA_VISIBLE_DEVICES) but torch 2.11.0+cpu is a CPU build (no CUDA)"
    for manifest in run_dir.glob("jobs/*/manifest.json"):
        doc = json.loads(manifest.read_text())
        manifest.write_text(json.dumps({**doc, "device": "cpu", "gpu_name": None, "device_note": note}))
    metrics = evaluate_run(run_dir)
    assert metrics["gpu_seconds"] == 0  # CPU time, not GPU time
    assert {j["device_note"] for j in metrics["timings"]["jobs"].values()} == {note}
    from orchestrator.results.report import esc

    report = (run_dir / "report.md").read_text()
    assert "**Given a GPU but ran on the CPU:** c0, c1. " + esc(note) in report  # (markdown-escaped)
    assert f"| {esc('cpu (given a GPU)')} |" in report
    said = summary(metrics)
    assert "note: c0, c1 given a GPU but ran on the CPU" in said and "CPU times" in said


def test_gpu_run_reports_gpu_time(tmp_path):
    metrics = evaluate_run(make_run(tmp_path, job_seconds=7))
    verdict = [line for line in summary(metrics).splitlines() if line.startswith("verdict:")][0]
    assert verdict.endswith("compute time 14s GPU")


def test_evaluate_run_prints_nothing(tmp_path, capsys):
    """Printing is the commands' job (commands/results_view.py); results/ never imports rich."""
    evaluate_run(make_run(tmp_path))
    assert capsys.readouterr() == ("", "")
    import ast

    def imported(nodes):
        names = [a.name for node in nodes if isinstance(node, ast.Import) for a in node.names]
        return names + [node.module or "" for node in nodes if isinstance(node, ast.ImportFrom)]

    for path in (Path(__file__).resolve().parents[2] / "orchestrator" / "results").glob("*.py"):
        tree = ast.parse(path.read_text())
        names = imported(list(ast.walk(tree)))
        assert not [n for n in names if n.split(".")[0] in ("rich", "typer", "scipy")], path
        # scikit-learn: only where the yardsticks are computed, and only when they are
        top = imported(tree.body)
        assert not [n for n in top if n.split(".")[0] == "sklearn"], path
        if path.name != "yardsticks.py":
            assert not [n for n in names if n.split(".")[0] == "sklearn"], path


def test_min_accuracy_is_recorded(tmp_path):
    from orchestrator.results.evaluate import check_min_accuracy

    m = run_eval(make_run(tmp_path, eval_cfg={"min_accuracy": 0.8}))
    assert m["meets_min_accuracy"] is False
    with pytest.raises(OrchError, match="below eval.min_accuracy"):
        check_min_accuracy(m)


@pytest.mark.slow
def test_25k_texts_merge_and_score_like_a_direct_computation(tmp_path):
    """At the size of IMDB's test set, with the two jobs' rows in different orders, the
    merged table and its metrics are what a direct per-text computation gives.
    (How fast: bench/bench_eval.py, not a timed test.)"""
    rng = np.random.default_rng(0)
    n = 25_000
    labels = rng.integers(0, 2, n)
    tokens = rng.integers(20, 513, n)
    nll = np.round(rng.normal(3.0, 0.2, (n, 2)) * tokens[:, None], 3)
    nll[np.arange(n), labels] -= np.round(rng.normal(0.1, 0.2, n) * tokens, 3)
    texts = [
        (
            f"test/{i}",
            str(labels[i]),
            {"0": (float(nll[i, 0]), int(tokens[i])), "1": (float(nll[i, 1]), int(tokens[i]))},
        )
        for i in range(n)
    ]
    order = rng.permutation(n)
    run_dir = make_run(
        tmp_path, texts=texts, rows_hook=lambda job, rows: [rows[i] for i in order] if job == "c1" else rows
    )
    m = evaluate_run(run_dir)
    pred = np.argmin(nll, axis=1)  # equal priors: the smaller NLL wins
    assert m["n"] == n and m["correct"] == int(np.sum(pred == labels))
    assert m["accuracy"] == pytest.approx(np.mean(pred == labels))
    assert m["confusion_matrix"] == [[int(np.sum((labels == a) & (pred == b))) for b in (0, 1)] for a in (0, 1)]
    lo, hi = m["accuracy_ci95"]
    se = math.sqrt(m["accuracy"] * (1 - m["accuracy"]) / n)
    assert lo < m["accuracy"] < hi and abs((hi - lo) - 2 * 1.96 * se) < 0.3 * se
    with open(run_dir / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == [f"test/{i}" for i in range(n)]  # the first job's order
    sample = rng.integers(0, n, 50)
    for i in sample:
        row = rows[i]
        assert (float(row["nll_0"]), float(row["nll_1"]), row["label"], row["prediction"]) == (
            nll[i, 0],
            nll[i, 1],
            str(labels[i]),
            str(pred[i]),
        )


def test_predictions_csv_escapes_formulas_in_ids_labels_and_class_names(tmp_path):
    """Every text cell orch writes to a CSV, header included, goes through report.csv_cell."""
    texts = [
        ("=cmd|' /C calc'!A0", "=A", {"=A": (1.0, 3), "-1": (2.0, 3)}),
        ("@x", "-1", {"=A": (2.0, 3), "-1": (1.0, 3)}),
    ]
    run_dir = make_run(tmp_path, texts=texts, classes=("=A", "-1"))
    evaluate_run(run_dir, plots=False)
    with open(run_dir / "predictions.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][2] == "nll_=A"  # the header's class names are inside safe text
    cells = [c for row in rows for c in row]
    assert "'=cmd|' /C calc'!A0" in cells and "'@x" in cells and "'=A" in cells
    assert not any(c.startswith(("=", "@")) for c in cells)
    assert "-1" in cells  # a number-like label stays as it is


def test_predictions_csv_shows_control_characters_in_ids_as_escapes(tmp_path):
    """A host's test id holding ESC, NUL or a newline: predictions.csv shows the escapes,
    never the raw characters (a terminal `cat`, a viewer, a spreadsheet acts on them)."""
    texts = [
        ("t0\x1b]0;owned\x07", "0", {"0": (1.0, 3), "1": (2.0, 3)}),
        ("t1\n=cmd\x00\x9b", "1", {"0": (2.0, 3), "1": (1.0, 3)}),
    ]
    run_dir = make_run(tmp_path, texts=texts)
    evaluate_run(run_dir, plots=False)
    raw = (run_dir / "predictions.csv").read_text()
    assert not [ch for ch in raw if (ord(ch) < 32 or 127 <= ord(ch) < 160) and ch not in "\r\n"]
    assert raw.count("\n") == 3  # header and two rows: no id spans lines
    with open(run_dir / "predictions.csv", newline="") as fh:
        ids = [row[0] for row in list(csv.reader(fh))[1:]]
    assert sorted(ids) == ["t0\\x1b]0;owned\\x07", "t1\\n=cmd\\x00\\x9b"]


@pytest.mark.parametrize(
    "cell, written",
    [
        ('=HYPERLINK("http://evil.example","x")', '\'=HYPERLINK("http://evil.example","x")'),
        ("+SUM(1,2)", "'+SUM(1,2)"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\tx", "\\tx"),  # a control is shown as its escape: then no formula starts
        ("\rx", "\\rx"),
        ("id\x1b[2J\x00\x9b\x7f", "id\\x1b[2J\\x00\\x9b\\x7f"),
        ("a\nb\u202ec", "a\\nb\\u202ec"),
        ("=\x1b", "'=\\x1b"),
        ("-1", "-1"),
        ("+1.5e3", "+1.5e3"),
        ("pos", "pos"),
        (-612.4, -612.4),
        (3, 3),
    ],
)
def test_csv_cells_that_would_be_formulas_are_quoted(cell, written):
    """OWASP CSV injection: a leading quote; plain numbers (a "-1" label) stay numbers."""
    from orchestrator.results.report import csv_cell

    assert csv_cell(cell) == written


def test_report_md_shows_class_names_as_text_not_markup(tmp_path):
    """Class names come from the data and back from the host: in report.md an HTML tag, a
    link or emphasis in one renders as the characters it is, and cannot break a table."""
    names = ("<b>pos</b>", "neg|*bad*[x](http://e)")
    texts = [
        ("a", names[0], {names[0]: (1.0, 3), names[1]: (2.0, 3)}),
        ("b", names[1], {names[0]: (2.0, 3), names[1]: (1.0, 3)}),
    ]
    run_dir = make_run(tmp_path, texts=texts, classes=names)
    evaluate_run(run_dir, plots=False)
    report = (run_dir / "report.md").read_text()
    prose = report.split("## Config")[0]  # the config's fenced block shows the YAML as it is
    assert "<b>" not in prose and "&lt;b&gt;pos&lt;/b&gt;" in prose
    assert "neg\\|\\*bad\\*\\[x\\]\\(http://e\\)" in report
    # the per-class table's rows still have its header's number of cells
    cells = lambda line: len(re.split(r"(?<!\\)\|", line))  # noqa: E731
    header = next(line for line in report.splitlines() if line.startswith("| class |"))
    row = next(line for line in report.splitlines() if line.startswith("| neg"))
    assert cells(row) == cells(header)


def test_a_fenced_block_cannot_be_closed_by_its_text():
    from orchestrator.results.report import fenced

    block = fenced("classes:\n- '```'\n- x", "yaml")
    assert block[0] == "````yaml" and block[-1] == "````"
    assert fenced("plain")[0] == "```"


def test_texts_decided_by_a_tie_are_counted_in_the_report(tmp_path):
    """Three texts that both class models score alike: a coin keyed on the text id decides
    them, and report.md says how many were decided that way."""

    def scores(i, label):
        if i < 3:
            return {"neg": (2.0, 4), "pos": (2.0, 4)}
        return {label: (1.0, 4), ("neg" if label == "pos" else "pos"): (2.0, 4)}

    texts = [(f"t{i}", label, scores(i, label)) for i, label in enumerate(["neg", "pos"] * 4)]
    run_dir = make_run(tmp_path, texts=texts, classes=("neg", "pos"))
    m = evaluate_run(run_dir, plots=False)
    assert m["tied"] == 3 and m["per_token"]["tied"] == 3
    assert "| tied best scores (a coin keyed on the text id) | 3 | 3 |" in (run_dir / "report.md").read_text()


def test_report_text_shows_controls_and_bidi_overrides_as_escapes():
    """report.md is read in viewers that honour bidi overrides and C1 controls: host or data
    text in it shows them as escapes, as the terminal does, in plain text and code spans."""
    from orchestrator.results.report import code, esc

    name = "gpu\u202eexe.pdf\x9b31m\x1b]52;c;x\x07\u200b"
    for out in (esc(name), code(name)):
        assert not any(ch in out for ch in "\u202e\x9b\x1b\x07\u200b"), out
        assert "u202e" in out and "x9b" in out and "x1b" in out and "u200b" in out
    assert esc("a\tb\nc") == "a\\\\tb\\\\nc"  # one line; the backslash is literal in markdown
    assert code("a`b") == "`a'b`"


def test_a_run_yaml_edited_after_launch_is_flagged_in_the_report(tmp_path):
    run_dir = make_run(tmp_path)
    sha = hashlib.sha256((run_dir / "run.yaml").read_bytes()).hexdigest()
    local = json.loads((run_dir / "local.json").read_text())
    (run_dir / "local.json").write_text(json.dumps({**local, "config_sha256": sha}))
    assert evaluate_run(run_dir)["config_edited"] is False
    assert "was edited after the run was launched" not in (run_dir / "report.md").read_text()
    (run_dir / "run.yaml").write_text((run_dir / "run.yaml").read_text().replace("init: scratch", "init: gpt2"))
    assert evaluate_run(run_dir)["config_edited"] is True
    assert "**run.yaml was edited after the run was launched**" in (run_dir / "report.md").read_text()
