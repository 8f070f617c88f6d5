"""How often an estimating kind's accuracy interval (texts + the estimator's draws) holds
the truth, with the redrawn scorings' spread taken about the observed accuracy (orch) or
as it is (before).

    python bench/mc_interval.py [--runs 300] [--write docs/RESULTS.md]

Each simulated run scores n test texts of two classes with K random draws per text, the
draws shared by both class models (common random numbers, as remote/score.py does).  A
text's true margin mu (how much better the right class model explains it, exactly) is
drawn from N(MARGIN_MEAN, MARGIN_SD); each draw adds noise of sd NOISE to the difference.
Two truths an interval may be asked to hold:

- the accuracy of this K-draw scorer on new texts (new draws too): E[Phi(mu / (NOISE / sqrt K))];
- the accuracy of the exact scorer (infinitely many draws): P(mu > 0), which the K-draw one
  falls short of, since noise near the decision costs accuracy.

For each run: the texts-only Jeffreys interval, orch's (results/uncertainty.py,
accuracy_with_mc_noise), and the same without centring (centred=False, orch before).
Seeded: the same figures on every machine.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from docsection import write_or_print  # noqa: E402

from orchestrator.results.metrics import tie_keys  # noqa: E402
from orchestrator.results.uncertainty import accuracy_with_mc_noise  # noqa: E402

SECTION = "## The estimator's draws in the accuracy's interval"
MARGIN_MEAN, MARGIN_SD, NOISE = 6.0, 6.0, 7.6
CELLS = ((120, 4), (120, 8), (1000, 4))  # (texts, draws per text)
RESAMPLES = 1000


def truths(rng: np.random.Generator, k: int):
    from statistics import NormalDist

    mu = rng.normal(MARGIN_MEAN, MARGIN_SD, 400_000)
    cdf = np.vectorize(NormalDist().cdf)
    return float(np.mean(cdf(mu[:40_000] / (NOISE / np.sqrt(k))))), float(np.mean(mu > 0))


def one_run(rng: np.random.Generator, n: int, k: int, seed: int):
    """The three intervals of one simulated run: orch's, the texts' alone, uncentred."""
    y = rng.integers(0, 2, n)
    mu = rng.normal(MARGIN_MEAN, MARGIN_SD, n)
    shared = rng.normal(0.0, 20.0, (n, 1, k))  # the draw's own difficulty, the same in both models
    draws = 100.0 + shared + rng.normal(0.0, NOISE / np.sqrt(2.0), (n, 2, k))
    draws[np.arange(n), 1 - y, :] += mu[:, None]  # the wrong class's model explains the text worse
    lp = [np.log(0.5)] * 2
    keys = tie_keys([str(i) for i in range(len(y))], 2)  # the coin that breaks exact ties
    orch = accuracy_with_mc_noise(y, draws, lp, RESAMPLES, seed=seed, keys=keys)
    before = accuracy_with_mc_noise(y, draws, lp, RESAMPLES, seed=seed, centred=False, keys=keys)
    return orch["accuracy_ci95"], orch["texts_only_ci95"], before["accuracy_ci95"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--write", type=Path, help="replace the section in this markdown file")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    rows = [
        "| texts, draws | accuracy: K-draw scorer, exact scorer | holds the K-draw scorer's, **orch** (texts "
        "alone) (uncentred) | holds the exact scorer's, **orch** (texts alone) (uncentred) | mean width, "
        "points, **orch** (texts alone) (uncentred) |",
        "|---|---|---|---|---|",
    ]
    for n, k in CELLS:
        p_k, p_inf = truths(rng, k)
        held_k, held_inf, width = np.zeros(3), np.zeros(3), np.zeros(3)
        for r in range(args.runs):
            for j, (lo, hi) in enumerate(one_run(rng, n, k, seed=r)):
                held_k[j] += lo <= p_k <= hi
                held_inf[j] += lo <= p_inf <= hi
                width[j] += 100.0 * (hi - lo)
        pc = lambda v: [f"{x / args.runs:.1%}" for x in v]  # noqa: E731
        a, b, w = pc(held_k), pc(held_inf), [f"{x / args.runs:.1f}" for x in width]
        rows.append(
            f"| {n:,}, {k} | {p_k:.1%}, {p_inf:.1%} | **{a[0]}** ({a[1]}) ({a[2]}) | **{b[0]}** ({b[1]}) ({b[2]}) "
            f"| **{w[0]}** ({w[1]}) ({w[2]}) |"
        )
        print(rows[-1], flush=True)
    text = "\n".join(
        [
            SECTION,
            "",
            "An MDLM's scores are Monte Carlo estimates: each text's NLL bound is a mean over K random draws.",
            "The accuracy's interval (`results/uncertainty.py`) mixes the test texts' Jeffreys posterior over",
            "scorings redrawn from each text's draws (resampled, paired across the classes).  A redrawn",
            "scoring adds its noise on top of the draws' own, and noise near the decision costs accuracy, so",
            "the redrawn accuracies sit below the observed one; taken as they were, they moved the interval",
            "down instead of widening it (a smoke MDLM run: 90.0% observed, 87.3% their mean, its upper end",
            "below the texts-only one).  orch takes their spread about the observed accuracy.",
            "",
            f"Simulated (`python bench/mc_interval.py --write docs/RESULTS.md`, {args.runs} runs per row; the",
            "model is in the script's docstring): how often each interval holds the accuracy of the K-draw",
            "scorer on new texts, and of the exact scorer (infinitely many draws).  The texts' own interval",
            "already holds the first (a text's outcome under fresh draws is one Bernoulli trial).  The",
            "second only more draws reach: the K-draw scorer falls short of it, by 4 points at K = 4, more",
            "than a 1,000-text interval's half-width (`score.mdlm_draws`, or adaptive draws, close the gap).",
            "",
            *rows,
            "",
        ]
    )
    write_or_print(args.write, SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
