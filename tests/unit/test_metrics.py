"""results/metrics.py: numpy metrics give the textbook (scikit-learn) numbers, ties included."""

from __future__ import annotations

import numpy as np
import pytest

from orchestrator.results import metrics as M


def _data(n: int, k: int, seed: int):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    score = np.round(rng.normal(0.0, 1.0, (n, k)) + 0.8 * np.eye(k)[y], 1)  # rounded: many ties
    return y, score


@pytest.mark.parametrize("k,seed", [(2, 0), (2, 1), (3, 2), (4, 3)])
def test_classification_metrics_match_scikit_learn(k, seed):
    skm = pytest.importorskip("sklearn.metrics")
    y, score = _data(400, k, seed)
    score[:, k - 1] -= 5.0  # the last class is (almost) never predicted: zero division for its precision
    ids = [str(i) for i in range(len(y))]
    m = M.classification_metrics(y, score, [f"c{i}" for i in range(k)], "poc", resamples=0, ids=ids)
    pred = M.predict(score, M.tie_keys(ids, k))  # the rounded scores tie: the coin decides those
    labels = list(range(k))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-15)
    assert m["confusion_matrix"] == skm.confusion_matrix(y, pred, labels=labels).tolist()
    p, r, f, s = skm.precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    for i in labels:
        got = m["per_class"][f"c{i}"]
        assert (got["precision"], got["recall"], got["f1"], got["support"]) == pytest.approx((p[i], r[i], f[i], s[i]))
    assert m["macro_f1"] == pytest.approx(skm.f1_score(y, pred, labels=labels, average="macro", zero_division=0))
    if k == 2:
        want = skm.roc_auc_score(y == 1, score[:, 1] - score[:, 0])
    else:
        log_post = M.log_softmax(score)
        want = np.mean([skm.roc_auc_score(y == c, log_post[:, c]) for c in labels])
    assert m["roc_auc"] == pytest.approx(want, abs=1e-12)


def test_auc_counts_ties_as_half_and_is_undefined_for_one_class():
    # positives 3, 2, 2; negatives 2, 1: pairs (3>2, 3>1, 2=2, 2>1, 2=2, 2>1) -> (1+1+.5+1+.5+1)/6
    truth = np.array([1, 1, 1, 0, 0], dtype=bool)
    assert M.binary_auc(truth, np.array([3.0, 2, 2, 2, 1])) == pytest.approx(5 / 6)
    assert M.binary_auc(np.ones(3, bool), np.arange(3.0)) is None
    assert M.roc_auc(np.zeros(4, int), np.zeros((4, 2))) is None


def test_roc_curve_runs_from_0_0_to_1_1_and_encloses_the_auc():
    y, score = _data(300, 2, 5)
    value = score[:, 1] - score[:, 0]
    fpr, tpr = M.roc_curve(y == 1, value)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))  # trapezoids: ties count half
    assert area == pytest.approx(M.binary_auc(y == 1, value), abs=1e-12)


def test_away_from_the_edges_the_interval_is_the_one_resampling_texts_gives():
    """On 2,000 texts at 83% the Jeffreys interval and a direct index-resampling (percentile)
    bootstrap agree up to Monte Carlo error: the two differ only near 0% and 100%."""
    correct = np.random.default_rng(1).random(2000) < 0.83
    rng = np.random.default_rng(4)
    direct = np.concatenate(
        [correct[rng.integers(0, correct.size, (1000, correct.size))].mean(axis=1) for _ in range(20)]
    )
    slow = np.percentile(direct, [2.5, 97.5])
    assert M.accuracy_ci(correct) == pytest.approx(slow, abs=0.004)  # the interval is ~0.033 wide; MC error ~0.001


def test_sigmoid_and_log_softmax_are_stable():
    assert M.sigmoid(np.array([-800.0, 0.0, 800.0])).tolist() == [0.0, 0.5, 1.0]
    special = pytest.importorskip("scipy.special")
    x = np.linspace(-30, 30, 61)
    assert np.allclose(M.sigmoid(x), special.expit(x), rtol=1e-12, atol=1e-300)
    score = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0]])
    assert np.allclose(M.log_softmax(score), special.log_softmax(score, axis=1))


def test_margins():
    score = np.array([[1.0, 4.0, 2.0], [5.0, 0.0, 1.0]])
    assert M.confidence_margin(score).tolist() == [2.0, 4.0]
    assert M.margin(score[:, :2]).tolist() == [3.0, -5.0]
    assert M.confidence_margin(score[:, :2]).tolist() == [3.0, 5.0]


def test_verdict_span_lists_the_bands_the_interval_reaches_best_first():
    assert M.verdict_span([0.84, 0.86], "poc") == ["Excellent", "Good"]
    assert M.verdict_span([0.60, 0.90], "poc") == ["Excellent", "Good", "Acceptable", "Failed"]
    assert M.verdict_span([0.86, 0.99], "poc") == ["Excellent"]
    assert M.verdict_span([0.75, 0.80], "poc") == ["Good"]  # 75% is Good: the band includes it
    assert M.verdict_span(None, "poc") == []


def test_macro_f1_leaves_out_a_class_that_neither_occurs_nor_is_predicted():
    """Three classes, the third with no test text and never predicted: scikit-learn's
    macro-F1 (labels from the data) averages the two that occur."""
    sklearn_metrics = pytest.importorskip("sklearn.metrics")
    y = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    pred = np.array([0, 0, 1, 1, 1, 0, 0, 1])
    score = np.zeros((8, 3))
    score[np.arange(8), pred] = 1.0
    got = M.classification_metrics(y, score, ["a", "b", "c"], "poc", resamples=0, ids=[str(i) for i in range(len(y))])
    assert got["macro_f1"] == pytest.approx(sklearn_metrics.f1_score(y, pred, average="macro"))
    assert got["per_class"]["c"]["support"] == 0
    # a class that is predicted but never true still counts (its F1 is 0), as in scikit-learn
    pred2 = pred.copy()
    pred2[0] = 2
    score2 = np.zeros((8, 3))
    score2[np.arange(8), pred2] = 1.0
    got2 = M.classification_metrics(y, score2, ["a", "b", "c"], "poc", resamples=0, ids=[str(i) for i in range(len(y))])
    assert got2["macro_f1"] == pytest.approx(sklearn_metrics.f1_score(y, pred2, average="macro"))


def test_mcnemar_difference_interval_holds_zero_exactly_when_the_test_does():
    """The interval beside McNemar's p-value agrees with it at every count (the Wald
    interval alone said +0.6 to +7.7 points beside p = 0.0625 for 5 texts to 0 of 120)."""
    for n in (60, 120, 500):
        for b in range(30):
            for c in range(30):
                low, high = M.mcnemar_diff_ci(b, c, n)
                assert low <= (b - c) / n <= high
                assert (low > 0 or high < 0) == (M.mcnemar_exact(b, c) < 0.05), (b, c, n)
    low, high = M.mcnemar_diff_ci(5, 0, 120)
    assert low < 0 < high and M.mcnemar_exact(5, 0) == pytest.approx(0.0625)


def test_mcnemar_difference_interval_by_hand():
    stats = pytest.importorskip("scipy.stats")
    # no text differs: the difference is within +-(the Clopper-Pearson upper end of 0 of n), not 0 wide
    edge = stats.beta.ppf(0.975, 1, 120)
    assert M.mcnemar_diff_ci(0, 0, 120) == pytest.approx([-edge, edge])
    # 12 of 15 differing texts favour A: Clopper-Pearson for pi at m = 15, scaled to (2 pi - 1) m / n
    lo_pi, hi_pi = stats.beta.ppf(0.025, 12, 4), stats.beta.ppf(0.975, 13, 3)
    exact = [(2 * lo_pi - 1) * 15 / 120, (2 * hi_pi - 1) * 15 / 120]
    d = 9 / 120
    wald = [d - 1.959964 * np.sqrt((15 / 120 - d * d) / 120), d + 1.959964 * np.sqrt((15 / 120 - d * d) / 120)]
    assert M.mcnemar_diff_ci(12, 3, 120) == pytest.approx([min(exact[0], wald[0]), max(exact[1], wald[1])], abs=1e-6)
    # numpy counts do not overflow the exact test
    assert M.mcnemar_exact(np.int64(700), np.int64(650)) == pytest.approx(stats.binomtest(650, 1350).pvalue, rel=1e-9)


def test_tied_best_scores_are_counted():
    """Identical class models score every text alike: a coin keyed on the text id decides,
    and the metrics say how many texts that decided."""
    score = np.array([[1.0, 1.0], [2.0, 1.0], [0.5, 0.5], [0.0, 3.0]])
    assert M.tied(score) == 2
    got = M.classification_metrics(np.array([0, 0, 1, 1]), score, ["a", "b"], "poc", resamples=0, ids=list("wxyz"))
    assert got["tied"] == 2 and M.tied(np.zeros((0, 2))) == 0
