"""Local evaluation's judgement of a run: exact metrics, the accuracy's interval, priors,
verdict bands, the draws' noise, yardsticks (synthetic run folders: evalruns.py)."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest

from orchestrator.errors import ExitCode, OrchError
from orchestrator.results.evaluate import evaluate_run
from orchestrator.results.metrics import accuracy_ci, bands_for, verdict
from tests.unit.evalruns import (
    ROOT,
    TINY,
    draw_texts,
    make_run,
    margin_texts,
    refusal,
    run_eval,
    summary,
    tiny_run,
)

# --------------------------------------------------------------------------- metrics


def test_exact_metrics_on_known_scores(tmp_path):
    # class 0: margins -5 -4 -3 -6 (right) and 2 (wrong); class 1: 5 4 3 (right), -1 -2 (wrong)
    m = run_eval(make_run(tmp_path))
    assert m["n"] == 10 and m["correct"] == 7
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["confusion_matrix"] == [[4, 1], [2, 3]]
    assert m["per_class"]["0"]["precision"] == pytest.approx(4 / 6)
    assert m["per_class"]["0"]["recall"] == pytest.approx(4 / 5)
    assert m["per_class"]["1"]["precision"] == pytest.approx(3 / 4)
    assert m["per_class"]["1"]["recall"] == pytest.approx(3 / 5)
    assert m["macro_f1"] == pytest.approx((8 / 11 + 2 / 3) / 2)
    # AUC: of the 25 (positive, negative) pairs, 23 rank the positive higher
    assert m["roc_auc"] == pytest.approx(23 / 25)
    assert m["verdict"]["label"] == "Acceptable" and m["verdict"]["bands"] == "poc"
    lo, hi = m["accuracy_ci95"]
    assert 0.0 <= lo <= 0.7 <= hi <= 1.0
    assert m["class_counts"] == {"0": 5, "1": 5}
    assert m["positive_class"] == "1"
    # equal token counts: the per-token argmax is the raw one
    assert m["per_token"]["accuracy"] == m["accuracy"]
    assert m["per_token"]["confusion_matrix"] == m["confusion_matrix"]
    assert m["gpu_seconds"] == pytest.approx(120.0)
    assert m["train_tokens"] == 2000
    assert m["scored_tokens"] == 10 * 2 * 20
    assert m["facts"]["gpu_name"] == "NVIDIA H200" and m["facts"]["driver"] == "570.1"


def test_the_accuracy_interval_is_the_jeffreys_interval():
    correct = np.array([1] * 70 + [0] * 30, dtype=bool)
    lo, hi = accuracy_ci(correct)
    # Beta(70.5, 30.5): its 2.5% and 97.5% points (scipy.special.betaincinv)
    assert lo == pytest.approx(0.605453493369, abs=1e-10) and hi == pytest.approx(0.783158571381, abs=1e-10)
    assert accuracy_ci(correct) == [lo, hi]  # exact: nothing random
    assert accuracy_ci(np.zeros(0, dtype=bool)) is None


def test_every_text_right_or_wrong_still_leaves_room_in_the_interval():
    """50 of 50 right is no proof of 100%: the lower end is the 2.5% point of Beta(50.5, 0.5),
    the upper end 1 (the percentile bootstrap said [1, 1]); mirrored for none right."""
    assert accuracy_ci(np.ones(50, dtype=bool)) == [pytest.approx(0.951241540556, abs=1e-9), 1.0]
    assert accuracy_ci(np.zeros(50, dtype=bool)) == [0.0, pytest.approx(1 - 0.951241540556, abs=1e-9)]


@pytest.mark.parametrize("p", [0.9, 0.99, 0.995])
def test_the_interval_covers_the_true_accuracy_as_often_as_it_says_near_the_edges(p):
    """Exact over every count k of n = 120 texts: P(interval of k holds p) under Binomial(120, p).
    The percentile bootstrap of the texts covered 95% at p = 0.9 but 70% at 0.99 and 45%
    at 0.995; this interval stays within a few points of 95% (docs/RESULTS.md)."""
    from math import comb

    n = 120
    covered = 0.0
    for k in range(n + 1):
        lo, hi = accuracy_ci(np.arange(n) < k)
        if lo <= p <= hi:
            covered += comb(n, k) * p**k * (1 - p) ** (n - k)
    assert 0.93 <= covered <= 0.99


def test_length_normalisation_can_change_the_prediction(tmp_path):
    # class-0 model: 100 nats over 50 tokens (2/token); class-1 model: 90 nats over 30 tokens (3/token)
    # (token counts differ between class models only in runs that record no tokenizer: see
    # test_merge_refuses_class_jobs_that_tokenized_differently)
    texts = [("a", "0", {"0": (100.0, 50), "1": (90.0, 30)}), ("b", "1", {"0": (80.0, 20), "1": (85.0, 40)})]
    m = run_eval(make_run(tmp_path, texts=texts, tokenizer=None))
    assert m["accuracy"] == 0.0  # raw: a -> 1, b -> 0
    assert m["per_token"]["accuracy"] == 1.0  # per token: a -> 0 (2 < 3), b -> 1 (2.125 < 4)
    assert m["per_token"]["verdict"] == "Excellent" and m["verdict"]["label"] == "Failed"


def test_train_prior_shifts_close_calls(tmp_path):
    # margin +1 nat for class 1 on every text; the training set is 90% class 0: log(9) = 2.197 > 1
    texts = [(f"t{i}", "0" if i < 3 else "1", {"0": (101.0, 10), "1": (100.0, 10)}) for i in range(4)]
    kw = dict(texts=texts, train_texts={"0": 900, "1": 100})
    uniform = run_eval(make_run(tmp_path / "u", **kw))
    train = run_eval(make_run(tmp_path / "t", eval_cfg={"prior": "train"}, **kw))
    assert uniform["confusion_matrix"] == [[0, 3], [0, 1]]
    assert train["confusion_matrix"] == [[3, 0], [1, 0]]
    assert train["prior"]["counts"] == {"0": 900, "1": 100}
    assert train["prior"]["log_prior"] == pytest.approx([math.log(0.9), math.log(0.1)])
    assert uniform["prior"]["log_prior"] == pytest.approx([math.log(0.5)] * 2)
    # the override on the command line wins over the config
    again = run_eval(make_run(tmp_path / "o", **kw), prior="train")
    assert again["confusion_matrix"] == train["confusion_matrix"]


def test_per_token_scores_share_the_train_prior_by_the_texts_mean_token_count(tmp_path):
    """score_norm(c) = -nll_c / tokens_c + log prior(c) / n(x), n(x) the text's mean token
    count over the classes (evaluate.py's module doc; README, "What an evaluation says"):
    the prior keeps its share of a per-token log joint instead of swamping it."""
    from orchestrator.results.evaluate import evaluate
    from orchestrator.results.scores import load_run

    classes = ("0", "1", "2")
    counts = {"0": 700, "1": 200, "2": 100}
    texts = [  # token counts differ between class models only without a recorded tokenizer
        ("a", "0", {"0": (60.0, 20), "1": (50.0, 10), "2": (45.0, 30)}),
        ("b", "1", {"0": (33.0, 11), "1": (36.0, 12), "2": (39.0, 13)}),
        ("c", "2", {"0": (80.0, 40), "1": (81.0, 40), "2": (79.0, 40)}),
        ("d", "2", {"0": (9.0, 3), "1": (8.0, 4), "2": (5.0, 5)}),
    ]
    run_dir = make_run(
        tmp_path, texts=texts, classes=classes, eval_cfg={"prior": "train"}, train_texts=counts, tokenizer=None
    )
    ev = evaluate(load_run(run_dir))
    log_prior = [math.log(counts[c] / 1000) for c in classes]
    assert ev.metrics["prior"]["log_prior"] == pytest.approx(log_prior)
    by_id = dict(zip(ev.scores.ids, range(len(texts))))
    for text_id, _, per_class in texts:
        n = sum(tokens for _, tokens in per_class.values()) / len(classes)
        raw = [-per_class[c][0] + log_prior[i] for i, c in enumerate(classes)]
        norm = [-per_class[c][0] / per_class[c][1] + log_prior[i] / n for i, c in enumerate(classes)]
        assert ev.score[by_id[text_id]] == pytest.approx(raw)
        assert ev.score_norm[by_id[text_id]] == pytest.approx(norm)


def test_train_prior_needs_train_counts(tmp_path):
    run_dir = make_run(tmp_path, eval_cfg={"prior": "train"}, train_texts={"0": 10})
    err = refusal(run_dir)
    assert "train_texts" in err.message and "'1'" in err.message and err.code == ExitCode.DATA


@pytest.mark.parametrize(
    "acc,bands,expected",
    [
        (0.8501, "poc", "Excellent"),
        (0.85, "poc", "Good"),
        (17 / 20, "poc", "Good"),
        (0.75, "poc", "Good"),
        (0.7499, "poc", "Acceptable"),
        (0.65, "poc", "Acceptable"),
        (13 / 20, "poc", "Acceptable"),
        (0.6499, "poc", "Failed"),
        (0.0, "poc", "Failed"),
        (1.0, "poc", "Excellent"),
        (0.9001, "mdlm", "Excellent"),
        (0.90, "mdlm", "Good"),
        (0.85, "mdlm", "Good"),
        (0.8499, "mdlm", "Acceptable"),
        (0.80, "mdlm", "Acceptable"),
        (0.7999, "mdlm", "Failed"),
    ],
)
def test_verdict_band_boundaries(acc, bands, expected):
    assert verdict(acc, bands) == expected


def test_bands_follow_the_model_kind(tmp_path):
    assert [bands_for(k, "auto") for k in ("ar", "mlm-pll", "classifier", "mdlm")] == ["poc", "poc", "poc", "mdlm"]
    assert bands_for("mdlm", "poc") == "poc"
    with pytest.raises(OrchError) as info:
        bands_for("ar", "strict")
    assert info.value.code == ExitCode.CONFIG
    # 8 of 10 right: Good for a proof of concept, only Acceptable for the full MDLM
    texts = margin_texts({"0": [-1, -1, -1, -1, 1], "1": [1, 1, 1, 1, -1]})
    assert run_eval(make_run(tmp_path / "a", texts=texts))["verdict"]["label"] == "Good"
    mdlm = run_eval(make_run(tmp_path / "m", texts=texts, kind="mdlm"))
    assert mdlm["verdict"]["label"] == "Acceptable" and mdlm["verdict"]["bands"] == "mdlm"
    assert run_eval(make_run(tmp_path / "p", texts=texts, kind="mdlm"), bands="poc")["verdict"]["label"] == "Good"


def test_classifier_kind_and_three_classes(tmp_path):
    classes = ("a", "b", "c")
    texts = []
    for i, (label, best) in enumerate([("a", "a"), ("a", "a"), ("b", "b"), ("b", "c"), ("c", "c"), ("c", "c")]):
        texts.append((f"t{i}", label, {c: (0.1 if c == best else 3.0, 12) for c in classes}))
    run_dir = make_run(tmp_path, texts=texts, classes=classes, kind="classifier", eval_cfg={"prior": "train"})
    m = run_eval(run_dir)
    assert m["accuracy"] == pytest.approx(5 / 6)
    assert m["confusion_matrix"] == [[2, 0, 0], [0, 1, 1], [0, 0, 2]]
    assert m["positive_class"] is None and m["roc_auc"] is not None
    assert m["prior"]["applied"].startswith("none")  # posteriors already hold the class frequencies


def test_paired_margin_and_its_se_from_shared_draws(tmp_path):
    # margins: "0/0" -> mean -3, sd 1 (sure); "0/1" -> mean -1, sd 2 (not sure); "1/0" -> mean 4, sd 0
    texts = draw_texts({"0": [[-2, -4, -3, -3], [1, -3, 1, -3]], "1": [[4, 4, 4, 4], [0.5, -0.5, 0.5, -0.5]]})
    run_dir = make_run(tmp_path, texts=texts, kind="mdlm")
    m = evaluate_run(run_dir)
    p = m["paired"]
    se = [
        np.std([-2, -4, -3, -3], ddof=1) / 2,
        np.std([1, -3, 1, -3], ddof=1) / 2,
        0.0,
        np.std([0.5, -0.5, 0.5, -0.5], ddof=1) / 2,
    ]
    assert p["draws"] == 4 and p["mean_margin_se"] == pytest.approx(np.mean(se))
    # not significant at t_3 = 3.18: "0/1" (|-1| <= 3.18 x 1.155) and "1/1" (|0| <= 3.18 x 0.289)
    assert p["not_significant_n"] == 2 and p["not_significant"] == pytest.approx(0.5)
    with open(run_dir / "predictions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["margin"]) for r in rows] == pytest.approx([-3, -1, 4, 0])
    assert [float(r["margin_se"]) for r in rows] == pytest.approx(se)
    report = (run_dir / "report.md").read_text()
    assert "## Monte Carlo noise of the decisions" in report and "50.0%" in report and "(2 of 4)" in report
    # An exact kind has no draws: no paired section, no margin columns.
    m = evaluate_run(make_run(tmp_path / "ar"))
    assert m["paired"] is None
    assert "margin_se" not in (tmp_path / "ar" / "runs" / "r1" / "predictions.csv").read_text().splitlines()[0]
    assert "Monte Carlo noise" not in (tmp_path / "ar" / "runs" / "r1" / "report.md").read_text()


def test_paired_se_of_three_classes_is_the_top_two(tmp_path):
    # classes a, b, c; draws of c always far worse: the decision is between a and b
    texts = [
        (
            "t",
            "a",
            {"a": (10.0, 5, [9.0, 11.0, 10.0]), "b": (11.0, 5, [11.0, 11.0, 11.0]), "c": (50.0, 5, [50.0, 50.0, 50.0])},
        ),
        (
            "u",
            "b",
            {
                "a": (12.0, 5, [12.0, 12.0, 12.0]),
                "b": (10.0, 5, [10.0, 10.0, 10.0]),
                "c": (30.0, 5, [30.0, 30.0, 30.0]),
            },
        ),
    ]
    m = run_eval(make_run(tmp_path, texts=texts, classes=("a", "b", "c"), kind="mdlm"))
    # text t: d_j = nll_b - nll_a = (2, 0, 1): sd 1, SE 1/sqrt(3); margin 1 <= t_2 (4.30)/sqrt(3)
    assert m["paired"]["mean_margin_se"] == pytest.approx((1 / np.sqrt(3) + 0) / 2)
    assert m["paired"]["not_significant_n"] == 1


def test_accuracy_interval_holds_the_draws_noise(tmp_path):
    # 200 class-1 texts whose per-draw margins are (3, -1, -1, 3): right as scored (mean 1),
    # but a redraw of the 4 draws keeps the margin > 0 only with P(at least two 3s) = 11/16,
    # and ties it at 0 with P(one 3) = 4/16 (the coin keyed on the text id takes half of those);
    # 200 class-0 texts with a sure margin of -5 on every draw.
    texts = draw_texts({"1": [[3, -1, -1, 3]] * 200, "0": [[-5] * 4] * 200})
    run_dir = make_run(tmp_path / "noisy", texts=texts, kind="mdlm")
    m = evaluate_run(run_dir)
    mc = m["mc_noise"]
    # Every text right as scored: the test set's own interval is narrow (Beta(400.5, 0.5)).
    assert m["accuracy"] == 1.0 and m["accuracy_ci95_texts"][1] == 1.0 and m["accuracy_ci95_texts"][0] > 0.99
    assert mc["mc_mean_accuracy"] == pytest.approx((200 * (11 + 4 / 2) / 16 + 200) / 400, abs=0.01)
    # the redrawn scorings' spread, about the observed 100%: wider than the texts' alone below,
    # and not moved down to their mean (an interval ending near 87% said the draws make it worse)
    lo, hi = m["accuracy_ci95"]
    assert m["accuracy_ci95"] == mc["accuracy_ci95"] and hi == 1.0
    assert 0.93 < lo < m["accuracy_ci95_texts"][0] - 0.02
    assert mc["share_mc"] > 0.98 and mc["share_texts"] == pytest.approx(1 - mc["share_mc"])
    assert mc == run_eval(run_dir)["mc_noise"]  # seeded
    report = (run_dir / "report.md").read_text()
    assert "95% CI (Jeffreys, texts + draws)" in report and "the estimator's draws **98%**" in report
    # Sure decisions: the draws add nothing, the interval is the test set's.
    texts = draw_texts({"1": [[3, 2, 4, 3]] * 30 + [[-1, -2, -1, -2]] * 10, "0": [[-5, -4, -5, -6]] * 40})
    m = run_eval(make_run(tmp_path / "sure", texts=texts, kind="mdlm"))
    mc = m["mc_noise"]
    assert mc["mc_only_ci95"] == [0.875, 0.875] and mc["share_mc"] == 0.0 and mc["share_texts"] == 1.0
    lo, hi = m["accuracy_ci95"]
    assert lo < 0.875 < hi and m["accuracy_ci95_texts"][0] == pytest.approx(lo, abs=0.03)
    # Exact kinds: no draws, the interval is the test set's alone.
    m = run_eval(make_run(tmp_path / "ar"))
    assert m["mc_noise"] is None and m["accuracy_ci95"] == m["accuracy_ci95_texts"]


def test_yardsticks_beside_the_model_on_the_runs_own_split(tmp_path, monkeypatch):
    run_dir = tiny_run(tmp_path)
    m = evaluate_run(run_dir)
    y = m["yardsticks"]
    assert y["available"] and y["train_texts"] == 480 and m["n"] == 120
    assert [r["name"] for r in y["rows"]] == ["nb", "tfidf_lr"]
    for r in y["rows"]:
        assert r["accuracy"] > 0.9 and r["accuracy_ci95"][0] <= r["accuracy"] <= r["accuracy_ci95"][1]
        # McNemar of the model (2/3 right) against a yardstick that is nearly always right
        assert r["yardstick_only"] > r["model_only"] and r["p_value"] < 1e-6
    # Not IMDB: the bands (IMDB's) do not judge it, the yardsticks do.
    v = m["verdict"]
    assert v["dataset"] == "tiny_sentiment" and v["basis"] == "yardsticks" and v["label"] == "Below the yardsticks"
    assert m["per_token"]["verdict"] == "Below the yardsticks"
    report = (run_dir / "report.md").read_text()
    assert "## Yardsticks" in report and "TF-IDF uni+bigram logistic regression" in report
    assert "judged against the yardsticks" in report and "McNemar p" in report
    # Cached: evaluating again trains nothing.
    from orchestrator.results import yardsticks

    assert (run_dir / "yardsticks.json").is_file()
    monkeypatch.setattr(yardsticks, "_fit_predict", lambda *a: pytest.fail("trained again"))
    assert evaluate_run(run_dir)["yardsticks"]["rows"] == y["rows"]
    # orch compare reads the cache too
    from orchestrator.results.compare import compare_runs

    assert compare_runs([("r1", run_dir)])["runs"][0]["verdict"] == "Below the yardsticks"


def test_a_cached_evaluation_imports_no_scikit_learn_scipy_or_matplotlib(tmp_path):
    # Evaluation is paid on every fetch (issue 15): once the yardsticks are cached,
    # re-evaluating must not load scikit-learn (which loads scipy), nor matplotlib without plots.
    import subprocess
    import sys

    run_dir = tiny_run(tmp_path)
    first = evaluate_run(run_dir)["yardsticks"]
    code = (
        "import sys, json\n"
        "from orchestrator.results.evaluate import evaluate_run\n"
        f"m = evaluate_run({str(run_dir)!r})\n"
        "print(json.dumps({'rows': m['yardsticks']['rows'], "
        "'loaded': sorted(k for k in ('sklearn', 'scipy', 'matplotlib') if k in sys.modules)}))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    doc = json.loads(out.stdout)
    assert doc["loaded"] == [] and doc["rows"] == json.loads(json.dumps(first["rows"]))


def test_a_band_the_interval_crosses_is_called_unsettled(tmp_path):
    """86 of 100 right is Excellent on the poc bands (> 85%), but its 95% interval (78-91%)
    reaches Good: the report and the terminal say so.  900 of 1,000 settles Excellent."""
    texts = margin_texts({"1": [1.0] * 43 + [-1.0] * 7, "0": [-1.0] * 43 + [1.0] * 7})
    run_dir = make_run(tmp_path / "near", texts=texts)
    m = evaluate_run(run_dir)
    assert m["accuracy"] == 0.86 and m["verdict"]["label"] == "Excellent"
    assert m["verdict"]["span"] == ["Excellent", "Good"]
    said = "The 95% interval reaches Excellent and Good: this test set does not settle the band."
    assert said in (run_dir / "report.md").read_text()
    assert said in summary(m)
    texts = margin_texts({"1": [1.0] * 450 + [-1.0] * 50, "0": [-1.0] * 450 + [1.0] * 50})
    run_dir = make_run(tmp_path / "far", texts=texts)
    m = evaluate_run(run_dir)
    assert m["verdict"]["span"] == ["Excellent"] and "does not settle" not in (run_dir / "report.md").read_text()


def test_bands_apply_to_their_own_data_set_or_where_told(tmp_path):
    # a perfect model on the tiny data: on par with (or above) the yardsticks
    m = evaluate_run(tiny_run(tmp_path / "a", wrong_every=10**6))
    assert m["verdict"]["basis"] == "yardsticks" and m["verdict"]["label"] in (
        "No different from the best yardstick",
        "Beats the yardsticks",
    )
    # eval.bands_dataset "*" (or the data set's own name) applies the bands anyway
    m = evaluate_run(tiny_run(tmp_path / "b", eval_cfg={"bands_dataset": "*"}))
    assert m["verdict"]["basis"] == "bands" and m["verdict"]["label"] == "Acceptable"  # 80/120 = 66.7%
    # a --bands override on the command line is explicit: applied
    m = evaluate_run(tiny_run(tmp_path / "c"), bands="poc")
    assert m["verdict"]["basis"] == "bands"
    # a run launched before the data set was named (no data.name, no data_files): as before, the bands
    m = evaluate_run(make_run(tmp_path / "d", data_path="/w/data/0123456789abcdef-reviews.jsonl", data_name=None))
    assert m["verdict"]["basis"] == "bands" and m["verdict"]["dataset"] is None
    # eval.yardsticks: false
    off = tiny_run(tmp_path / "e", eval_cfg={"yardsticks": False})
    m = evaluate_run(off)
    assert m["yardsticks"]["reason"] == "turned off (eval.yardsticks: false)" and m["verdict"]["label"] == "Not judged"
    # and it says why, not "judged against the yardsticks"
    assert "yardsticks were not computed (turned off (eval.yardsticks: false))" in m["verdict"]["thresholds"]
    report = (off / "report.md").read_text()
    assert "judged against the yardsticks" not in report and "**Not judged** (the" in report


def test_yardsticks_say_why_they_are_missing(tmp_path):
    # the run's data file is not here (the fixture's /data/imdb/train.jsonl): bands apply (IMDB), no rows
    run_dir = make_run(tmp_path / "a")
    m = evaluate_run(run_dir)
    assert not m["yardsticks"]["available"] and "no local copy" in m["yardsticks"]["reason"]
    assert "Not computed: data.path: no local copy" in (run_dir / "report.md").read_text()
    # not IMDB and no yardsticks: not judged
    m = evaluate_run(make_run(tmp_path / "b", data_path="/data/reviews.jsonl"))
    assert m["verdict"]["label"] == "Not judged" and m["verdict"]["dataset"] == "reviews"
    # a local file whose test split is not the scored texts
    reason = evaluate_run(tiny_run(tmp_path / "c", drop=1))["yardsticks"]["reason"]
    assert reason == "the local data's test split (120 texts) is not the 119 texts the jobs scored"
    run_dir = make_run(
        tmp_path / "d",
        data_path=f"/w/data/x-{TINY.name}",
        local_extra={"data_files": {"path": {"local": str(TINY), "host": "x"}}},
    )
    assert "no local copy" in evaluate_run(run_dir)["yardsticks"]["reason"]  # other bytes than the host's


def test_yardsticks_tokenize_once_and_predict_as_the_textbook_pipelines():
    """The TF-IDF rows come from the naive Bayes counts (one tokenization); the
    predictions are those of TfidfVectorizer + LogisticRegression and CountVectorizer +
    MultinomialNB fitted the usual way (the oracle)."""
    from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import MultinomialNB

    from orchestrator.results.yardsticks import _fit_predict

    rows = [json.loads(line) for line in (ROOT / "configs" / "data" / "tiny_sentiment.jsonl").read_text().splitlines()]
    texts, y = [r["text"] for r in rows], np.array([int(r["label"]) for r in rows])
    order = np.random.default_rng(0).permutation(len(texts))
    train = [texts[i] for i in order[:300]]
    test = [texts[i] for i in order[300:]]
    train_y = y[order[:300]]
    got = _fit_predict(train, train_y, test)
    counts = CountVectorizer(ngram_range=(1, 2), min_df=2)
    nb = MultinomialNB().fit(counts.fit_transform(train), train_y).predict(counts.transform(test))
    tfidf = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    lr = LogisticRegression(C=10, max_iter=2000).fit(tfidf.fit_transform(train), train_y)
    assert got["nb"].tolist() == nb.tolist()
    assert got["tfidf_lr"].tolist() == lr.predict(tfidf.transform(test)).tolist()


@pytest.mark.parametrize(
    "tests, label",
    [
        ([(0.90, 0.01, +1), (0.85, 0.001, +1)], "Beats the yardsticks"),
        ([(0.90, 0.01, -1), (0.85, 0.03, -1)], "Below the yardsticks"),
        ([(0.90, 0.01, -1), (0.70, 0.01, +1)], "Between the yardsticks"),
        # significantly below the best, no different from the weaker one: not "between" them
        ([(0.90, 0.001, -1), (0.82, 0.40, -1)], "Below a yardstick"),
        # no different from the best, but below the other: the test against it is not ignored
        ([(0.90, 0.28, -1), (0.88, 1e-6, -1)], "Below a yardstick"),
        ([(0.90, 0.28, -1), (0.70, 1e-6, +1)], "No different from the best yardstick"),
    ],
)
def test_yardstick_verdict_claims_only_what_a_test_showed(tests, label):
    from orchestrator.results.yardsticks import verdict

    rows = [{"accuracy": acc, "p_value": p, "accuracy_diff": sign * 0.02} for acc, p, sign in tests]
    assert verdict(rows) == label


def test_not_significant_uses_student_t_at_the_draws_degrees_of_freedom(tmp_path):
    from orchestrator.results.metrics import decision_critical

    # t quantiles (two-sided 95%) at 3 and 7 d.f., and none for a text without spread
    assert decision_critical(np.array([4, 8, 4])) == pytest.approx([3.182446, 2.364624, 3.182446], abs=1e-6)
    assert np.isinf(decision_critical(np.array([1]))[0])
    # "0/0": margin -2, SE 0.924 from 4 draws: 1.96 SE = 1.81 would call it significant,
    # t_3 SE = 2.94 does not (4 draws cannot settle it).
    texts = draw_texts({"0": [[-0.4, -3.6, -0.4, -3.6]], "1": [[4, 4, 4, 4]]})
    run_dir = make_run(tmp_path, texts=texts, kind="mdlm")
    p = evaluate_run(run_dir)["paired"]
    assert p["not_significant_n"] == 1
    assert p["critical"] == {"df_min": 3, "df_max": 3, "min": pytest.approx(3.182446), "max": pytest.approx(3.182446)}
    report = (run_dir / "report.md").read_text()
    assert "(|margin| ≤ 3.18 SE, Student's t with 3 degrees of freedom)" in report


def test_a_classifier_is_judged_on_the_lm_bands_for_comparison_only(tmp_path):
    run_dir = make_run(tmp_path, kind="classifier")
    v = evaluate_run(run_dir)["verdict"]
    assert v["basis"] == "bands" and v["bands"] == "poc" and v["applied_to"] == "a discriminative classifier"
    report = (run_dir / "report.md").read_text()
    assert "bands (" in report and "), applied to a discriminative classifier for comparison" in report
    assert run_eval(make_run(tmp_path / "lm"))["verdict"]["applied_to"] is None
