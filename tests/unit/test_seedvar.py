"""Seeds as a source of uncertainty (orchestrator/results/seedvar.py): the two variance
terms by hand, the row interval's edge cases, and the pair's p-value as the level at which
its interval reaches 0."""

from math import sqrt

import numpy as np
import pytest

from orchestrator.results.metrics import jeffreys_ci
from orchestrator.results.seedvar import P_FLOOR, diff_ci, diff_p, mean_accuracy_ci, spread

stats = pytest.importorskip("scipy.stats")


def test_the_two_terms_by_hand():
    x = np.array([[1, 1, 0, 1], [1, 0, 0, 1], [1, 1, 1, 1]])  # seeds' means 3/4, 1/2, 1
    sp = spread(x)
    per_text = np.array([1, 2 / 3, 1 / 3, 1])
    assert sp.mean == pytest.approx(0.75) and (sp.seeds, sp.texts) == (3, 4)
    assert sp.text_var == pytest.approx(np.var(per_text) / 4)
    assert sp.seed_var == pytest.approx(np.var([0.75, 0.5, 1.0], ddof=1) / 3)
    assert spread(x[:1]).seed_var == 0.0  # one seed: its variation cannot be seen


def test_one_seed_or_seeds_that_agree_give_the_runs_jeffreys_interval():
    right = np.arange(200) < 173
    assert mean_accuracy_ci(right[None, :]) == pytest.approx(jeffreys_ci(173, 200), abs=1e-12)
    assert mean_accuracy_ci(np.tile(right, (3, 1))) == pytest.approx(jeffreys_ci(173, 200), abs=1e-12)
    # every text right at every seed: the upper end is 1, the lower end below it (never zero width)
    low, high = mean_accuracy_ci(np.ones((2, 120), dtype=bool))
    assert high == 1.0 and low == pytest.approx(jeffreys_ci(120, 120)[0]) and low < 0.99


def test_seeds_that_vary_widen_the_interval_by_t_with_seeds_minus_1_df():
    n = 1000
    x = np.array([np.arange(n) < k for k in (800, 840, 820)])
    low, high = mean_accuracy_ci(x)
    sp = spread(x)
    p = sp.mean
    n_eff = min(n, p * (1 - p) / sp.text_var)
    beta = stats.beta(p * n_eff + 0.5, (1 - p) * n_eff + 0.5)
    h = stats.t.ppf(0.975, 2) * sqrt(sp.seed_var)  # sd of (80, 84, 82)% over sqrt(3), times t(2 df)
    assert low == pytest.approx(p - sqrt((p - beta.ppf(0.025)) ** 2 + h * h), abs=1e-9)
    assert high == pytest.approx(p + sqrt((beta.ppf(0.975) - p) ** 2 + h * h), abs=1e-9)
    pooled = jeffreys_ci(int(x.sum()) // 3, n)
    assert low < pooled[0] - 0.02 and high > pooled[1] + 0.02  # far wider than the texts alone say


def test_a_pairs_p_value_is_where_its_interval_reaches_zero():
    rng = np.random.default_rng(0)
    for seeds in (2, 3, 5):
        a = rng.random((seeds, 500)) < rng.uniform(0.7, 0.9, size=(seeds, 1))
        b = rng.random((seeds, 500)) < 0.8
        sp = spread(a.astype(int) - b)
        p = diff_p(sp)
        if P_FLOOR < p < 1.0:
            edge = diff_ci(sp, level=1.0 - p)
            assert min(abs(edge[0]), abs(edge[1])) == pytest.approx(0.0, abs=1e-6)
        assert (diff_ci(sp)[0] > 0 or diff_ci(sp)[1] < 0) == (p < 0.05)


def test_a_pairs_p_value_without_a_seed_term_is_normal():
    d = np.array([[1] * 30 + [-1] * 10 + [0] * 60])
    sp = spread(d)
    assert diff_p(sp) == pytest.approx(2 * stats.norm.sf(0.2 / sqrt(sp.text_var)))
    assert diff_p(spread(np.zeros((2, 10)))) == 1.0
