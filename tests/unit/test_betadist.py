"""The Beta CDF and quantiles behind the accuracy's Jeffreys interval, against scipy (which
the evaluation itself does not import: orchestrator/results/betadist.py says why)."""

import numpy as np
import pytest

from orchestrator.results import betadist

special = pytest.importorskip("scipy.special")

# (a, b) of Jeffreys posteriors: k + 1/2, n - k + 1/2 over small and large n, edges included
SHAPES = [
    (k + 0.5, n - k + 0.5)
    for n in (1, 2, 3, 5, 10, 50, 120, 1000, 5000, 25_000, 100_000, 1_000_000)
    for k in sorted({0, 1, 2, n // 3, n // 2, int(0.83 * n), n - 2, n - 1, n})
    if 0 <= k <= n
]


@pytest.mark.parametrize("a,b", SHAPES)
def test_quantiles_match_scipy(a, b):
    for q in (1e-6, 0.005, 0.025, 0.5, 0.975, 0.995, 1 - 1e-6):
        assert betadist.ppf(q, a, b) == pytest.approx(float(special.betaincinv(a, b, q)), abs=1e-10)


@pytest.mark.parametrize("a,b", SHAPES[::3] + [(2.0, 3.0), (0.5, 0.5), (7.25, 1.5)])
def test_the_cdf_matches_scipy_and_inverts_the_quantile(a, b):
    for x in (1e-9, 1e-3, 0.3, 0.5, 0.9, 0.99, 1 - 1e-6):
        # 1e-9: lgamma(a + b) of a million texts carries ~1e-10 of rounding into the CDF
        assert betadist.cdf(x, a, b) == pytest.approx(float(special.betainc(a, b, x)), abs=1e-9)
    for q in np.linspace(0.01, 0.99, 9).tolist():
        assert betadist.cdf(betadist.ppf(q, a, b), a, b) == pytest.approx(q, abs=1e-9)
    assert betadist.cdf(0.0, a, b) == 0.0 and betadist.cdf(1.0, a, b) == 1.0


@pytest.mark.parametrize("df", [1, 1.7, 2, 3, 4.5, 10, 100, 1000, 25_000])
def test_students_t_matches_scipy(df):
    stats = pytest.importorskip("scipy.stats")
    for q in (1e-6, 0.025, 0.3, 0.5, 0.7, 0.975, 0.995):
        assert betadist.t_ppf(q, df) == pytest.approx(float(stats.t.ppf(q, df)), rel=1e-9, abs=1e-12)
    for t in (-30.0, -2.0, 0.0, 0.4, 1.96, 12.7):
        assert betadist.t_sf(t, df) == pytest.approx(float(stats.t.sf(t, df)), abs=1e-12)
