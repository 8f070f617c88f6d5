"""PNG plots of an evaluation (matplotlib's Agg canvas: no display, no pyplot state).

    plots/margin_hist.png         score margin per true class, raw and per-token
    plots/roc.png                 ROC curve of the margin (binary) or one-vs-rest curves
    plots/accuracy_by_length.png  accuracy per text-length bucket, raw and per-token
    plots/calibration.png         accuracy against the top-1 margin, with sigmoid(margin)
"""
from __future__ import annotations

from pathlib import Path
from typing import List

import numpy as np

from .evaluate import Evaluation, calibration_bins, confidence_margin, margin

DPI = 100


def _figure(ncols: int = 2, width: float = 10.0, height: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    return fig, axes


def _save(fig, path: Path) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, format="png")
    tmp.replace(path)
    return path


def _bins(values: np.ndarray, count: int) -> np.ndarray:
    """Shared histogram edges; a (nearly) constant sample gets unit-wide bins around it."""
    if values.size == 0:
        return np.linspace(-0.5, 0.5, count + 1)
    lo, hi = float(values.min()), float(values.max())
    if hi - lo <= 1e-9 * max(1.0, abs(lo), abs(hi)):
        return np.linspace(lo - 0.5, hi + 0.5, count + 1)
    return np.histogram_bin_edges(values, bins=count)


def _variants(ev: Evaluation):
    return [("raw NLL", ev.score, "nats"), ("per-token NLL", ev.score_norm, "nats per token")]


def margin_histogram(ev: Evaluation, path: Path) -> Path:
    s = ev.scores
    binary = len(s.classes) == 2
    fig, axes = _figure()
    for ax, (title, score, unit) in zip(axes, _variants(ev)):
        if binary:
            values = margin(score)
            xlabel = f"margin: score({s.classes[1]}) − score({s.classes[0]}) [{unit}]"
        else:
            top_other = np.where(np.eye(len(s.classes), dtype=bool)[s.y], -np.inf, score).max(axis=1)
            values = score[np.arange(s.n), s.y] - top_other
            xlabel = f"margin: score(true) − best other [{unit}]"
        bins = _bins(values[np.isfinite(values)], min(60, max(10, s.n // 20)))
        for i, c in enumerate(s.classes):
            ax.hist(values[s.y == i], bins=bins, alpha=0.55, label=f"true {c}")
        ax.axvline(0.0, color="black", linewidth=0.8)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("texts")
        ax.legend(fontsize="small")
    return _save(fig, path)


def roc_plot(ev: Evaluation, path: Path) -> Path:
    from scipy.special import logsumexp
    from sklearn.metrics import roc_curve

    s = ev.scores
    fig, axes = _figure(width=9.0)
    m = ev.metrics
    for ax, (title, score, _), auc in zip(axes, _variants(ev), [m.get("roc_auc"), m.get("per_token", {}).get("roc_auc")]):
        if len(s.classes) == 2:
            curves = [("margin", s.y == 1, margin(score))]
        else:
            log_post = score - logsumexp(score, axis=1, keepdims=True)
            curves = [(f"{c} vs rest", s.y == i, log_post[:, i]) for i, c in enumerate(s.classes)]
        drawn = 0
        for name, truth, value in curves:
            if 0 < truth.sum() < truth.size:
                fpr, tpr, _ = roc_curve(truth, value)
                ax.plot(fpr, tpr, label=name)
                drawn += 1
        if drawn:
            ax.legend(fontsize="small", loc="lower right")
        else:
            ax.text(0.5, 0.5, "undefined: the test set holds one class", ha="center", va="center")
        ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8)
        ax.set_title(f"{title}: AUC {auc:.4f}" if auc is not None else title)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_aspect("equal")
    return _save(fig, path)


def accuracy_by_length(ev: Evaluation, path: Path) -> Path:
    buckets = ev.metrics["by_length"]
    fig, axes = _figure(ncols=1, width=7.0)
    ax = axes[0]
    x = np.arange(len(buckets))
    ax.bar(x - 0.2, [b["accuracy"] for b in buckets], width=0.4, label="raw NLL")
    ax.bar(x + 0.2, [b["accuracy_per_token"] for b in buckets], width=0.4, label="per-token NLL")
    ax.set_xticks(x, [f"{b['min_tokens']:g}–{b['max_tokens']:g}\n(n={b['n']})" for b in buckets], fontsize="small")
    ax.axhline(ev.metrics["accuracy"], color="black", linewidth=0.8, linestyle=":", label="overall (raw)")
    ax.set_ylim(0.0, 1.15)
    ax.set_yticks(np.linspace(0.0, 1.0, 6))
    ax.set_xlabel("tokens per text (mean over class models)")
    ax.set_ylabel("accuracy")
    ax.set_title("accuracy by text length")
    ax.legend(fontsize="small", loc="upper center", ncols=3)
    return _save(fig, path)


def calibration_plot(ev: Evaluation, path: Path) -> Path:
    s = ev.scores
    fig, axes = _figure()
    for ax, (title, score, unit) in zip(axes, _variants(ev)):
        bins = calibration_bins(np.argmax(score, axis=1) == s.y, confidence_margin(score))
        centre = [(b["margin_min"] + b["margin_max"]) / 2 for b in bins]
        ax.plot(centre, [b["accuracy"] for b in bins], marker="o", label="observed accuracy")
        if unit == "nats":
            ax.plot(centre, [b["implied"] for b in bins], marker="x", linestyle="--",
                    label="sigmoid(margin) (calibrated)")
        ax.set_ylim(0.0, 1.02)
        ax.set_xlabel(f"top-1 − top-2 margin [{unit}] (quantile bins)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"calibration of the margin, {title}")
        ax.legend(fontsize="small", loc="lower right")
    return _save(fig, path)


def write_plots(ev: Evaluation, out_dir: Path) -> List[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        margin_histogram(ev, out_dir / "margin_hist.png"),
        roc_plot(ev, out_dir / "roc.png"),
        accuracy_by_length(ev, out_dir / "accuracy_by_length.png"),
        calibration_plot(ev, out_dir / "calibration.png"),
    ]
