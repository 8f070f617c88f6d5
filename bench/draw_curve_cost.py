"""What the study's accuracy-vs-draws curve costs (results/study_plots.draw_curve).

    python bench/draw_curve_cost.py [TEXTS CLASSES DRAWS]   (default 25000 2 64)

Random draws of that shape; prints the best of three runs, the random orders averaged and
the number of points.  ORDER_WORK is meant to keep a study-sized run well under a second.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.results.study_plots import draw_curve  # noqa: E402


def main(argv) -> None:
    n, c, k = (int(a) for a in argv) if argv else (25_000, 2, 64)
    rng = np.random.default_rng(0)
    scores = SimpleNamespace(draws=rng.normal(50.0, 3.0, size=(n, c, k)), y=rng.integers(0, c, size=n))
    ev = SimpleNamespace(scores=scores, prior={"log_prior": np.log(np.full(c, 1.0 / c))})
    best, orders, points = float("inf"), 0, 0
    for _ in range(3):
        start = time.perf_counter()
        ks, _, orders = draw_curve(ev)
        best, points = min(best, time.perf_counter() - start), len(ks)
    print(f"{n} texts x {c} classes x {k} draws: {best:.2f} s ({orders} random orders, {points} points)")


if __name__ == "__main__":
    main(sys.argv[1:])
