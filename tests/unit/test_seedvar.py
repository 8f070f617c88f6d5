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
    assert sp.seed_spread == pytest.approx(np.var([0.75, 0.5, 1.0], ddof=1) / 3)
    # the floor: each text's variance over the seeds (0, 1/3, 1/3, 0), averaged, over n S
    assert sp.seed_floor == pytest.approx(np.mean([0, 1 / 3, 1 / 3, 0]) / 12)
    assert sp.seed_var == max(sp.seed_spread, sp.seed_floor) == sp.seed_spread
    assert spread(x[:1]).seed_var == 0.0  # one seed: its variation cannot be seen


def test_seeds_that_tie_keep_a_seeds_term_set_by_the_texts_changes():
    """Two seeds whose means tie: their sample variance is 0, but the texts that changed
    between them say how far the means could have moved; no text changed: one text's
    change at one seed, the smallest step of the mean, is the floor."""
    x = np.zeros((2, 100))
    x[0, :10] = x[1, 10:20] = 1  # 10 texts right at each seed, different ones: a tie at 10%
    sp = spread(x)
    assert sp.seed_spread == 0.0
    assert sp.seed_floor == pytest.approx((20 * 0.5 / 100) / 200)  # 20 texts with variance 1/2 over (n S)
    assert sp.seed_var == sp.seed_floor
    same = spread(np.tile(x[0], (3, 1)))  # three seeds, not one text different
    assert same.seed_spread < 1e-20 and same.seed_var == pytest.approx((1 / 300) ** 2)


def test_one_seed_gives_the_runs_jeffreys_interval_and_seeds_that_agree_do_not_shrink_it():
    right = np.arange(200) < 173
    assert mean_accuracy_ci(right[None, :]) == pytest.approx(jeffreys_ci(173, 200), abs=1e-12)
    # three seeds alike on every text: not a known zero seed-to-seed variation, so a little wider
    low, high = mean_accuracy_ci(np.tile(right, (3, 1)))
    j_low, j_high = jeffreys_ci(173, 200)
    h = stats.t.ppf(0.975, 2) / 600  # t (2 df) times one text's change at one seed, 1 / (n S)
    assert low == pytest.approx(0.865 - sqrt((0.865 - j_low) ** 2 + h * h), abs=1e-9)
    assert high == pytest.approx(0.865 + sqrt((j_high - 0.865) ** 2 + h * h), abs=1e-9)
    # every text right at every seed: the upper end is 1, the lower end below it (never zero width)
    low, high = mean_accuracy_ci(np.ones((2, 120), dtype=bool))
    assert high == 1.0 and low < jeffreys_ci(120, 120)[0] < 0.99


def test_seeds_that_vary_widen_the_interval_by_t_with_seeds_minus_1_df():
    n = 1000
    x = np.array([np.arange(n) < k for k in (800, 840, 820)])
    low, high = mean_accuracy_ci(x)
    sp = spread(x)
    p = sp.mean
    n_eff = min(n, p * (1 - p) / sp.text_var)
    beta = stats.beta(p * n_eff + 0.5, (1 - p) * n_eff + 0.5)
    assert sp.seed_var == sp.seed_spread  # the seeds' own spread is above the floor here
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
