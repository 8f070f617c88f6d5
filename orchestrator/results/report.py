"""Render an evaluation: metrics.json, predictions.csv, report.md and the terminal summary.

Files are written temp-then-rename, like everything else in a run folder, so a reader
never sees half a file and a re-run simply replaces them.
"""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import yaml

from remote.files import atomic_write_bytes

from orchestrator.results.evaluate import Evaluation

METRICS = "metrics.json"
PREDICTIONS = "predictions.csv"
REPORT = "report.md"
PLOTS = "plots"

VERDICT_STYLE = {"Excellent": "bold green", "Good": "green", "Acceptable": "yellow", "Failed": "bold red"}


# --------------------------------------------------------------------------- formatting


def pct(x: Optional[float], digits: int = 2) -> str:
    return "n/a" if x is None else f"{100.0 * x:.{digits}f}%"


def ci(interval: Optional[Sequence[float]], digits: int = 2) -> str:
    if not interval:
        return "n/a"
    return f"{100.0 * interval[0]:.{digits}f}–{100.0 * interval[1]:.{digits}f}%"


def num(x: Optional[float], digits: int = 4) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return "n/a"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h{m:02d}m"
    return f"{m}m{s:02d}s" if m else f"{s}s"


def compute_time(gpu_seconds: float, job_seconds: Optional[float]) -> str:
    """'3m00s GPU' (job wall times on a GPU), or '14s CPU' when no job had a GPU: a CPU-only
    run's cost is its job time, and "0s" of GPU time would read as "took no time"."""
    return f"{duration(gpu_seconds)} GPU" if gpu_seconds else f"{duration(job_seconds)} CPU"


def count(n: Optional[float]) -> str:
    if n is None:
        return "n/a"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.1f}{suffix}"
    return str(int(n))


# --------------------------------------------------------------------------- files


def atomic_write(path: Path, text: str) -> None:
    atomic_write_bytes(str(path), text.encode("utf-8"))


def write_metrics(run_dir: Path, metrics: Dict[str, Any]) -> Path:
    path = Path(run_dir) / METRICS
    atomic_write(path, json.dumps(metrics, indent=2, default=str) + "\n")
    return path


# A spreadsheet reads a cell starting with one of these as a formula (OWASP, "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def csv_cell(value: Any) -> Any:
    """A text cell made safe to open in a spreadsheet: one that would start a formula gets
    a leading single quote, as OWASP's CSV-injection guidance says.  Numbers are left
    alone, and so is text that is just a number ("-1", a common label): a spreadsheet
    reads it as that number, not as a formula."""
    if not isinstance(value, str) or not value.startswith(FORMULA_START) or _PLAIN_NUMBER.fullmatch(value):
        return value
    return "'" + value


class SafeWriter:
    """csv.writer whose text cells go through csv_cell: every CSV orch writes uses it.
    Lines end in CRLF (RFC 4180): with "\n" alone, csv leaves a cell holding a bare "\r"
    unquoted, and a reader splits the row there."""

    def __init__(self, buf: io.StringIO):
        self._w = csv.writer(buf, lineterminator="\r\n")

    def writerow(self, row: Iterable[Any]) -> None:
        self._w.writerow([csv_cell(v) for v in row])


def predictions_csv(ev: Evaluation) -> str:
    """id,label,nll_<class>...,prediction,tokens_<class>...,prediction_per_token."""
    s = ev.scores
    classes = s.classes
    buf = io.StringIO()
    w = SafeWriter(buf)
    w.writerow(["id", "label", *[f"nll_{c}" for c in classes], "prediction",
                *[f"tokens_{c}" for c in classes], "prediction_per_token"])
    labels, pred, pred_n = s.labels, ev.pred, ev.pred_norm
    nll, tokens = s.nll.tolist(), s.tokens.astype(int).tolist()
    for i, tid in enumerate(s.ids):
        w.writerow([tid, labels[i], *nll[i], classes[pred[i]], *tokens[i], classes[pred_n[i]]])
    return buf.getvalue()


def write_predictions(run_dir: Path, ev: Evaluation) -> Path:
    path = Path(run_dir) / PREDICTIONS
    atomic_write(path, predictions_csv(ev))
    return path


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def md_table(header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> List[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def _metric_rows(m: Dict[str, Any]) -> List[List[str]]:
    t = m["per_token"]
    return [
        ["accuracy", pct(m["accuracy"]), pct(t["accuracy"])],
        ["95% CI (bootstrap)", ci(m["accuracy_ci95"]), ci(t["accuracy_ci95"])],
        ["correct / n", f"{m['correct']} / {m['n']}", f"{t['correct']} / {t['n']}"],
        ["macro-F1", num(m["macro_f1"]), num(t["macro_f1"])],
        ["ROC-AUC" + (" (margin)" if m.get("positive_class") else " (one-vs-rest)"), num(m["roc_auc"]), num(t["roc_auc"])],
        ["verdict", m["verdict"]["label"], t["verdict"]],
    ]


def report_markdown(ev: Evaluation, plot_files: Sequence[Path] = ()) -> str:
    m = ev.metrics
    t = m["per_token"]
    v = m["verdict"]
    classes = m["classes"]
    out = [
        f"# Run `{m['run_id']}`: {v['label']}",
        "",
        f"**{v['label']}** on the {v['title']} bands ({v['thresholds']}): accuracy "
        f"**{pct(m['accuracy'])}** (95% CI {ci(m['accuracy_ci95'])}) on {m['n']} test texts; "
        f"per-token normalised: {pct(t['accuracy'])} ({t['verdict']}).",
        "",
        f"Model kind `{m['kind']}`, init `{m['init']}`, experiment `{m['experiment']}`; prior: "
        f"{m['prior']['mode']} (applied: {m['prior']['applied']}).",
        "",
        "## Metrics",
        "",
        *md_table(["metric", "raw NLL", "per-token NLL"], _metric_rows(m)),
        "## Per class",
        "",
        *md_table(
            ["class", "test texts", "precision", "recall", "F1", "precision (per token)", "recall (per token)"],
            [[c, m["class_counts"][c], num(m["per_class"][c]["precision"]), num(m["per_class"][c]["recall"]),
              num(m["per_class"][c]["f1"]), num(t["per_class"][c]["precision"]), num(t["per_class"][c]["recall"])]
             for c in classes],
        ),
        "## Confusion matrix",
        "",
        "Rows: true class; columns: predicted class.",
        "",
        *md_table(["raw NLL", *classes], [[c, *row] for c, row in zip(classes, m["confusion_matrix"])]),
        *md_table(["per-token NLL", *classes], [[c, *row] for c, row in zip(classes, t["confusion_matrix"])]),
        "## Accuracy by text length",
        "",
        *md_table(
            ["tokens", "texts", "accuracy", "accuracy (per token)"],
            [[f"{b['min_tokens']:g}–{b['max_tokens']:g}", b["n"], pct(b["accuracy"]), pct(b["accuracy_per_token"])]
             for b in m["by_length"]],
        ),
        "## Calibration of the margin",
        "",
        "Top-1 minus top-2 score (nats, raw), in quantile bins; *implied* is sigmoid(margin), "
        "the accuracy the margin would mean if the scores were calibrated log-likelihoods.",
        "",
        *md_table(
            ["margin", "texts", "accuracy", "implied"],
            [[f"{b['margin_min']:.3g}–{b['margin_max']:.3g}", b["n"], pct(b["accuracy"]), pct(b["implied"])]
             for b in m["calibration"]],
        ),
    ]
    if plot_files:
        out += ["## Plots", ""]
        for p in plot_files:
            out += [f"![{p.stem}]({PLOTS}/{p.name})", ""]
    facts = m["facts"]
    out += ["## Host and software", "", *md_table(["fact", "value"], [[k, facts[k]] for k in facts if facts[k] is not None])]
    tm = m["timings"]
    job_rows = []
    for name, j in tm["jobs"].items():
        job_rows.append([name, j["role"], j["label"] if j["label"] is not None else "", j["state"],
                         duration(j["seconds"]), num(j.get("train_s"), 1), num(j.get("score_s"), 1),
                         j.get("device") or "", j.get("gpu_name") or "", count(j.get("train_texts")),
                         count(j.get("train_tokens"))])
    out += [
        "## Timings",
        "",
        (f"GPU time {duration(m['gpu_seconds'])} (sum of job wall times on a GPU), all jobs "
         f"{duration(tm['wall_seconds'])}; " if m["gpu_seconds"] else
         f"compute time {compute_time(0, tm['wall_seconds'])} (sum of job wall times; no job ran on a GPU); ")
        + f"training tokens {count(m['train_tokens'])}; "
        f"scored tokens {count(m['scored_tokens'])}"
        + (f"; mean standard error of a score {m['mean_se']:.3g} nats" if m.get("mean_se") is not None else "")
        + ".",
        "",
        *md_table(["job", "role", "class", "state", "wall", "train s", "score s", "device", "GPU",
                   "train texts", "train tokens"], job_rows),
        "## Config",
        "",
        "```yaml",
        yaml.safe_dump(ev.run.config.get("experiment") or {}, sort_keys=False).rstrip(),
        "```",
        "",
        f"Bootstrap: {m['bootstrap']['resamples']} resamples, seed {m['bootstrap']['seed']}, "
        f"{m['bootstrap']['method']} interval. Test ids sha256 `{m['test_ids_sha256'][:16]}`.",
        "",
    ]
    return "\n".join(out)


def write_all(ev: Evaluation, plots: bool = True) -> List[Path]:
    """metrics.json, predictions.csv, plots/*.png (optional) and report.md in the run folder."""
    run_dir = ev.run.run_dir
    plot_files: List[Path] = []
    if plots:
        from orchestrator.results.plots import write_plots

        plot_files = write_plots(ev, run_dir / PLOTS)
    ev.metrics["files"] = {
        "metrics": METRICS, "predictions": PREDICTIONS, "report": REPORT,
        "plots": [f"{PLOTS}/{p.name}" for p in plot_files],
    }
    written = [write_metrics(run_dir, ev.metrics), write_predictions(run_dir, ev)]
    report = run_dir / REPORT
    atomic_write(report, report_markdown(ev, plot_files))
    return written + plot_files + [report]


# --------------------------------------------------------------------------- terminal


def print_summary(console: Any, metrics: Dict[str, Any], run_dir: Optional[Path] = None) -> None:
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    m = metrics
    v = m["verdict"]
    style = VERDICT_STYLE.get(v["label"], "bold")
    # Titles and cells as Text: the init path is a --set value, class names come from the data.
    table = Table(title=Text(f"run {m['run_id']} · {m['kind']} · init {m['init']} · {m['n']} test texts"),
                  title_justify="left")
    table.add_column("metric")
    table.add_column("raw NLL", justify="right")
    table.add_column("per-token NLL", justify="right")
    for row in _metric_rows(m):
        table.add_row(*row)
    for c in m["classes"]:
        pc, tc = m["per_class"][c], m["per_token"]["per_class"][c]
        table.add_row(Text(f"class {c}: precision / recall"), f"{pc['precision']:.3f} / {pc['recall']:.3f}",
                      f"{tc['precision']:.3f} / {tc['recall']:.3f}")
    console.print(table)
    cm = Table(title="confusion matrix, raw NLL", caption="rows: true class, columns: predicted",
               title_justify="left", caption_justify="left")
    cm.add_column("true \\ pred")
    for c in m["classes"]:
        cm.add_column(Text(str(c)), justify="right")
    for c, row in zip(m["classes"], m["confusion_matrix"]):
        cm.add_row(Text(str(c)), *[str(x) for x in row])
    console.print(cm)
    console.print(
        f"verdict: [{style}]{escape(v['label'])}[/] — accuracy {pct(m['accuracy'])} (95% CI {ci(m['accuracy_ci95'])}) "
        f"on the {v['title']} bands ({v['thresholds']}); prior {escape(m['prior']['applied'])}; "
        f"compute time {compute_time(m['gpu_seconds'], m['timings']['wall_seconds'])}",
        highlight=False, soft_wrap=True,  # one line: a terminal wraps it, a pipe keeps it whole
    )
    if run_dir is not None:
        console.print(f"wrote {run_dir / METRICS}, {PREDICTIONS}, {REPORT}"
                      + (f" and {len(m.get('files', {}).get('plots', []))} plots" if m.get("files", {}).get("plots") else ""),
                      highlight=False, markup=False)
