"""The paired test of two rows of a study over the seeds both have: texts are the unit, and
from two seeds up the seeds count too.

Each seed's two runs score the same test texts.  Pooling the seeds by stacking their
predictions (McNemar on counts summed over seeds) counts a text once per seed, as if
each seed had brought new texts; but a trained model gets mostly the same texts right
whatever its seed, so the repeats are not independent and the test finds differences
that are not there: with two members of equal accuracy it said "different" (p < 0.05)
in 10% of studies of 1,000 texts at 2 seeds, 17% at 3 and 28% at 5
(bench/seed_uncertainty.py, docs/RESULTS.md).

Here each text gets its seed-averaged difference d = (seeds A gets it right - seeds B
gets it right) / S, and the test is the paired sign-flip (permutation) test of the d over
the texts: under "A and B are equally good", each text's d is as likely to be -d.  With
one seed d is -1, 0 or 1 and the test is exactly McNemar's exact test.  Its p-value is
exact (the sign-flip distribution, convolved per magnitude of d) up to EXACT_MAX texts
that differ, and beyond that its normal approximation with a continuity correction, which
there agrees with the exact value to within half a percent of it.

That test takes the seeds' models as given: it asks whether these trained models differ
on the population of texts.  Whether the members do, whatever their seeds, also depends
on how far a member's accuracy moves from seed to seed, which the texts cannot show: with
25,000 texts, seed luck of 0.7 points (sd) made the text-only test say "different" for
equal members in 42-45% of studies.  So from two seeds up the
p-value is the larger of that test's and the one that also counts the seeds' variance of
the difference (seedvar.diff_p: the texts' and the seeds' parts of its interval, the
seeds' with S - 1 degrees of freedom and never below what the texts' own seed-to-seed
changes give it, so two seeds that tie by chance are not taken as seeds that never
differ): a pair is called different only when both say so.
At one seed the seeds' variance cannot be seen, the test stays McNemar's, and the report
says so.
``diff_ci95`` is the difference's 95% interval from the same two terms, and it holds 0
exactly when p >= 0.05: where the exact sign-flip test is the larger p (a few texts that
differ, which the texts' normal part overstates), its texts' part is widened until the
interval reaches 0 (seedvar.reaching_zero; ``se_texts`` stays what the texts give, the
widened value is ``se_texts_widened``).  At one seed it is the one that goes with
McNemar's test (metrics.mcnemar_diff_ci: it holds 0 exactly when p >= 0.05 too).
"""

from __future__ import annotations

from math import erfc, exp, lgamma, log, sqrt
from typing import Any, Dict

import numpy as np

from orchestrator.results.metrics import CI_LEVEL, mcnemar_diff_ci, mcnemar_exact
from orchestrator.results.seedvar import diff_ci, diff_p, reaching_zero, spread

EXACT_MAX = 3000  # texts with d != 0 up to which the sign-flip distribution is enumerated
TEST = "McNemar's exact test (one seed: seed-to-seed variation not measured)"
TEST_SEEDS = (
    "the larger p of the sign-flip test of the seed-averaged per-text difference and the interval "
    "over the texts' and the seeds' variance (t with seeds - 1 df; the seeds' variance never below what "
    "the texts' own seed-to-seed changes give it)"
)


def paired_over_seeds(correct_a: np.ndarray, correct_b: np.ndarray) -> Dict[str, Any]:
    """CORRECT_A, CORRECT_B: (seeds, texts) bools, row s of both from seed s.

    ``a_only`` / ``b_only``: the texts A (B) gets right in more of the seeds than the other
    (at one seed: right where the other is wrong); ``accuracy_diff``: A's mean accuracy
    over the seeds minus B's, ``diff_ci95`` its interval; ``se_texts`` / ``se_seeds``: the
    standard errors of accuracy_diff from the texts, as measured, and from the seeds that
    the interval uses (0 at one seed); ``se_texts_widened``: the texts' term the interval
    uses, se_texts widened where the sign-flip test gives the larger p (reaching_zero);
    ``se_seeds_spread`` / ``se_seeds_floor``: the seeds' own spread and the floor the
    texts' seed-to-seed changes set (se_seeds is the larger);
    ``p_value``: two-sided, by ``test``."""
    a = np.atleast_2d(np.asarray(correct_a, dtype=bool))
    b = np.atleast_2d(np.asarray(correct_b, dtype=bool))
    seeds, n = a.shape
    diff = a.sum(axis=0).astype(np.int64) - b.sum(axis=0)  # seeds * d, an integer per text
    a_only, b_only = int(np.sum(diff > 0)), int(np.sum(diff < 0))
    measured = sp = spread(a.astype(np.int8) - b.astype(np.int8))
    if seeds == 1:
        p_value, test = mcnemar_exact(a_only, b_only), TEST
        interval = mcnemar_diff_ci(a_only, b_only, n)
    else:
        p_value, test = max(sign_flip_p(diff), diff_p(sp)), TEST_SEEDS
        if p_value >= 1.0 - CI_LEVEL:  # the sign-flip test's p may be the larger: the interval agrees
            sp = reaching_zero(sp)
        interval = diff_ci(sp)
    return {
        "n": int(n),
        "a_only": a_only,
        "b_only": b_only,
        "ties": int(n - a_only - b_only),
        "accuracy_diff": sp.mean,
        "diff_ci95": interval,
        "se_texts": sqrt(measured.text_var),
        "se_texts_widened": sqrt(sp.text_var),
        "se_seeds": sqrt(sp.seed_var),
        "se_seeds_spread": sqrt(sp.seed_spread),
        "se_seeds_floor": sqrt(sp.seed_floor),
        "p_value": p_value,
        "test": test,
    }


def sign_flip_p(diff: np.ndarray) -> float:
    """Two-sided p-value of sum(DIFF) under random signs on every nonzero integer in DIFF:
    P(|sum of e_i |diff_i|| >= |sum(diff)|), e_i = +-1 with probability 1/2 each."""
    diff = np.asarray(diff, dtype=np.int64)
    diff = diff[diff != 0]
    observed = abs(int(diff.sum()))
    if observed == 0:
        return 1.0
    if diff.size > EXACT_MAX:  # the sum moves in steps of 2: half a step of continuity correction
        return min(1.0, erfc((observed - 1) / sqrt(float(np.sum(diff.astype(float) ** 2))) / sqrt(2.0)))
    magnitudes, counts = np.unique(np.abs(diff), return_counts=True)
    reach = int(np.sum(magnitudes * counts))  # the sum lies in [-reach, reach]
    dist = np.zeros(2 * reach + 1)
    dist[reach] = 1.0  # index = value + reach
    for j, m in zip(magnitudes.tolist(), counts.tolist()):
        # j * (2X - m), X ~ Binomial(m, 1/2): shift the distribution by each outcome
        new = np.zeros_like(dist)
        for x in range(m + 1):
            weight = exp(lgamma(m + 1) - lgamma(x + 1) - lgamma(m - x + 1) - m * log(2.0))
            if weight < 1e-300:
                continue
            shift = j * (2 * x - m)
            if shift >= 0:
                new[shift:] += weight * dist[: dist.size - shift]
            else:
                new[:shift] += weight * dist[-shift:]
        dist = new
    values = np.abs(np.arange(-reach, reach + 1))
    return min(1.0, float(dist[values >= observed].sum()))
