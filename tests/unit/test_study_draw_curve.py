"""The study's accuracy-vs-draws curve (study_plots.draw_curve): k of a text's draws taken
at random, not the first k as stored, since a text's draws are the strata of one stratified
estimate in stratum order and the first is the noisiest."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from orchestrator.results.study_plots import draw_curve


def stratified_run(n: int = 400, k: int = 4, seed: int = 0):
    """An evaluation-like object with (n, 2, K) draws whose stratum j's noise falls with j
    (as the stratum masking the fewest tokens is the noisiest): draw 0 mostly decides wrong."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    margin = np.where(y == 1, 1.0, -1.0)  # the class-1 score less the class-0 score, exact
    noise_sd = np.array([8.0, 2.0, 1.0, 0.5])[:k]
    d = margin[:, None] + rng.normal(size=(n, k)) * noise_sd[None, :]  # per-draw class-1 advantage
    nll0 = 50.0 + rng.normal(size=(n, k))  # a shift common to both classes: cancels in the difference
    draws = np.stack([nll0, nll0 - d], axis=1)  # class 1's NLL lower by d
    scores = SimpleNamespace(draws=draws, y=y, ids=[f"t{i}" for i in range(len(y))])
    return SimpleNamespace(scores=scores, prior={"log_prior": [np.log(0.5), np.log(0.5)]}), d, y


def test_k_draws_are_taken_at_random_not_in_stored_order():
    ev, d, y = stratified_run()
    curve = draw_curve(ev)
    ks, acc = curve[0], curve[1]
    assert list(ks) == [1, 2, 3, 4]
    per_draw = [np.mean((d[:, j] > 0) == (y == 1)) for j in range(4)]
    first = per_draw[0]
    # one draw at random: on average the mean of each draw's own accuracy (exact in expectation)
    assert acc[0] == pytest.approx(np.mean(per_draw), abs=0.01)
    assert acc[0] > first + 0.1  # the first stored draw alone is far worse than a random one
    # all K draws: every order gives the run's own scores
    assert acc[-1] == pytest.approx(np.mean((d.mean(axis=1) > 0) == (y == 1)))
    # a fixed seed: the report draws the same curve again
    assert np.array_equal(draw_curve(ev)[1], acc) and curve[2] >= 20  # and says how many orders it averaged


def test_the_curve_permutes_no_more_values_than_order_work_allows(monkeypatch):
    """ORDER_WORK bounds the draws permuted in all: a run three times smaller than it is
    averaged over 3 orders (20 at the least made a 25,000-text run take seconds)."""
    from orchestrator.results import study_plots

    ev, d, y = stratified_run()
    monkeypatch.setattr(study_plots, "ORDER_WORK", 3 * d.size * 2)
    ks, acc, orders = draw_curve(ev)
    assert orders == 3
    assert acc[-1] == pytest.approx(np.mean((d.mean(axis=1) > 0) == (y == 1)))  # all K draws: the run's own


def test_runs_without_common_draws_have_no_curve():
    ev, _, _ = stratified_run(k=4)
    ragged = ev.scores.draws.copy()
    ragged[0, :, 3] = np.nan  # adaptive draws: texts differ in K
    assert (
        draw_curve(
            SimpleNamespace(scores=SimpleNamespace(draws=ragged, y=ev.scores.y, ids=ev.scores.ids), prior=ev.prior)
        )
        is None
    )
    one = SimpleNamespace(
        scores=SimpleNamespace(draws=ev.scores.draws[:, :, :1], y=ev.scores.y, ids=ev.scores.ids), prior=ev.prior
    )
    assert draw_curve(one) is None
