"""The estimator's own noise: how sure each class decision is, given the random draws an
estimating kind (MDLM) scored with.  Pure numpy over the merged scores, no I/O.

A kind that estimates by random draws writes each text's per-draw estimates, and draw j
of a text is the same random draw in every class model (common random numbers,
remote/score.py).  The decision between two classes then has a paired standard error:
the spread over j of the per-draw class difference (metrics.paired_margin_se), which is
what decides the class, not the per-class standard errors in score rows.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from orchestrator.results.metrics import (
    BOOTSTRAP_SEED,
    CI_LEVEL,
    decision_critical,
    draws_per_text,
    interval,
    jeffreys_ci,
    jeffreys_draws,
    jeffreys_var,
    margin,
    not_significant,
    paired_margin_se,
    predict,
)


def paired_summary(
    score: np.ndarray, draws: Optional[np.ndarray], class_se: np.ndarray
) -> Tuple[Optional[Dict[str, Any]], Optional[np.ndarray]]:
    """(metrics.json's ``paired`` section, each text's margin SE) - (None, None) for scores
    without draws (exact kinds: nothing is random)."""
    if draws is None:
        return None, None
    k = int(draws.shape[2])  # adaptive draws: the most any text got (metrics.json's adaptive says more)
    se = paired_margin_se(score, draws)
    if se is None:
        return {
            "draws": k,
            "level": CI_LEVEL,
            "critical": None,
            "not_significant": None,
            "not_significant_n": None,
            "mean_margin_se": None,
            "median_margin_se": None,
            "mean_class_se": None,
            "class_se_ratio": None,
            "note": "one draw per text: no spread to estimate the noise from (score.mdlm_draws >= 2)",
        }, None
    k_i = draws_per_text(draws)
    crit = decision_critical(k_i)
    flip = not_significant(margin(score), se, crit)
    mean_se = float(se.mean())
    class_se = float(np.nanmean(class_se)) if not np.all(np.isnan(class_se)) else None
    return {
        "draws": k,
        "level": CI_LEVEL,
        # Student's t at each text's draws - 1 degrees of freedom: one value for fixed K,
        # the range over the texts for adaptive draws.
        "critical": {
            "df_min": int(k_i.min()) - 1,
            "df_max": int(k_i.max()) - 1,
            "min": float(crit.min()),
            "max": float(crit.max()),
        },
        "not_significant": float(flip.mean()),
        "not_significant_n": int(flip.sum()),
        "mean_margin_se": mean_se,
        "median_margin_se": float(np.median(se)),
        "mean_class_se": class_se,
        "class_se_ratio": None if class_se is None or mean_se == 0 else class_se / mean_se,
    }, se


# --------------------------------------------------------------------------- the accuracy's interval

MIX_DRAWS = 100_000  # accuracies drawn from the mixture over the redrawn scorings
MC_WORK = 1e8  # at most this many (text x class x draw) gathers for the draw resampling: ~1-2 s


def accuracy_with_mc_noise(
    y: np.ndarray,
    draws: Optional[np.ndarray],
    log_prior: Sequence[float],
    resamples: int,
    seed: int = BOOTSTRAP_SEED,
    centred: bool = True,
    *,
    keys: np.ndarray,
) -> Optional[Dict[str, Any]]:
    """The accuracy's interval with the estimator's noise in it, and how much of
    its width each source causes.  None without draws (or with one draw, or no resamples).

    Each resample redraws the scoring (every text's K draws resampled with replacement,
    the same draw indices for every class: the draws are paired) and then the accuracy
    given the test set: from Beta(k + 1/2, n - k + 1/2), k the count right under the
    redrawn scoring with the redrawn counts' spread taken about the observed count (CENTRED,
    below; the Jeffreys posterior that metrics.accuracy_ci takes its interval from; the same
    ends at the edges, from the run's own count).  Three spreads come out:
    test-set sampling alone (the scores as they are), Monte Carlo noise alone (the test
    set as it is) and both; each source's share is its variance over the sum of the two
    (they add: the test texts and the draws are independent).  Resampling the K
    stratified draws treats them as independent, which overstates their noise a little:
    the interval errs wide.  The draw resampling costs n*C*K per resample; beyond
    MC_WORK in all, fewer resamples are drawn for it (``mc_resamples``)."""
    if draws is None or resamples <= 0 or draws.shape[2] < 2:
        return None
    n, c, k = draws.shape
    lp = np.asarray(log_prior, dtype=float)[None, :]
    rng = np.random.default_rng(seed)
    mc_resamples = int(max(50, min(resamples, MC_WORK // max(1, n * c * k))))
    right_mc = np.empty(mc_resamples)
    # Only the differences to one class decide: with two classes that is one (n, K) array.
    rel = draws[:, 1:, :] - draws[:, :1, :]  # (n, C-1, K): nll_c - nll_0, per draw
    lp_rel = lp[:, 1:] - lp[:, :1]
    ragged = bool(np.isnan(draws).any())  # adaptive draws: text i has its own K_i, NaN after them
    k_i = (~np.isnan(draws[:, 0, :])).sum(axis=1)[:, None, None]
    for r in range(mc_resamples):
        if ragged:  # K_i indices among text i's own draws, the mean over those K_i
            pick = np.minimum((rng.random((n, 1, k)) * k_i).astype(np.int64), k_i - 1)
            taken = np.take_along_axis(rel, pick, axis=2)
            score_rel = -np.where(np.arange(k)[None, None, :] < k_i, taken, 0.0).sum(axis=2) / k_i[:, :, 0] + lp_rel
        else:
            pick = rng.integers(0, k, size=(n, 1, k))  # draw indices, the same for every class: paired
            score_rel = -np.take_along_axis(rel, pick, axis=2).mean(axis=2) + lp_rel  # score_c - score_0
        best = predict(np.concatenate([np.zeros((n, 1)), score_rel], axis=1), keys)
        right_mc[r] = np.mean(best == y)
    observed = int(np.sum(predict(-(np.nanmean(draws, axis=2) if ragged else draws.mean(axis=2)) + lp, keys) == y))
    # A redrawn scoring adds its noise on top of the draws' own, and noise near the decision
    # costs accuracy: the redrawn counts sit below the observed one (87.3% against 90.0% in a
    # smoke MDLM run), and an interval taken from them as they are moved down instead of
    # widening - its upper end fell below the texts' alone.  So their spread is taken about
    # the observed count (bench/mc_interval.py measures both ways, docs/RESULTS.md).
    spread_mc = np.clip(observed / n + right_mc - right_mc.mean(), 0.0, 1.0) if centred else right_mc
    # Beta draws cost nothing beside the draw resampling: enough of them that the interval's
    # ends do not move with the seed (1,000 moved them by ~0.1 posterior sd).
    both = jeffreys_draws(rng, np.rint(np.resize(spread_mc, max(resamples, MIX_DRAWS)) * n), n)
    var_texts, var_mc = jeffreys_var(observed, n), float(np.var(right_mc))
    total = var_texts + var_mc
    return {
        "method": "Jeffreys posterior of the count right, mixed over resampled draws (paired across classes)",
        "resamples": resamples,
        "mc_resamples": mc_resamples,
        "draws": k,
        "seed": seed,
        "accuracy_ci95": interval(both, observed, n),
        "texts_only_ci95": jeffreys_ci(observed, n),
        "mc_only_ci95": interval(spread_mc),  # the scoring's noise alone: no edge rule
        "mc_mean_accuracy": float(right_mc.mean()),  # what a redrawn scoring gets on average
        "share_texts": None if total == 0 else var_texts / total,
        "share_mc": None if total == 0 else var_mc / total,
    }


def adaptive_summary(
    draws: Optional[np.ndarray], spec, y: np.ndarray, log_prior: Sequence[float], keys: np.ndarray
) -> Optional[Dict[str, Any]]:
    """metrics.json's ``adaptive`` for a run with ``score.mdlm_draws: adaptive`` (``spec``:
    score.adaptive): draws per text and forward passes (class models x draws), counted
    from the merged score rows, what fixed K = max would have cost, and ``by_max``: the
    accuracy and forward passes had ``max`` been a smaller multiple of ``round``.  That
    curve comes from this run's draws alone: rounds draw the same masks whatever ``max``
    is, so a smaller max is the same run with each text cut at its first max' draws.  That
    cut is sound where a fixed-K run's first k draws are not (study_plots.draw_curve): every
    round's draws are a whole stratified set of their own (remote/adaptive.py scores a round
    as a run with that many draws), and each cap is a multiple of ``round`` or all of a
    text's draws, so it never splits a round's strata."""
    if draws is None:
        return None
    n, c, k_all = draws.shape
    per_text = (~np.isnan(draws[:, 0, :])).sum(axis=1)
    passes = int(per_text.sum()) * c
    fixed = n * c * int(spec.max)
    lp = np.asarray(log_prior, dtype=float)[None, :]
    cum = np.cumsum(np.nan_to_num(draws), axis=2)  # (n, C, K): sums of the first j+1 draws
    caps, m = [], 1
    while m * spec.round < spec.max:
        caps.append(m * spec.round)
        m *= 2
    by_max = []
    for cap in caps + [int(spec.max)]:
        used = np.minimum(per_text, cap)
        nll = cum[np.arange(n), :, used - 1] / used[:, None]
        acc = float(np.mean(predict(-nll + lp, keys) == y))
        by_max.append({"max": int(cap), "accuracy": acc, "forward_passes": int(used.sum()) * c})
    return {
        "round": int(spec.round),
        "max": int(spec.max),
        "z": float(spec.z),
        "draws_mean": float(per_text.mean()),
        "draws_min": int(per_text.min()),
        "draws_max": int(per_text.max()),
        "draws_total": int(per_text.sum()),
        "at_max": int((per_text >= spec.max).sum()),
        "forward_passes": passes,
        "fixed_max_forward_passes": fixed,
        "share_of_fixed_max": passes / fixed if fixed else None,
        "by_max": by_max,
    }
