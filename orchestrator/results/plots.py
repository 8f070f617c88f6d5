"""PNG plots of an evaluation (matplotlib's Agg canvas: no display, no pyplot state).

    plots/margin_hist.png         score margin per true class, raw and per-token
    plots/roc.png                 ROC curve of the margin (binary) or one-vs-rest curves
    plots/accuracy_by_length.png  accuracy per text-length bucket, raw and per-token
    plots/calibration.png         accuracy against the top-1 margin, with sigmoid(margin)

Every figure carries the run id, experiment and model kind (a heading, and the PNG's
Title/Description text), so a copied plot still says what it is.

Drawing costs seconds (matplotlib), so it is a step of its own: ``plots/drawn.json``
records what the PNGs were drawn from (a key over the evaluation's metrics and score
files), and :func:`current` says whether the plots there are this evaluation's.
matplotlib is imported only when a plot is drawn.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from orchestrator.localfiles import atomic_write_bytes, writing
from orchestrator.results.metrics import (
    calibration_bins,
    confidence_margin,
    log_softmax,
    margin,
    predict,
    roc_curve,
    tie_keys,
)
from orchestrator.results.scoretable import Scores

DPI = 100
VERSION = 2  # part of the cache key: raise it when a figure changes, so old PNGs are redrawn
INDEX = "drawn.json"  # {"key": ..., "plots": [file names]}, written after the PNGs
NAMES = ("margin_hist.png", "roc.png", "accuracy_by_length.png", "calibration.png")


@dataclass
class PlotData:
    """What the figures are drawn from: an evaluation's metrics and its score table."""

    metrics: Dict[str, Any]
    scores: Scores
    score: np.ndarray  # (n, C) raw log-joint
    score_norm: np.ndarray  # (n, C) per-token


# A title's height given, not found: left to itself, matplotlib measures each axes' tick
# labels at draw time to lift the title over any on top (none here), ~a fifth of a figure's cost.
TITLE_Y = 1.0


@dataclass(frozen=True)
class Margins:
    """Fixed figure margins in inches (and the gap between panels): what the run's four
    figures need for their titles, labels and tick labels at 10 pt.  Fixed margins spare
    matplotlib's constrained layout, which measures every text once more before drawing
    (about a third of the drawing time)."""

    left: float = 0.75
    right: float = 0.15
    bottom: float = 0.55
    top: float = 0.62
    gap: float = 0.8


def _figure(ncols: int = 2, width: float = 10.0, height: float = 4.0, margins: Optional[Margins] = None):
    """A figure of NCOLS panels in a row: laid out by MARGINS when given, else by
    matplotlib's constrained layout (for figures whose text sizes vary, like a study's)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout=None if margins else "constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    if margins:
        inner = width - margins.left - margins.right
        fig.subplots_adjust(
            left=margins.left / width,
            right=1 - margins.right / width,
            bottom=margins.bottom / height,
            top=1 - margins.top / height,
            wspace=margins.gap / ((inner - (ncols - 1) * margins.gap) / ncols) if ncols > 1 else 0.0,
        )
    return fig, axes


def run_label(ev: PlotData) -> str:
    """What a figure is of: 'run smoke-20261126-101500 · experiment smoke · ar (init scratch)'."""
    m = ev.metrics
    return f"run {m['run_id']} · experiment {m['experiment']} · {m['kind']} (init {m['init']})"


def _save(fig, path: Path, ev: PlotData, what: str) -> Path:
    label = run_label(ev)
    return save_png(fig, path, title=label, label=label, what=what, writer="orch eval")


def save_png(fig, path: Path, *, title: str, label: str, what: str, writer: str) -> Path:
    """Write FIG as PATH (a temporary file renamed into place: a reader never sees half a
    PNG), with TITLE above it and what it shows in the PNG's metadata."""
    fig.suptitle(title, fontsize="medium")
    tmp = path.with_name(f".{path.name}.tmp")
    with writing(path):
        try:
            fig.savefig(
                tmp,
                format="png",
                metadata={"Title": f"{what}: {label}", "Description": f"{what}, {label}; written by {writer}"},
            )
            tmp.replace(path)
        except BaseException:  # a full disk, Ctrl-C: no half PNG left behind, the previous one stays
            tmp.unlink(missing_ok=True)
            raise
    return path


def _integer_counts(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))


def zero_aligned_bins(values: np.ndarray, count: int) -> np.ndarray:
    """About ``count`` equal histogram bins covering ``values``, with 0 (the decision
    line: which class wins) always on a bin edge, so no bin mixes both predictions."""
    finite = values[np.isfinite(values)] if values.size else values
    if finite.size == 0:
        return np.linspace(-1.0, 1.0, 3)
    lo, hi = min(float(finite.min()), 0.0), max(float(finite.max()), 0.0)
    if hi - lo <= 1e-9 * max(1.0, abs(lo), abs(hi)):
        return np.array([-1.0, 0.0, 1.0])
    width = (hi - lo) / max(1, count)
    first, last = int(np.floor(lo / width)), int(np.ceil(hi / width))
    return np.arange(first, last + 1) * width


def fitted_unit_range(values, pad: float = 0.05) -> tuple:
    """A y-range in [0, 1] around accuracies, not always 0-1: 0.93 vs 0.97 must show."""
    finite = [float(v) for v in values if v is not None and np.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    lo, hi = min(finite), max(finite)
    span = max(hi - lo, 0.1)
    return max(0.0, lo - pad * span - 0.02), min(1.0, hi + pad * span + 0.02)


def _variants(ev: PlotData):
    return [("raw NLL", ev.score, "nats"), ("per-token NLL", ev.score_norm, "nats per token")]


def margin_histogram(ev: PlotData, path: Path) -> Path:
    s = ev.scores
    binary = len(s.classes) == 2
    fig, axes = _figure(margins=Margins())
    for ax, (title, score, unit) in zip(axes, _variants(ev)):
        if binary:
            values = margin(score)
            xlabel = f"margin: score({s.classes[1]}) − score({s.classes[0]}) [{unit}]"
        else:
            top_other = np.where(np.eye(len(s.classes), dtype=bool)[s.y], -np.inf, score).max(axis=1)
            values = score[np.arange(s.n), s.y] - top_other
            xlabel = f"margin: score(true) − best other [{unit}]"
        bins = zero_aligned_bins(values, min(60, max(10, s.n // 20)))
        for i, c in enumerate(s.classes):
            # One filled outline per class, not a Rectangle per bin: the same picture as
            # ax.hist's bars, at a fraction of matplotlib's per-artist cost.
            counts, _ = np.histogram(values[s.y == i], bins=bins)
            ax.stairs(counts, bins, fill=True, alpha=0.55, color=f"C{i}", label=f"true {c}")
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_title(title, y=TITLE_Y)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("texts")
        _integer_counts(ax)
        ax.legend(fontsize="small")
    return _save(fig, path, ev, "margin histogram")


def roc_plot(ev: PlotData, path: Path) -> Path:
    s = ev.scores
    fig, axes = _figure(width=9.0, margins=Margins())
    m = ev.metrics
    for ax, (title, score, _), auc in zip(
        axes, _variants(ev), [m.get("roc_auc"), m.get("per_token", {}).get("roc_auc")]
    ):
        if len(s.classes) == 2:
            curves = [("margin", s.y == 1, margin(score))]
        else:
            log_post = log_softmax(score)
            curves = [(f"{c} vs rest", s.y == i, log_post[:, i]) for i, c in enumerate(s.classes)]
        drawn = 0
        for name, truth, value in curves:
            if 0 < truth.sum() < truth.size:
                fpr, tpr = roc_curve(truth, value)
                ax.plot(fpr, tpr, label=name)
                drawn += 1
        if drawn:
            ax.legend(fontsize="small", loc="lower right")
        else:
            ax.text(0.5, 0.5, "undefined: the test set holds one class", ha="center", va="center")
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8)
        ax.set_title(f"{title}: AUC {auc:.4f}" if auc is not None else title, y=TITLE_Y)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_aspect("equal")
    return _save(fig, path, ev, "ROC curve")


def accuracy_by_length(ev: PlotData, path: Path) -> Path:
    buckets = ev.metrics["by_length"]
    fig, axes = _figure(ncols=1, width=7.0, margins=Margins(bottom=1.15))
    ax = axes[0]
    x = np.arange(len(buckets))
    # Points, not bars: the axis is fitted to the data, and a bar cut off at 0.84 would
    # exaggerate differences by its length.
    ax.plot(x - 0.08, [b["accuracy"] for b in buckets], "o", markersize=8, label="raw NLL")
    ax.plot(x + 0.08, [b["accuracy_per_token"] for b in buckets], "s", markersize=7, label="per-token NLL")
    ax.set_xlim(-0.5, len(buckets) - 0.5)
    ax.grid(axis="y", linewidth=0.5, alpha=0.5)
    ax.set_xticks(x, [f"{b['min_tokens']:g}–{b['max_tokens']:g}\n(n={b['n']})" for b in buckets], fontsize="small")
    ax.axhline(ev.metrics["accuracy"], color="black", linewidth=0.8, linestyle=":", label="overall (raw)")
    shown = [b["accuracy"] for b in buckets] + [b["accuracy_per_token"] for b in buckets] + [ev.metrics["accuracy"]]
    ax.set_ylim(*fitted_unit_range(shown))
    ax.set_xlabel("tokens per text (mean over class models)")
    ax.set_ylabel("accuracy")
    ax.set_title("accuracy by text length", y=TITLE_Y)
    fig.legend(fontsize="small", loc="lower center", ncols=3)  # below the axis: off the points, wherever they are
    return _save(fig, path, ev, "accuracy by text length")


def calibration_plot(ev: PlotData, path: Path) -> Path:
    s = ev.scores
    fig, axes = _figure(margins=Margins())
    keys = tie_keys(s.ids, len(s.classes))
    for ax, (title, score, unit) in zip(axes, _variants(ev)):
        bins = calibration_bins(predict(score, keys) == s.y, confidence_margin(score))
        centre = [(b["margin_min"] + b["margin_max"]) / 2 for b in bins]
        ax.plot(centre, [b["accuracy"] for b in bins], marker="o", label="observed accuracy")
        if unit == "nats":
            ax.plot(
                centre, [b["implied"] for b in bins], marker="x", linestyle="--", label="sigmoid(margin) (calibrated)"
            )
        ax.set_ylim(0.0, 1.02)
        ax.set_xlabel(f"top-1 − top-2 margin [{unit}] (quantile bins)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"calibration of the margin, {title}", y=TITLE_Y)
        ax.legend(fontsize="small", loc="lower right")
    return _save(fig, path, ev, "calibration of the margin")


def current(out_dir: Path, key: str) -> Optional[List[Path]]:
    """The plots in OUT_DIR when they were drawn for KEY and are all there, else None."""
    try:
        index = json.loads((Path(out_dir) / INDEX).read_text())
        names = index["plots"] if index.get("key") == key else None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None
    if not isinstance(names, list) or sorted(names) != sorted(NAMES):
        return None
    paths = [Path(out_dir) / name for name in names]
    return paths if all(p.is_file() and not p.is_symlink() for p in paths) else None


def remove(out_dir: Path) -> None:
    """Remove the plots orch drew into OUT_DIR (and nothing else there): they belong to
    another evaluation than the one just written."""
    out_dir = Path(out_dir)
    for name in (INDEX, *NAMES):
        try:
            os.unlink(out_dir / name)
        except FileNotFoundError:
            pass
    try:
        out_dir.rmdir()
    except OSError:  # absent, or holds files of the user's
        pass


def write_plots(out_dir: Path, key: str, ev: PlotData) -> List[Path]:
    """Draw every figure into OUT_DIR, then record KEY as what they were drawn from."""
    out_dir = Path(out_dir)
    with writing(out_dir):
        out_dir.mkdir(parents=True, exist_ok=True)
    try:
        os.unlink(out_dir / INDEX)  # while drawing, no claim about what is there
    except FileNotFoundError:
        pass
    paths = [
        margin_histogram(ev, out_dir / "margin_hist.png"),
        roc_plot(ev, out_dir / "roc.png"),
        accuracy_by_length(ev, out_dir / "accuracy_by_length.png"),
        calibration_plot(ev, out_dir / "calibration.png"),
    ]
    atomic_write_bytes(str(out_dir / INDEX), json.dumps({"key": key, "plots": [p.name for p in paths]}).encode())
    return paths
