"""Seeds as a source of uncertainty: a study row's mean accuracy over its seeds, and the
difference between two rows, with intervals and tests that count both the test texts and
the seeds.

Why: a seed's run is one draw of a trained model.  Its accuracy moves from seed to seed
(init, data order, dropout, MDLM draws) by an amount no single run can show, and with
25,000 test texts that movement (often half a point or more) is larger than the texts'
own uncertainty.  A test that takes only the texts as random says "A beats B" for seed
luck: with two members of equal accuracy whose seeds move by 0.7 points (sd), the
text-only test said "different" in 42-45% of studies of 25,000 texts, and the Jeffreys
interval of the pooled count held the true accuracy in 61-70% (bench/seed_uncertainty.py,
docs/RESULTS.md, "Seeds as a source of uncertainty").

The model (two-way, additive): x[s, i] = mu + a_s + b_i + e_si over seeds s and texts i,
with x a text's correctness (0/1) for one row, or the difference of two rows' correctness
for a pair.  The mean over seeds and texts has variance sigma_a^2 / S + sigma_b^2 / n +
sigma_e^2 / (n S), estimated by two terms:

- texts: the variance over texts of each text's seed-averaged x, over n (sigma_b^2 / n +
  sigma_e^2 / (n S));
- seeds: the sample variance of the seeds' means, over S (sigma_a^2 / S + sigma_e^2 /
  (n S)); 0 at one seed, where seed-to-seed variation cannot be seen (the report says so).

The seeds' term holds the texts' noise sigma_e^2 / (n S) a second time.  Taking it out
(two-way ANOVA) leaves a negative variance, clamped to 0, whenever the seeds happen to
agree, and the test then trusts the texts alone: with 25,000 texts and 0.7 points of seed
luck it said "different" for equal members in 8% of simulated studies at two seeds.  The
cost of keeping it is a wider interval, and less power, when the seeds do not vary.

**The seeds' term has a floor.**  Two or three seeds' means can agree by chance: on 120
texts two seeds of a pair tied at +13.33 points, the seeds' sample variance was exactly 0,
and the test fell back to the texts alone (p 3e-7), while one text the other way (+13.75
points) gave the t part a standard error of 1/240 and p 0.02; a larger, cleaner lead
(+20.4 points, 41 texts to 0, seeds 1 text apart) got p 0.014.  A variance estimated from
S - 1 = 1 degree of freedom is not a known zero.  But the seeds' means cannot vary by less
than the texts' own seed-to-seed changes make them: each text's sample variance over the
seeds, averaged over the texts (W), estimates sigma_a^2 + sigma_e^2, so W / (n S) is what
those changes alone give the seeds' term (its expectation is never above the term's).  It
is known from n (S - 1) values, not S - 1, and no such tie makes it 0.  The seeds' term is
the larger of the two, and never below one text changing at one seed, (1 / (n S))^2: no
change among n S outcomes does not show that none can happen.

The seeds' part keeps Student's t with S - 1 degrees of freedom, floored or not: (mean of
the seed effects) / sqrt(seeds' term) is t with S - 1 df whatever sigma_a is (normal
model), and the floor only widens it.  Giving the floor its own many degrees of freedom
(Satterthwaite) would be right only if sigma_a were 0, which two seeds cannot show.  What
it costs: at two seeds t = 12.7, so the seeds' part alone is 12.7 times at least what the
texts' changes explain, and a two-seed study rarely calls a pair different (docs/RESULTS.md
measures how rarely); three seeds (t = 4.3) are the fewest for a claim about members.

Both terms are joined the same way for a row and for a pair: each gets its own interval,
and their half-widths add in quadrature on each side (Zou & Donner's MOVER).  The texts'
part is the Jeffreys interval at the effective number of texts for a row's accuracy (Korn
& Graubard 1998: p (1 - p) over the texts' term, at most n) and normal for a difference;
the seeds' part is Student's t with S - 1 degrees of freedom.  A row's interval stays
within [0, 1], and at one seed it is exactly the run's Jeffreys interval.  A pair's
p-value is the level at which its interval just reaches 0.  Why not one Welch t over the
sum with Satterthwaite's degrees of freedom: with two or three seeds the degrees of
freedom are estimated from the same few seeds, and two seeds that agree by chance make
the test sure of itself; in the same studies it said "different" in 11% at two seeds
(bench/seed_uncertainty.py measures the designs weighed).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from math import erfc, exp, log, sqrt
from statistics import NormalDist
from typing import List

import numpy as np

from orchestrator.results import betadist
from orchestrator.results.metrics import CI_LEVEL, jeffreys_ci

P_FLOOR = 1e-8  # p-values below this are reported as this (an upper bound): the t quantiles' range


@dataclass(frozen=True)
class Spread:
    """The mean of an (S, n) array over seeds and texts and its variance's two terms."""

    mean: float
    seeds: int
    texts: int
    text_var: float  # the mean's variance from the texts
    seed_var: float  # the mean's variance from the seeds: the larger of the next two (0 at one seed)
    seed_spread: float = 0.0  # what the seeds' means show: their sample variance over S
    seed_floor: float = 0.0  # what the texts' own seed-to-seed changes give that term (module doc)


def spread(x: np.ndarray) -> Spread:
    """X: (seeds, texts), row s from seed s, every row over the same texts."""
    x = np.atleast_2d(np.asarray(x, dtype=float))
    seeds, n = x.shape
    if not n:
        return Spread(0.0, seeds, 0, 0.0, 0.0)
    per_text = x.mean(axis=0)
    mean = float(per_text.mean())
    text_var = float(per_text.var()) / n
    if seeds < 2:
        return Spread(mean, seeds, n, text_var, 0.0)
    seed_spread = float(x.mean(axis=1).var(ddof=1)) / seeds
    within = float(x.var(axis=0, ddof=1).mean())  # W: each text's variance over the seeds, averaged
    # never below one text changing at one seed: W = 1 / (n S) then
    seed_floor = max(within, 1.0 / (n * seeds)) / (n * seeds)
    return Spread(mean, seeds, n, text_var, max(seed_spread, seed_floor), seed_spread, seed_floor)


def _seed_half(sp: Spread, two_sided: float) -> float:
    """The seeds' half-width at two-sided level 1 - TWO_SIDED: t (S - 1 df) times their standard error."""
    if sp.seed_var <= 0.0:
        return 0.0
    return betadist.t_ppf(1.0 - two_sided / 2.0, sp.seeds - 1) * sqrt(sp.seed_var)


def _half(sp: Spread, two_sided: float) -> float:
    """A difference's half-width: the texts' normal part and the seeds' t part in quadrature."""
    z = NormalDist().inv_cdf(1.0 - two_sided / 2.0)
    return sqrt(z * z * sp.text_var + _seed_half(sp, two_sided) ** 2)


def mean_accuracy_ci(correct: np.ndarray, level: float = CI_LEVEL) -> List[float]:
    """The interval of a row's mean accuracy over seeds and texts.  CORRECT: (seeds, texts) bools."""
    sp = spread(correct)
    p, n = sp.mean, sp.texts
    # the texts' part: Jeffreys at the effective number of texts (n itself at one seed, or
    # when every text is right, or none)
    n_eff = float(n) if sp.text_var <= 0.0 else min(float(n), p * (1.0 - p) / sp.text_var)
    low, high = jeffreys_ci(p * n_eff, n_eff, level)
    h = _seed_half(sp, 1.0 - level)
    return [max(0.0, p - sqrt((p - low) ** 2 + h * h)), min(1.0, p + sqrt((high - p) ** 2 + h * h))]


def diff_ci(sp: Spread, level: float = CI_LEVEL) -> List[float]:
    """The interval of a pair's mean difference SP.mean, within [-1, 1]."""
    half = _half(sp, 1.0 - level)
    return [max(-1.0, sp.mean - half), min(1.0, sp.mean + half)]


def diff_p(sp: Spread) -> float:
    """Two-sided p-value of "the difference is 0": the level 1 - L at which diff_ci's L
    interval just reaches 0 (bisection on log p; with a seeds' part, P_FLOOR at the least)."""
    d = abs(sp.mean)
    if d == 0.0:
        return 1.0
    if sp.seed_var <= 0.0:  # one seed: the texts' part alone, normal
        return erfc(d / sqrt(sp.text_var) / sqrt(2.0)) if sp.text_var > 0.0 else 0.0
    lo, hi = log(P_FLOOR), 0.0  # the half-width shrinks as the level's p grows
    if _half(sp, P_FLOOR) < d:
        return P_FLOOR
    for _ in range(40):  # to a relative precision of ~1e-6 in p
        mid = (lo + hi) / 2.0
        if _half(sp, exp(mid)) < d:
            hi = mid
        else:
            lo = mid
    return min(1.0, exp(hi))


def reaching_zero(sp: Spread, level: float = CI_LEVEL) -> Spread:
    """SP with its texts' term widened just enough that diff_ci's LEVEL interval reaches 0
    (where a test this interval does not see, the exact sign-flip test, says p >= 1 - LEVEL:
    an interval and its p-value must not disagree).  SP itself when it reaches 0 already."""
    d = abs(sp.mean)
    if _half(sp, 1.0 - level) >= d:
        return sp
    z = NormalDist().inv_cdf(1.0 - (1.0 - level) / 2.0)
    text_var = (d * d - _seed_half(sp, 1.0 - level) ** 2) / (z * z)
    return replace(sp, text_var=text_var * (1.0 + 1e-12))  # a hair over: the end lands on 0, not beside it
