"""eval.prior uniform on a discriminative classifier: its scores, log p(c|x), carry the
training class frequencies, so uniform divides them out (or says it could not); before,
metrics.json said "applied: uniform" while the training prior stayed in."""

from __future__ import annotations

import json
import math

import pytest

from orchestrator.results.evaluate import evaluate
from orchestrator.results.scores import load_run
from tests.unit.evalruns import make_run


def posterior_texts(p1: float, n: int, label: str):
    """Texts the classifier gives p(1|x) = p1: nll_c = -log p(c|x)."""
    return [(f"{label}/{i}", label, {"0": (-math.log(1 - p1), 12), "1": (-math.log(p1), 12)}) for i in range(n)]


def with_counts(run_dir, counts):
    path = run_dir / "jobs" / "classifier" / "manifest.json"
    doc = json.loads(path.read_text())
    if counts is not None:
        doc["train_class_counts"] = counts
    path.write_text(json.dumps(doc))
    return run_dir


def test_uniform_divides_the_classifiers_training_frequencies_out(tmp_path):
    # trained on 900 class-0 and 100 class-1 texts: p(1|x) = 0.3 is a likelihood ratio of
    # (0.3 / 0.1) / (0.7 / 0.9) = 3.9 for class 1 once the 9:1 prior is taken out
    texts = posterior_texts(0.3, 6, "1") + posterior_texts(0.05, 6, "0")
    run = with_counts(make_run(tmp_path / "u", texts=texts, kind="classifier"), {"0": 900, "1": 100})
    m = evaluate(load_run(run)).metrics
    assert m["prior"]["applied"].startswith("uniform (the classifier's training class frequencies divided out)")
    assert m["prior"]["counts"] == {"0": 900, "1": 100}
    assert m["prior"]["log_prior"] == pytest.approx([-math.log(0.9 * 2), -math.log(0.1 * 2)])
    assert m["confusion_matrix"] == [[6, 0], [0, 6]]  # the posteriors as they are: [[6, 0], [6, 0]]
    # train: the posteriors already are the training prior's decision
    train = evaluate(load_run(run), prior="train").metrics
    assert train["confusion_matrix"] == [[6, 0], [6, 0]] and train["prior"]["applied"].startswith("none")


def test_a_run_without_the_counts_says_the_prior_stayed_in(tmp_path):
    texts = posterior_texts(0.3, 4, "1") + posterior_texts(0.05, 4, "0")
    for name, counts in [("old", None), ("bad", {"0": 900, "1": True}), ("short", {"0": 5})]:
        run = with_counts(make_run(tmp_path / name, texts=texts, kind="classifier"), counts)
        m = evaluate(load_run(run)).metrics
        assert m["prior"]["applied"].startswith("none: the classifier's scores carry its training class frequencies")
        assert m["confusion_matrix"] == [[4, 0], [4, 0]] and m["prior"]["counts"] is None
