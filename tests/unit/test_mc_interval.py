"""The accuracy's interval of an estimating kind (results/uncertainty.py): the redrawn
scorings widen the texts' interval about the observed accuracy, not below it."""

import numpy as np

from orchestrator.results.metrics import tie_keys
from orchestrator.results.uncertainty import accuracy_with_mc_noise


def noisy_run(seed: int, n: int = 120, k: int = 4):
    """Two classes scored with K shared draws whose noise often outweighs a text's margin."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    mu = rng.normal(6.0, 6.0, n)
    draws = 100.0 + rng.normal(0.0, 20.0, (n, 1, k)) + rng.normal(0.0, 7.6 / np.sqrt(2.0), (n, 2, k))
    draws[np.arange(n), 1 - y, :] += mu[:, None]
    return y, draws


def test_the_draws_widen_the_interval_about_the_observed_accuracy():
    y, draws = noisy_run(5)
    lp = [np.log(0.5)] * 2
    keys = tie_keys([str(i) for i in range(len(y))], 2)
    orch = accuracy_with_mc_noise(y, draws, lp, 1000, seed=1, keys=keys)
    before = accuracy_with_mc_noise(y, draws, lp, 1000, seed=1, centred=False, keys=keys)
    observed = np.mean(np.argmax(-draws.mean(axis=2), axis=1) == y)
    texts = orch["texts_only_ci95"]
    # a redrawn scoring is noisier than the observed one, and noise costs accuracy
    assert orch["mc_mean_accuracy"] < observed - 0.01
    # as they were, the redrawn accuracies moved the interval down: its top below the texts' own
    assert before["accuracy_ci95"][1] < texts[1]
    # about the observed accuracy they widen it on both sides, and the draws' own interval holds it
    assert orch["accuracy_ci95"][0] < texts[0] and orch["accuracy_ci95"][1] > texts[1]
    low, high = orch["mc_only_ci95"]
    assert low < observed < high
