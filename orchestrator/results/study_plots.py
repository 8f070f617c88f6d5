"""A study's figures (matplotlib's Agg canvas, as plots.py):

    plots/accuracy_by_member.png  each seed's accuracy with its 95% interval, the mean over
                                  seeds, and behind each row the verdict bands it is judged by
    plots/accuracy_vs_draws.png   MDLM members: the accuracy when each text's score is the
                                  mean of k of its draws, k = 1..K, averaged over random orders
                                  of each text's draws (runs with per-draw values)

Every figure names its study in a heading and in the PNG's Title/Description text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from orchestrator.results.metrics import BANDS, FAILED, predict, tie_keys
from orchestrator.results.plots import _figure, fitted_unit_range, save_png
from orchestrator.results.study_table import SeedResult
from remote.spec import scored_with_draws

BY_MEMBER = "accuracy_by_member.png"
VS_DRAWS = "accuracy_vs_draws.png"
BAND_COLOURS = {"Excellent": "#1a9850", "Good": "#91cf60", "Acceptable": "#fee08b", FAILED: "#fc8d59"}
MAX_DRAW_POINTS = 40  # k values drawn on the draws axis (log-spaced beyond this)
DRAW_ORDER_SEED = 0  # the random orders of each text's draws the draw curve averages over
# How many: as many as ORDER_WORK allows, within these.  ORDER_WORK is the (text x class x
# draw) values permuted in all, about 0.4 s here for a run of 25,000 texts x 2 classes x 64
# draws (6 orders); at two orders the least, a bigger run takes longer.  A big run needs few:
# the order's noise in a point is that of its texts' mean, at most ~0.003 at 25,000 texts for
# one order (bench/draw_curve_cost.py times it).
MIN_ORDERS, MAX_ORDERS = 2, 200
ORDER_WORK = 2e7


def _save(fig, path: Path, study: str, what: str) -> Path:
    label = f"study {_plain(study)}"
    return save_png(fig, path, title=f"{what} · {label}", label=label, what=what, writer="orch study report")


def _plain(text: str) -> str:
    """Text matplotlib shows as written: a '$' would start mathtext (and a bad formula raises)."""
    return str(text).replace("$", r"\$")


def band_ranges(band_set: str) -> List[Tuple[str, float, float]]:
    """(label, low, high) in [0, 1] of each verdict band, highest first."""
    out, top = [], 1.0
    for label, bound, _ in BANDS[band_set]:
        out.append((label, bound / 100.0, top))
        top = bound / 100.0
    return out + [(FAILED, 0.0, top)]


def accuracy_by_member(path: Path, table: Dict[str, Any]) -> Path:
    rows = [r for r in table["rows"]]
    fig, axes = _figure(ncols=1, width=max(6.0, 1.3 * len(rows) + 2.0), height=4.5)
    ax = axes[0]
    shown: List[float] = []
    for i, row in enumerate(rows):
        seeds = row["seeds"]
        offsets = np.linspace(-0.25, 0.25, len(seeds)) if len(seeds) > 1 else [0.0]
        for dx, rec in zip(offsets, seeds):
            acc, interval = rec["accuracy"], rec["accuracy_ci95"]
            yerr = None
            if interval:
                yerr = [[max(0.0, acc - interval[0])], [max(0.0, interval[1] - acc)]]
                shown += list(interval)
            ax.errorbar(i + dx, acc, yerr=yerr, fmt="o", color="black", markersize=5, capsize=3, linewidth=1)
            shown.append(acc)
        if row["accuracy_mean"] is not None:
            ax.hlines(row["accuracy_mean"], i - 0.35, i + 0.35, colors="tab:blue", linewidth=2.5)
        if row.get("accuracy_mean_ci95"):  # the mean's interval over texts and seeds
            lo, hi = row["accuracy_mean_ci95"]
            ax.fill_between([i - 0.35, i + 0.35], lo, hi, color="tab:blue", alpha=0.15, linewidth=0, zorder=1)
            shown += [lo, hi]
        if not row["complete"]:
            ax.annotate(
                f"{row['n_done']}/{row['n_planned']} seeds",
                (i, 0),
                xycoords=("data", "axes fraction"),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                fontsize="small",
                color="tab:red",
            )
    low, high = fitted_unit_range(shown)
    drawn = set()
    for i, row in enumerate(rows):  # the bands each row is judged by, behind it
        if row.get("bands") and row.get("verdict_basis") == "bands":
            for label, lo, hi in band_ranges(row["bands"]):
                ax.fill_between(
                    [i - 0.45, i + 0.45], lo, hi, color=BAND_COLOURS[label], alpha=0.25, linewidth=0, zorder=0
                )
                drawn.add(label)
    # a legend entry only for a band some row shows
    handles = [
        ax.fill_between([], [], [], color=c, alpha=0.25, linewidth=0, label=f"band: {label}")
        for label, c in BAND_COLOURS.items()
        if label in drawn
    ]
    ax.set_ylim(low, high)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_xticks(range(len(rows)), [_plain(r["name"]) for r in rows], rotation=20 if len(rows) > 5 else 0)
    ax.set_ylabel("accuracy (each seed, 95% CI; bar: mean, shaded: its 95% CI)")
    ax.grid(axis="y", linewidth=0.5, alpha=0.5)
    if handles:
        ax.legend(handles=handles, fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path, str(table["study"]), "accuracy by member")


def draw_curve(ev, seed: int = DRAW_ORDER_SEED) -> Optional[Tuple[np.ndarray, np.ndarray, int]]:
    """(k values, accuracy with each text scored by the mean of k of its draws, the number
    of random orders averaged), or None when the run has no per-draw values (or one draw).

    Not the first k draws as stored: a text's K draws are K strata of one stratified
    estimate (remote/kinds/mdlm.py), stored in stratum order, so draw 0 is the stratum that
    masks the fewest tokens (the noisiest, at weight n / k or 1 / t) and the first k are not
    k draws of the estimator: k = 1 read 55.8% in a run whose 1-draw scorer gets ~80%.  Each
    draw alone has the estimator's distribution, so k of them taken at random (a random
    order of each text's draws, the same order in every class: the draws are paired) are an
    unbiased k-draw estimate; the curve is the accuracy averaged over ORDERS such orders
    (fixed SEED, so a report redrawn is the same).  At k = K every order gives the run's
    own scores.  A k-draw scoring of its own would stratify its k draws and be a little
    less noisy than k of K strata, so the curve errs low, not high."""
    draws = ev.scores.draws
    if draws is None or draws.shape[2] < 2 or np.isnan(draws).any():  # adaptive: texts differ in K
        return None
    n, c, k_all = draws.shape
    ks = (
        np.unique(np.geomspace(1, k_all, MAX_DRAW_POINTS).round().astype(int))
        if k_all > MAX_DRAW_POINTS
        else np.arange(1, k_all + 1)
    )
    lp = np.asarray(ev.prior["log_prior"], dtype=float)[None, :, None]
    rng = np.random.default_rng(seed)
    orders = int(max(MIN_ORDERS, min(MAX_ORDERS, ORDER_WORK // max(1, n * c * k_all))))
    keys = tie_keys(ev.scores.ids, c)  # the coin that breaks exact ties, as in the run's own evaluation
    starts = np.concatenate(([0], ks[:-1]))  # the draws between two plotted k are summed at once
    acc = np.zeros(len(ks))
    for _ in range(orders):
        order = rng.random((n, 1, k_all)).argsort(axis=2)  # one order per text, shared by its classes
        shuffled = np.take_along_axis(draws, order, axis=2)
        cum = np.cumsum(np.add.reduceat(shuffled, starts, axis=2), axis=2)  # (n, C, len(ks)): first k summed
        acc += np.mean(predict(-cum / ks + lp, keys) == ev.scores.y[:, None], axis=0)
    return ks, acc / orders, orders


def draw_curves(table: Dict[str, Any], results: Dict[str, List[SeedResult]]) -> Tuple[Dict[str, list], str]:
    """{member: [(seed, ks, acc)...]} for the MDLM members with per-draw values (draw_curve),
    and a note saying why there is no curve when none, or how many random orders each
    point averages when there are."""
    mdlm = [r["name"] for r in table["rows"] if r["type"] == "member" and scored_with_draws(r["kind"])]
    if not mdlm:
        return {}, "no MDLM member in this study"
    if not any(results[name] for name in mdlm):
        return {}, "no MDLM member has results yet"
    curves: Dict[str, list] = {}
    orders: List[int] = []
    for name in mdlm:
        for sr in results[name]:
            curve = draw_curve(sr.evaluation)
            if curve is not None:
                curves.setdefault(name, []).append((sr.seed, *curve[:2]))
                orders.append(curve[2])
    if not curves:
        return {}, "the MDLM members' score files hold no per-draw values (score rows without `draws`, or one draw)"
    return curves, orders_note(min(orders), max(orders))


def orders_note(fewest: int, most: int) -> str:
    """What a point of the draw curve is, for report.md."""
    many = str(fewest) if fewest == most else f"{fewest} to {most}"
    return (
        f"{VS_DRAWS}: each point is the accuracy with every text scored by the mean of k of its draws, "
        f"averaged over {many} random orders of each text's draws (seed {DRAW_ORDER_SEED}), not its first k as "
        "stored: those are the stratified estimator's strata in order, the first the noisiest"
    )


def accuracy_vs_draws(path: Path, table: Dict[str, Any], curves: Dict[str, list]) -> Path:
    fig, axes = _figure(ncols=1, width=7.0, height=4.5)
    ax = axes[0]
    shown: List[float] = []
    for colour, (name, runs) in zip(["C0", "C1", "C2", "C3", "C4", "C5", "C6"] * 10, curves.items()):
        for j, (seed, ks, acc) in enumerate(runs):
            ax.plot(
                ks,
                acc,
                marker=".",
                color=colour,
                alpha=0.85,
                label=f"{_plain(name)}, seed {seed}",
                linestyle=["-", "--", ":", "-."][j % 4],
            )
            shown += acc.tolist()
    kmax = max(int(ks[-1]) for runs in curves.values() for _, ks, _ in runs)
    if kmax > 16:
        ax.set_xscale("log")
    else:
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(*fitted_unit_range(shown))
    ax.set_xlabel("draws per text (k): each score the mean of k of its draws, averaged over random orders")
    ax.set_ylabel("accuracy (one line per seed)")
    ax.grid(linewidth=0.5, alpha=0.5)
    ax.legend(fontsize="small", loc="lower right")
    return _save(fig, path, str(table["study"]), "accuracy vs MDLM draws")


def write_plots(
    out_dir: Path, table: Dict[str, Any], curves: Dict[str, list], curves_note: str
) -> Tuple[List[Path], List[str]]:
    """(the PNGs drawn into OUT_DIR, notes on them: those not drawn and why, what the draw
    curve's points are); CURVES and CURVES_NOTE are :func:`draw_curves`'s."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    drawn, notes = [], []
    if any(r["seeds"] for r in table["rows"]):
        drawn.append(accuracy_by_member(out_dir / BY_MEMBER, table))
    else:
        notes.append(f"{BY_MEMBER}: not drawn, no run has results yet")
    if curves:
        drawn.append(accuracy_vs_draws(out_dir / VS_DRAWS, table, curves))
        notes.append(curves_note)
    else:
        notes.append(f"{VS_DRAWS}: not drawn, {curves_note}")
    for stale in {BY_MEMBER, VS_DRAWS} - {p.name for p in drawn}:
        (out_dir / stale).unlink(missing_ok=True)  # an earlier report's figure no longer holds
    return drawn, notes
