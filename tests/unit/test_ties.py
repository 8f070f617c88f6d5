"""An exact tie between class scores is broken by a coin keyed on the text id: argmax gave
every tie to class 0 (with score.mdlm_stratify t and one draw, ~1/(L+1) of the texts tie)."""

from __future__ import annotations

import numpy as np

from orchestrator.results import metrics as M
from orchestrator.results.compare import compare_runs
from orchestrator.results.evaluate import evaluate
from orchestrator.results.scores import load_run
from tests.unit.evalruns import make_run

IDS = [f"train/pos/{i}_9" for i in range(400)]


def test_tied_texts_are_split_between_the_classes_reproducibly():
    score = np.zeros((400, 2))
    pred = M.predict(score, M.tie_keys(IDS, 2))
    assert 160 < pred.sum() < 240  # about half each, not all class 0
    assert np.array_equal(pred, M.predict(score, M.tie_keys(list(IDS), 2)))  # the same coin every time
    # a text's coin is its own: reordering the texts reorders the decisions
    order = np.random.default_rng(0).permutation(400)
    assert np.array_equal(M.predict(score, M.tie_keys([IDS[i] for i in order], 2)), pred[order])
    # three classes, two of them tied at the top: the coin picks one of those two, never the third
    three = np.tile([1.0, 5.0, 5.0], (400, 1))
    got = M.predict(three, M.tie_keys(IDS, 3))
    assert set(got.tolist()) == {1, 2}
    # no tie: the best class, whatever the coin; and (n, C, k) curves are decided per k
    clear = np.array([[0.0, 1.0], [3.0, -1.0]])
    assert M.predict(clear, M.tie_keys(IDS[:2], 2)).tolist() == [1, 0]
    curves = np.stack([score[:2], clear], axis=2)
    assert M.predict(curves, M.tie_keys(IDS[:2], 2)).tolist() == [pred[:2].tolist(), [1, 0]]


def test_evaluate_and_compare_decide_ties_alike(tmp_path):
    # every text scores the same under both class models: accuracy is a fair coin's, not class 0's share
    texts = [(tid, "1" if i % 4 else "0", {"0": (50.0, 10), "1": (50.0, 10)}) for i, tid in enumerate(IDS)]
    a = make_run(tmp_path, "a", texts)
    b = make_run(tmp_path, "b", texts, kind="mdlm")
    ev = evaluate(load_run(a))
    assert ev.metrics["tied"] == 400
    assert 0.4 < ev.metrics["accuracy"] < 0.6  # class 0 for all would give 0.25
    assert np.array_equal(ev.pred, M.predict(np.zeros((400, 2)), M.tie_keys(ev.scores.ids, 2)))
    assert ev.metrics["accuracy"] == evaluate(load_run(a)).metrics["accuracy"]
    result = compare_runs([("a", a), ("b", b)])
    assert [r["accuracy"] for r in result["runs"]] == [ev.metrics["accuracy"]] * 2
    assert result["pairs"][0]["a_only"] == result["pairs"][0]["b_only"] == 0
