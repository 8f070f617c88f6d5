"""Write an evaluation's files: metrics.json, predictions.csv and report.md (markdown
text; the terminal summary is the commands' job, in commands/results_view.py).

Files are written temp-then-rename, like everything else in a run folder, so a reader
never sees half a file and a re-run simply replaces them.  The number formats here are
shared with the terminal tables, so a figure reads the same in both.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence

import numpy as np
import yaml

from orchestrator.localfiles import atomic_write_text
from orchestrator.results.scoretable import Scores
from orchestrator.terminal import visible

METRICS = "metrics.json"
PREDICTIONS = "predictions.csv"
REPORT = "report.md"
PLOTS = "plots"
# How the accuracy's intervals are made (metrics.accuracy_ci; docs/RESULTS.md, "The accuracy's interval")
INTERVALS = "the Jeffreys interval of the count right (exact Beta quantiles)"


# --------------------------------------------------------------------------- formatting


def pct(x: Optional[float], digits: int = 2) -> str:
    return "n/a" if x is None else f"{100.0 * x:.{digits}f}%"


def ci(interval: Optional[Sequence[float]], digits: int = 2) -> str:
    if not interval:
        return "n/a"
    return f"{100.0 * interval[0]:.{digits}f}–{100.0 * interval[1]:.{digits}f}%"


def unsettled(verdict: Dict[str, Any]) -> str:
    """A sentence when the accuracy's 95% interval crosses a band's edge ("" when it does not)."""
    span = verdict.get("span") or []
    if len(span) < 2:
        return ""
    return f"The 95% interval reaches {', '.join(span[:-1])} and {span[-1]}: this test set does not settle the band."


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


def rate(amount: Optional[float], seconds: Optional[float]) -> Optional[float]:
    return amount / seconds if amount and seconds else None


def memory(rss_mib: Optional[float], cuda_mib: Optional[float]) -> str:
    """Peak resident memory of the job's process (and its GPU's peak allocation)."""
    if rss_mib is None:
        return "n/a"
    return f"{rss_mib / 1024:.2f} GiB" + (f" (GPU {cuda_mib / 1024:.2f} GiB)" if cuda_mib is not None else "")


def whole(x: Optional[float]) -> str:
    """A rate such as tokens/s as `orch status` shows it: 7,822."""
    return "n/a" if x is None else f"{x:,.0f}"


def count(n: Optional[float]) -> str:
    if n is None:
        return "n/a"
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:.1f}{suffix}"
    return str(int(n))


# --------------------------------------------------------------------------- files


def write_metrics(run_dir: Path, metrics: Dict[str, Any]) -> Path:
    path = Path(run_dir) / METRICS
    # allow_nan=False: NaN and Infinity are not JSON; a metric that came out non-finite is
    # a bug to raise here, not a file that json.loads elsewhere (or jq) cannot read.
    atomic_write_text(path, json.dumps(metrics, indent=2, default=str, allow_nan=False) + "\n")
    return path


# A spreadsheet reads a cell starting with one of these as a formula (OWASP, "CSV Injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def csv_cell(value: Any) -> Any:
    """A text cell made safe to open in a spreadsheet: its control characters (C0, DEL,
    C1, and the invisible format characters; a test id from the host may hold any) shown
    as their escapes, as on the terminal (terminal.visible: ESC as ``\\x1b``); then one that
    would start a formula gets a leading single quote, as OWASP's CSV-injection guidance
    says.  Numbers are left alone, and so is text that is just a number ("-1", a common
    label): a spreadsheet reads it as that number, not as a formula."""
    if not isinstance(value, str):
        return value
    value = visible(value)
    if not value.startswith(FORMULA_START) or _PLAIN_NUMBER.fullmatch(value):
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

    def writerows_safe(self, rows: Iterable[Sequence[Any]]) -> None:
        """Rows whose every text cell already went through csv_cell."""
        self._w.writerows(rows)


def predictions_csv(
    scores: Scores,
    pred: np.ndarray,
    pred_norm: np.ndarray,
    margin_se: Optional[np.ndarray] = None,
    score: Optional[np.ndarray] = None,
) -> str:
    """id,label,nll_<class>...,prediction,tokens_<class>...,prediction_per_token, and for a
    kind with draws (MARGIN_SE given, with the raw SCORE) margin,margin_se: the decision's
    margin (metrics.margin) and its paired standard error."""
    classes = scores.classes
    buf = io.StringIO()
    w = SafeWriter(buf)
    paired = margin_se is not None and score is not None
    w.writerow(
        [
            "id",
            "label",
            *[f"nll_{c}" for c in classes],
            "prediction",
            *[f"tokens_{c}" for c in classes],
            "prediction_per_token",
            *(["margin", "margin_se"] if paired else []),
        ]
    )
    # Column by column: the few class names are made safe once, the ids in one pass.
    safe = np.array([csv_cell(c) for c in classes], dtype=object)
    ids = list(map(csv_cell, scores.ids))
    columns = [
        ids,
        safe[scores.y].tolist(),
        *scores.nll.T.tolist(),
        safe[pred].tolist(),
        *scores.tokens.astype(np.int64).T.tolist(),
        safe[pred_norm].tolist(),
    ]
    if paired:
        from orchestrator.results.metrics import margin

        columns += [margin(score).tolist(), margin_se.tolist()]
    w.writerows_safe(zip(*columns))
    return buf.getvalue()


def write_predictions(
    run_dir: Path,
    scores: Scores,
    pred: np.ndarray,
    pred_norm: np.ndarray,
    margin_se: Optional[np.ndarray] = None,
    score: Optional[np.ndarray] = None,
) -> Path:
    path = Path(run_dir) / PREDICTIONS
    atomic_write_text(path, predictions_csv(scores, pred, pred_norm, margin_se, score))
    return path


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


# Markdown's punctuation that could make text a link, image, emphasis, code or heading,
# and the characters that start HTML.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}()#!~])")


def esc(value: Any) -> str:
    """VALUE as literal markdown text on one line: class names and other text from the data
    or the host render as the text they are (no links, images, HTML or emphasis), and their
    control and invisible format characters (a bidi override) as escapes, as on a terminal."""
    text = visible(str(value))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", text)


def code(value: Any) -> str:
    """VALUE as an inline code span (nothing inside one is markup; only a backtick could end it)."""
    return "`" + visible(str(value)).replace("`", "'") + "`"


def fenced(text: str, info: str = "") -> List[str]:
    """TEXT as a fenced code block whose fence no line of it can close: longer than any run
    of backticks in it (a class name of three backticks would otherwise end the block)."""
    longest = max((len(r) for r in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + info, text, fence]


def md_table(header: Sequence[Any], rows: Iterable[Sequence[Any]]) -> List[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def metric_rows(m: Dict[str, Any]) -> List[List[str]]:
    """The headline metrics, raw and per-token: report.md's table and the terminal's."""
    t = m["per_token"]
    rows = [
        ["accuracy", pct(m["accuracy"]), pct(t["accuracy"])],
        [
            "95% CI (Jeffreys" + (", texts + draws)" if m.get("mc_noise") else ")"),
            ci(m["accuracy_ci95"]),
            ci(t["accuracy_ci95"]),
        ],
        ["correct / n", f"{m['correct']} / {m['n']}", f"{t['correct']} / {t['n']}"],
        ["macro-F1", num(m["macro_f1"]), num(t["macro_f1"])],
        [
            "ROC-AUC" + (" (margin)" if m.get("positive_class") else " (one-vs-rest)"),
            num(m["roc_auc"]),
            num(t["roc_auc"]),
        ],
        ["verdict", m["verdict"]["label"], t["verdict"]],
    ]
    if m.get("tied") or t.get("tied"):  # decided by a coin keyed on the text id, not by the models: say how many
        rows.append(["tied best scores (a coin keyed on the text id)", str(m.get("tied", 0)), str(t.get("tied", 0))])
    paired = m.get("paired") or {}
    if paired.get("not_significant") is not None:  # dividing by the token count leaves z as it is
        share = pct(paired["not_significant"], 1)
        drawn = "adaptive" if m.get("adaptive") else paired["draws"]
        rows.append([f"decisions not significant (95%, {drawn} draws)", share, share])
    ad = m.get("adaptive")
    if ad:  # what the adaptive draws spent (scoring is shared: the same for both columns)
        spent = f"{ad['draws_mean']:.1f} / {ad['forward_passes']} ({pct(ad['share_of_fixed_max'], 1)} of K={ad['max']})"
        rows.append(["draws per text / forward passes", spent, spent])
    return rows


def yardstick_section(m: Dict[str, Any]) -> List[str]:
    """The model beside naive Bayes and TF-IDF logistic regression on the same split."""
    y = m.get("yardsticks")
    if y is None:
        return []
    out = ["## Yardsticks", ""]
    if not y.get("available"):
        return out + [f"Not computed: {y.get('reason')}.", ""]
    table = [["this run", pct(m["accuracy"]), ci(m["accuracy_ci95"]), "", "", ""]]
    for r in y["rows"]:
        table.append(
            [
                r["title"],
                pct(r["accuracy"]),
                ci(r["accuracy_ci95"]),
                r["model_only"],
                r["yardstick_only"],
                f"{r['p_value']:.3g}",
            ]
        )
    return out + [
        f"Trained on the run's own {y['train_texts']} training texts and scored on its {m['n']} test texts "
        f"(scikit-learn {y.get('sklearn')}, {y.get('seconds')} s). McNemar's exact test of this run against each: "
        "*run only* / *yardstick only* count the texts only one of the two gets right.",
        "",
        *md_table(["classifier", "accuracy", "95% CI", "run only", "yardstick only", "McNemar p"], table),
    ]


def critical_words(c: Dict[str, Any]) -> str:
    """The not-significant rule in words: |margin| <= t SE, t Student's at draws - 1 d.f."""
    if c["df_min"] == c["df_max"]:
        return f"|margin| ≤ {c['min']:.2f} SE, Student's t with {c['df_min']} degrees of freedom"
    return (
        f"|margin| ≤ t SE, t Student's with each text's draws − 1 degrees of freedom: "
        f"{c['max']:.2f} at {c['df_min'] + 1} draws to {c['min']:.2f} at {c['df_max'] + 1}"
    )


def paired_section(m: Dict[str, Any]) -> List[str]:
    """How sure the decisions are given the estimator's random draws (kinds with draws)."""
    p = m.get("paired")
    if not p:
        return []
    out = ["## Monte Carlo noise of the decisions", ""]
    if p.get("not_significant") is None:
        return out + [f"{p['draws']} draw per text: {p.get('note', 'no spread to estimate the noise from')}.", ""]
    ad = m.get("adaptive")
    if ad:
        out += [
            f"**Adaptive draws** (rounds of {ad['round']}, at most {ad['max']}, z {ad['z']:g}): a text got more draws "
            f"only while its decision was not settled (|paired margin| ≤ z SE). **{ad['draws_mean']:.1f} draws per "
            f"text** on average ({ad['draws_min']}–{ad['draws_max']}; {ad['at_max']} of {m['n']} texts reached "
            f"{ad['max']}), **{ad['forward_passes']} forward passes** (class models × draws): "
            f"{pct(ad['share_of_fixed_max'], 1)} of fixed K = {ad['max']}'s {ad['fixed_max_forward_passes']}. "
            "Had max been smaller, the same rounds cut there would have given (the first row, max = round, "
            "is fixed K = round scoring):",
            "",
            *md_table(
                ["max draws", "accuracy", "forward passes"],
                [[str(r["max"]), pct(r["accuracy"]), str(r["forward_passes"])] for r in ad.get("by_max") or []],
            ),
        ]
        if ad.get("prior_note"):
            out += ["", f"Note: {ad['prior_note']}."]
    drawn = f"its own number (at most {p['draws']}) of" if ad else str(p["draws"])
    out += [
        f"Each text was scored with {drawn} random draws shared by every class model, so the margin between "
        f"the two leading classes has a paired standard error (the spread of the per-draw difference; "
        f"`margin_se` in {PREDICTIONS}). **{pct(p['not_significant'], 1)}** of the decisions "
        f"({p['not_significant_n']} of {m['n']}) are not significant at {p['level']:.0%} "
        f"({critical_words(p['critical'])}): more draws could flip them.",
        "",
        *md_table(
            ["quantity", "nats"],
            [
                ["mean paired SE of the margin", num(p["mean_margin_se"], 3)],
                ["median paired SE of the margin", num(p["median_margin_se"], 3)],
                ["mean per-class SE (score rows)", num(p["mean_class_se"], 3)],
            ],
        ),
    ]
    if p.get("class_se_ratio"):
        out += [
            f"The per-class standard errors are {p['class_se_ratio']:.1f}× the paired one: they count noise "
            "that the shared draws cancel in the difference.",
            "",
        ]
    mc = m.get("mc_noise")
    if mc:

        def share(x):
            return "n/a" if x is None else f"{100 * x:.0f}%"

        out += [
            f"The accuracy's 95% interval, {ci(mc['accuracy_ci95'])}, holds both sources of noise: each of "
            f"{mc['mc_resamples']} resamples redraws each text's {mc['draws']} draws, paired across the classes, "
            "and the accuracy given that scoring is drawn from the Jeffreys posterior of its count right. Of its "
            f"variance, test-set sampling causes **{share(mc['share_texts'])}** and the estimator's draws "
            f"**{share(mc['share_mc'])}**.",
            "",
            *md_table(
                ["noise", "95% interval"],
                [
                    ["test-set sampling alone (scores as they are)", ci(mc["texts_only_ci95"])],
                    ["the draws alone (test set as it is)", ci(mc["mc_only_ci95"])],
                    ["both", ci(mc["accuracy_ci95"])],
                ],
            ),
        ]
    return out


def judged(v: Dict[str, Any]) -> str:
    """What verdict V was judged on, to follow its label: the bands, the yardsticks, or why neither."""
    if v.get("basis", "bands") == "bands":
        fit = f", applied to {v['applied_to']} for comparison" if v.get("applied_to") else ""
        return f"on the {v['title']} bands ({v['thresholds']}){fit}"
    if v["label"] == "Not judged":
        return f"({v['thresholds']})"
    return f"judged against the yardsticks ({v['thresholds']})"


def cpu_fallback_lines(jobs: Dict[str, Any]) -> List[str]:
    """Jobs given a GPU that ran on the CPU (torch without CUDA there): said above the timings
    table, with the first job's own words, since their times are not GPU times."""
    fell = [(name, j["device_note"]) for name, j in jobs.items() if j.get("device_note")]
    if not fell:
        return []
    names = ", ".join(esc(name) for name, _ in fell)
    return [f"**Given a GPU but ran on the CPU:** {names}. {esc(fell[0][1])}", ""]


def report_markdown(m: Dict[str, Any], experiment: Dict[str, Any], plot_files: Sequence[Path] = ()) -> str:
    """report.md of metrics M; EXPERIMENT is run.yaml's experiment section; PLOT_FILES
    the plots that exist for exactly these metrics (none: it says how to draw them)."""
    out = [
        *_headline(m),
        *_metrics_section(m),
        *_per_class_section(m),
        *_confusion_section(m),
        *_by_length_section(m),
        *yardstick_section(m),
        *paired_section(m),
        *_calibration_section(m),
        *_plots_section(m, plot_files),
        *_host_section(m),
        *split_copies(m.get("data") or {}),
        *_timings_section(m),
        *_config_section(m, experiment),
    ]
    return "\n".join(out)


def _headline(m: Dict[str, Any]) -> List[str]:
    """The title, the verdict and accuracy in a sentence, and what was run."""
    t = m["per_token"]
    v = m["verdict"]
    return [
        f"# Run {code(m['run_id'])}: {v['label']}",
        "",
        f"**{v['label']}** {judged(v)}: accuracy "
        + f"**{pct(m['accuracy'])}** (95% CI {ci(m['accuracy_ci95'])}) on {m['n']} test texts; "
        f"per-token normalised: {pct(t['accuracy'])} ({t['verdict']}). " + unsettled(v),
        "",
        f"Model kind {code(m['kind'])}, init {code(m['init'])}, experiment {code(m['experiment'])}; prior: "
        f"{m['prior']['mode']} (applied: {m['prior']['applied']}).",
        "",
    ]


def _metrics_section(m: Dict[str, Any]) -> List[str]:
    return ["## Metrics", "", *md_table(["metric", "raw NLL", "per-token NLL"], metric_rows(m))]


def _per_class_section(m: Dict[str, Any]) -> List[str]:
    t = m["per_token"]
    classes = [esc(c) for c in m["classes"]]
    return [
        "## Per class",
        "",
        *md_table(
            ["class", "test texts", "precision", "recall", "F1", "precision (per token)", "recall (per token)"],
            [
                [
                    shown,
                    m["class_counts"][c],
                    num(m["per_class"][c]["precision"]),
                    num(m["per_class"][c]["recall"]),
                    num(m["per_class"][c]["f1"]),
                    num(t["per_class"][c]["precision"]),
                    num(t["per_class"][c]["recall"]),
                ]
                for c, shown in zip(m["classes"], classes)
            ],
        ),
    ]


def _confusion_section(m: Dict[str, Any]) -> List[str]:
    t = m["per_token"]
    classes = [esc(c) for c in m["classes"]]
    return [
        "## Confusion matrix",
        "",
        "Rows: true class; columns: predicted class.",
        "",
        *md_table(["raw NLL", *classes], [[c, *row] for c, row in zip(classes, m["confusion_matrix"])]),
        *md_table(["per-token NLL", *classes], [[c, *row] for c, row in zip(classes, t["confusion_matrix"])]),
    ]


def _by_length_section(m: Dict[str, Any]) -> List[str]:
    return [
        "## Accuracy by text length",
        "",
        *md_table(
            ["tokens", "texts", "accuracy", "accuracy (per token)"],
            [
                [f"{b['min_tokens']:g}–{b['max_tokens']:g}", b["n"], pct(b["accuracy"]), pct(b["accuracy_per_token"])]
                for b in m["by_length"]
            ],
        ),
    ]


def _calibration_section(m: Dict[str, Any]) -> List[str]:
    return [
        "## Calibration of the margin",
        "",
        "Top-1 minus top-2 score (nats, raw), in quantile bins; *implied* is sigmoid(margin), "
        "the accuracy the margin would mean if the scores were calibrated log-likelihoods.",
        "",
        *md_table(
            ["margin", "texts", "accuracy", "implied"],
            [
                [f"{b['margin_min']:.3g}–{b['margin_max']:.3g}", b["n"], pct(b["accuracy"]), pct(b["implied"])]
                for b in m["calibration"]
            ],
        ),
    ]


def _plots_section(m: Dict[str, Any], plot_files: Sequence[Path]) -> List[str]:
    out = ["## Plots", ""]
    for p in plot_files:
        out += [f"![{p.stem}]({PLOTS}/{p.name})", ""]
    if not plot_files:
        out += [f"Not drawn: `orch eval {m['run_id']} --plots` draws them into {PLOTS}/.", ""]
    return out


def _host_section(m: Dict[str, Any]) -> List[str]:
    facts = m["facts"]
    return [
        "## Host and software",
        "",
        *md_table(["fact", "value"], [[esc(k), esc(facts[k])] for k in facts if facts[k] is not None]),
    ]


TIMING_HEADER = [
    "job",
    "role",
    "class",
    "state",
    "wall",
    "import s",
    "tokenizer s",
    "train s",
    "score s",
    "device",
    "GPU",
    "train texts",
    "train tokens",
    "train tok/s",
    "peak memory",
]


def _timing_row(name: str, j: Dict[str, Any]) -> List[str]:
    """One job's row of the timings table (TIMING_HEADER)."""
    return [
        esc(name),
        esc(j["role"]),
        esc(j["label"]) if j["label"] is not None else "",
        esc(j["state"]),
        duration(j["seconds"]),
        num(j.get("import_s"), 1),
        num(j.get("tokenizer_s"), 1) if j.get("tokenizer_s") is not None else "",
        num(j.get("train_s"), 1),
        num(j.get("score_s"), 1),
        esc((j.get("device") or "") + (" (given a GPU)" if j.get("device_note") else "")),
        esc(j.get("gpu_name") or ""),
        count(j.get("train_texts")),
        count(j.get("train_tokens")),
        count(rate(j.get("tokens_seen"), j.get("train_s"))),
        memory(j.get("peak_rss_mib"), j.get("peak_cuda_mib")),
    ]


def _timings_section(m: Dict[str, Any]) -> List[str]:
    tm = m["timings"]
    return [
        "## Timings",
        "",
        (
            f"GPU time {duration(m['gpu_seconds'])} (sum of job wall times on a GPU), all jobs "
            f"{duration(tm['wall_seconds'])}; "
            if m["gpu_seconds"]
            else f"compute time {compute_time(0, tm['wall_seconds'])} (sum of job wall times; no job ran on a GPU); "
        )
        + f"training tokens {count(m['train_tokens'])}; "
        f"scored tokens {count(m['scored_tokens'])}"
        + (f"; mean standard error of a score {m['mean_se']:.3g} nats" if m.get("mean_se") is not None else "")
        + ".",
        "",
        *cpu_fallback_lines(tm["jobs"]),
        *md_table(TIMING_HEADER, [_timing_row(name, j) for name, j in tm["jobs"].items()]),
    ]


def _config_section(m: Dict[str, Any], experiment: Dict[str, Any]) -> List[str]:
    """run.yaml's experiment (with a warning when it was edited, or is a copy's), and the
    footnote on the intervals and the test ids."""
    return [
        "## Config",
        "",
        *(
            [
                "**run.yaml was edited after the run was launched** (its sha256 is not the one local.json "
                "recorded): this is the edited file, not necessarily the config the jobs ran.",
                "",
            ]
            if m.get("config_edited")
            else []
        ),
        *(
            [
                f"**This folder is a copy of run {code(m['copy_of'])}'s** (its local.json names that run): "
                f"evaluated here as {code(m['run_id'])}.",
                "",
            ]
            if m.get("copy_of")
            else []
        ),
        *fenced(yaml.safe_dump(experiment, sort_keys=False).rstrip(), "yaml"),
        "",
        f"95% intervals: {INTERVALS}"
        + (
            f" ({m['bootstrap']['resamples']} resamples of the draws, seed {m['bootstrap']['seed']})"
            if m.get("mc_noise")
            else ""
        )
        + f". Test ids sha256 `{m['test_ids_sha256'][:16]}`.",
        "",
    ]


def write_all(
    run_dir: Path,
    metrics: Dict[str, Any],
    scores: Scores,
    pred: np.ndarray,
    pred_norm: np.ndarray,
    experiment: Dict[str, Any],
    plot_files: Sequence[Path] = (),
    *,
    margin_se: Optional[np.ndarray] = None,
    score: Optional[np.ndarray] = None,
) -> List[Path]:
    """metrics.json, predictions.csv and report.md in the run folder; PLOT_FILES are the
    plots already in plots/ for these metrics (listed, not drawn, here)."""
    run_dir = Path(run_dir)
    metrics["files"] = {
        "metrics": METRICS,
        "predictions": PREDICTIONS,
        "report": REPORT,
        "plots": [f"{PLOTS}/{p.name}" for p in plot_files],
    }
    written = [write_metrics(run_dir, metrics), write_predictions(run_dir, scores, pred, pred_norm, margin_se, score)]
    report = run_dir / REPORT
    atomic_write_text(report, report_markdown(metrics, experiment, plot_files))
    return written + [report]


SPLIT_COPIES = {
    "duplicate_texts": "labelled texts that are copies of another (all copies of a text on one side of the split)",
    "conflicting_label_texts": "labelled texts that occur under two labels (kept out of the test split)",
    "train_copies_of_test_dropped": "training texts dropped as copies of a test text (a test file of its own)",
    "unlabelled_copies_of_test_dropped": "unlabelled texts left out of pretraining as copies of a test text",
}


def split_copies(data: Dict[str, Any]) -> List[str]:
    """The split's handling of copies of one text (metrics.json "data"), as report lines;
    nothing for a run whose host did not record it."""
    rows = [[esc(data[k]), SPLIT_COPIES[k]] for k in SPLIT_COPIES if k in data]
    return ["", "Copies of one text (docs/DATA.md):", "", *md_table(["texts", "what"], rows)] if rows else []
