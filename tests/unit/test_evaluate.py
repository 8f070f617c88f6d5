"""Local evaluation: synthetic run folders (written per docs/CONTRACT.md) with known scores."""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import pytest
import yaml

from orchestrator.errors import ExitCode, OrchError
from orchestrator.results.evaluate import evaluate, evaluate_run
from orchestrator.results.metrics import accuracy_ci, bands_for, verdict
from orchestrator.results.report import write_metrics
from orchestrator.results.scores import load_run
from orchestrator.results.scoretable import merge_scores
from remote.data import dataset_name

ROOT = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------- builder
# A text: (id, true label, {class: (nll, tokens) or (nll, tokens, per-draw estimates)}).
Text = Tuple[str, str, Dict[str, tuple]]


def margin_texts(margins: Dict[str, Sequence[float]], base: float = 100.0, tokens: int = 20) -> List[Text]:
    """Binary texts whose raw margin score("1") - score("0") is the given value."""
    out = []
    for label, values in margins.items():
        for i, d in enumerate(values):
            out.append((f"{label}/{i}", label, {"0": (base + d, tokens), "1": (base, tokens)}))
    return out


def make_run(
    root: Path,
    run_id: str = "r1",
    texts: Optional[Iterable[Text]] = None,
    *,
    classes: Sequence[str] = ("0", "1"),
    kind: str = "ar",
    init: str = "scratch",
    eval_cfg: Optional[dict] = None,
    train_texts: Optional[Dict[str, int]] = None,
    job_seconds: float = 60.0,
    rows_hook=None,
    tokenizer: Optional[str] = "ab" * 32,
    data_path: str = "/data/imdb/train.jsonl",
    local_extra: Optional[dict] = None,
    data_name: Optional[str] = "",
) -> Path:
    """Write runs/<run_id>/ with run.yaml, local.json and one folder per job.

    ``rows_hook(job, rows) -> rows`` may corrupt a job's score rows before they are written.
    ``tokenizer``: the tokenizer_sha256 every class job's manifest records (None: none, as
    in runs made before it was recorded).  ``data_path``: run.yaml's data.path (the
    data set's name comes from it, as `orch run` names it: imdb, whose bands apply);
    ``data_name`` None leaves data.name out (a run launched before it was recorded).
    """
    texts = list(texts if texts is not None else margin_texts({"0": [-5, -4, -3, -6, 2], "1": [5, 4, 3, -1, -2]}))
    run_dir = root / "runs" / run_id
    classifier = kind == "classifier"
    if classifier:
        jobs = [{"name": "classifier", "role": "classifier", "label": None, "requires": [], "after": [], "gpu": "0"}]
    else:
        jobs = [
            {"name": f"c{c}", "role": "class", "label": c, "requires": [], "after": [], "gpu": "0"} for c in classes
        ]
    doc = {
        "run_id": run_id,
        "code_hash": "abc123",
        "created": "2026-11-26T10:15:00Z",
        "host": "nigel",
        "experiment": {
            "name": "exp",
            "data": {
                "path": data_path,
                "classes": list(classes),
                **({} if data_name is None else {"name": data_name or dataset_name(data_path)}),
            },
            "model": {"kind": kind, "init": init},
            "eval": eval_cfg or {},
        },
        "jobs": jobs,
    }
    run_dir.mkdir(parents=True)
    (run_dir / "run.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (run_dir / "local.json").write_text(
        json.dumps(
            {
                "run_id": run_id,
                "host": "nigel",
                "experiment": "exp",
                "launched_at": 1764150000.0,
                "host_facts": {"gpus": ["NVIDIA H200"], "driver": "570.1", "cuda": "12.8", "torch": "2.11.0"},
                **(local_extra or {}),
            }
        )
    )
    train_texts = train_texts or {c: 100 for c in classes}
    for job in jobs:
        rows = []
        for tid, label, scores in texts:
            for c in classes if classifier else [job["label"]]:
                if c in scores:
                    nll, tokens = scores[c][:2]
                    rows.append({"id": tid, "label": label, "class": c, "nll": nll, "tokens": tokens, "se": None})
                    if len(scores[c]) > 2:
                        rows[-1]["draws"] = list(scores[c][2])
        if rows_hook is not None:
            rows = rows_hook(job["name"], rows)
        job_dir = run_dir / "jobs" / job["name"]
        job_dir.mkdir(parents=True)
        data = "".join(json.dumps(r) + "\n" for r in rows).encode()
        (job_dir / "scores.jsonl").write_bytes(data)
        (job_dir / "status.json").write_text(
            json.dumps(
                {
                    "state": "done",
                    "pid": 1,
                    "exit_code": 0,
                    "created": 1764150000.0,
                    "started": 1764150001.0,
                    "ended": 1764150001.0 + job_seconds,
                    "gpu": "0",
                    "reason": "",
                }
            )
        )
        manifest = {
            "job": job["name"],
            "role": job["role"],
            "files": {"scores.jsonl": {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}},
            "n_test": len(texts),
            "classes": list(classes),
            "timings": {"train_s": 12.5, "score_s": 4.5},
            "device": "cuda",
            "gpu_name": "NVIDIA H200",
            "torch": "2.11.0",
            "transformers": "5.17.0",
            "train_tokens": 1000,
        }
        if not classifier:
            manifest["train_texts"] = train_texts.get(job["label"])
            if tokenizer is not None:
                manifest["tokenizer_sha256"] = tokenizer
        (job_dir / "manifest.json").write_text(json.dumps(manifest))
    return run_dir


def run_eval(run_dir: Path, **kw) -> dict:
    return evaluate(load_run(run_dir), **kw).metrics


def refusal(run_dir: Path) -> OrchError:
    with pytest.raises(OrchError) as info:
        evaluate_run(run_dir)
    return info.value


def summary(metrics: dict, run_dir: Optional[Path] = None, width: int = 200) -> str:
    """What `orch eval` prints for METRICS."""
    from rich.console import Console

    from orchestrator.commands.results_view import print_summary

    console = Console(record=True, width=width)
    print_summary(console, metrics, run_dir)
    return console.export_text()


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


# --------------------------------------------------------------------------- refusals


def test_refuses_a_text_missing_from_one_class_model(tmp_path):
    run_dir = make_run(
        tmp_path, rows_hook=lambda job, rows: [r for r in rows if not (job == "c1" and r["id"] == "0/3")]
    )
    err = refusal(run_dir)
    assert err.code == ExitCode.DATA
    assert "'c1'" in err.message and "0/3" in err.message and "1 of 10" in err.message


def test_refuses_duplicates(tmp_path):
    run_dir = make_run(tmp_path, rows_hook=lambda job, rows: rows + [rows[2]] if job == "c0" else rows)
    err = refusal(run_dir)
    assert "'c0'" in err.message and "more than once" in err.message and "0/2" in err.message


def test_refuses_label_disagreement(tmp_path):
    def flip(job, rows):
        if job == "c1":
            rows = [dict(r, label="1") if r["id"] == "0/4" else r for r in rows]
        return rows

    err = refusal(make_run(tmp_path, rows_hook=flip))
    assert "'c1'" in err.message and "0/4" in err.message and "different label" in err.message


def test_refuses_a_row_for_another_class(tmp_path):
    err = refusal(
        make_run(
            tmp_path, rows_hook=lambda job, rows: [dict(r, **{"class": "1"}) for r in rows] if job == "c0" else rows
        )
    )
    assert "this job's class is '0'" in err.message


@pytest.mark.parametrize(
    "field,value,words",
    [
        ("nll", float("nan"), "nll must be a finite number"),
        # The contract's bound on every number (1e15): 1.7e308 is finite, but its sums are not.
        ("nll", 1.7e308, "nll must be a finite number at most 1e+15 in size, got 1.7e+308"),
        ("nll", -1e16, "nll must be a finite number at most 1e+15 in size"),
        ("se", float("inf"), "se must be a finite number from 0 to 1e+15, or null, got inf"),
        ("se", float("nan"), "se must be a finite number from 0 to 1e+15, or null"),
        ("se", -0.5, "se must be a finite number from 0 to 1e+15, or null, got -0.5"),
        ("se", 1e16, "se must be a finite number from 0 to 1e+15, or null"),
        ("tokens", 0, "tokens must be a positive integer"),
        ("label", "7", "label '7'"),
        ("id", None, "needs string fields"),
    ],
)
def test_refuses_malformed_rows(tmp_path, field, value, words):
    hook = lambda job, rows: [dict(rows[0], **{field: value}), *rows[1:]] if job == "c0" else rows  # noqa: E731
    err = refusal(make_run(tmp_path, rows_hook=hook))
    assert words in err.message and "'c0'" in err.message and "line 1" in err.message
    assert err.code == ExitCode.DATA


def test_refuses_incomplete_and_corrupt_jobs(tmp_path):
    run_dir = make_run(tmp_path / "a")
    (run_dir / "jobs" / "c1" / "manifest.json").unlink()
    err = refusal(run_dir)
    assert err.code == ExitCode.RUN_STATE and "'c1'" in err.message and "fetch-results" in err.hint

    run_dir = make_run(tmp_path / "b")
    path = run_dir / "jobs" / "c0" / "scores.jsonl"
    path.write_bytes(path.read_bytes().replace(b"105.0", b"106.0"))
    err = refusal(run_dir)
    assert "sha256" in err.message and "'c0'" in err.message

    run_dir = make_run(tmp_path / "c")
    _rewrite(run_dir, "c0", b"{not json\n")
    err = refusal(run_dir)
    assert "scores.jsonl:1" in err.message and "not valid JSON" in err.message

    # Valid JSON that int() refuses (over 4300 digits) is a bad row too, not a traceback.
    run_dir = make_run(tmp_path / "c2")
    _rewrite(run_dir, "c0", b'{"id": "a", "nll": ' + b"9" * 5000 + b"}\n")
    err = refusal(run_dir)
    assert "scores.jsonl:1: not a score row" in err.message and err.code == ExitCode.DATA

    # A manifest that leaves scores.jsonl out, or has no file list at all, vouches for nothing.
    run_dir = make_run(tmp_path / "d")
    _edit_manifest(run_dir, "c0", lambda m: m.update(files={}))
    err = refusal(run_dir)
    assert "'c0'" in err.message and "does not list scores.jsonl" in err.message
    run_dir = make_run(tmp_path / "e")
    _edit_manifest(run_dir, "c0", lambda m: m.pop("files"))
    assert "bad manifest.json: no 'files'" in refusal(run_dir).message


def _edit_manifest(run_dir: Path, job: str, change) -> None:
    path = run_dir / "jobs" / job / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def _rewrite(run_dir: Path, job: str, data: bytes, **manifest) -> None:
    """What a host can do: new scores and a manifest that vouches for them."""
    (run_dir / "jobs" / job / "scores.jsonl").write_bytes(data)
    _edit_manifest(
        run_dir,
        job,
        lambda m: m.update(
            files={"scores.jsonl": {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}}, **manifest
        ),
    )


def _lines(run_dir: Path, job: str) -> List[bytes]:
    return (run_dir / "jobs" / job / "scores.jsonl").read_bytes().splitlines(keepends=True)


def test_merge_refuses_class_jobs_that_tokenized_differently(tmp_path):
    # A tampered (or nondeterministic) tokenizer fingerprint: refused, naming both jobs.
    run_dir = make_run(tmp_path / "a")
    _edit_manifest(run_dir, "c1", lambda m: m.update(tokenizer_sha256="cd" * 32))
    err = refusal(run_dir)
    assert err.code == ExitCode.DATA and "same tokenizer" in err.message
    assert "'c0'" in err.message and "'c1'" in err.message and "cdcdcdcd" in err.message
    assert not (run_dir / "metrics.json").exists()
    # One job that records none while the other does is a disagreement too.
    run_dir = make_run(tmp_path / "b")
    _edit_manifest(run_dir, "c0", lambda m: m.pop("tokenizer_sha256"))
    assert "none recorded in job(s) 'c0'" in refusal(run_dir).message
    # Same fingerprint, other token counts for a text: refused with the ids and both counts.
    run_dir = make_run(
        tmp_path / "c",
        rows_hook=lambda job, rows: [
            {**r, "tokens": 21} if job == "c1" and r["id"] in ("0/1", "1/2") else r for r in rows
        ],
    )
    err = refusal(run_dir)
    assert "'c1'" in err.message and "2 text(s)" in err.message and "'c0'" in err.message
    assert "0/1 (21 tokens here, 20 in job 'c0')" in err.message
    # A fingerprint that is not text is a bad manifest (hostdocs checks its type).
    run_dir = make_run(tmp_path / "f")
    _edit_manifest(run_dir, "c0", lambda m: m.update(tokenizer_sha256=5))
    assert "bad manifest.json" in refusal(run_dir).message
    # The shared fingerprint is in metrics.json; a run that records none is not checked.
    assert run_eval(make_run(tmp_path / "d"))["tokenizer_sha256"] == "ab" * 32
    assert run_eval(make_run(tmp_path / "e", tokenizer=None))["tokenizer_sha256"] is None


def draw_texts(diffs: Dict[str, Sequence[Sequence[float]]], base: float = 100.0) -> List[Text]:
    """Binary texts with per-draw values: class 1's draws are all ``base``, class 0's
    ``base + d_j``, so the per-draw margin is d_j (score 1 - score 0)."""
    out = []
    for label, rows in diffs.items():
        for i, d in enumerate(rows):
            zero = [base + x for x in d]
            out.append(
                (f"{label}/{i}", label, {"0": (sum(zero) / len(zero), 20, zero), "1": (base, 20, [base] * len(d))})
            )
    return out


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


def test_merge_refuses_inconsistent_draws(tmp_path):
    texts = draw_texts({"0": [[-2, -4], [1, -3]], "1": [[4, 4], [1, 0]]})

    def hook(change):
        return lambda job, rows: [change(r) if job == "c1" and r["id"] == "1/0" else r for r in rows]

    cases = [
        (lambda r: {**r, "draws": [r["nll"], r["nll"] + 1]}, "is not the mean of its draws"),
        (lambda r: {**r, "draws": [r["nll"]] * 3}, "has 3 draws, the job's first row 2"),
        (lambda r: {k: v for k, v in r.items() if k != "draws"}, "has no draws, while other rows"),
        (lambda r: {**r, "draws": ["100", "100"]}, "draws must be a non-empty list of finite numbers"),
        (lambda r: {**r, "draws": []}, "draws must be a non-empty list"),
    ]
    for i, (change, words) in enumerate(cases):
        err = refusal(make_run(tmp_path / str(i), texts=texts, kind="mdlm", rows_hook=hook(change)))
        assert err.code == ExitCode.DATA and words in err.message and "'c1'" in err.message, (words, err.message)

    # One job with draws and one without cannot be paired.
    def drop(job, rows):
        return [{k: v for k, v in r.items() if k != "draws"} for r in rows] if job == "c0" else rows

    err = refusal(make_run(tmp_path / "mix", texts=texts, kind="mdlm", rows_hook=drop))
    assert "different numbers of draws" in err.message and "'c0': none" in err.message


TINY = Path(__file__).resolve().parents[2] / "configs" / "data" / "tiny_sentiment.jsonl"


def tiny_run(root: Path, wrong_every: int = 3, drop: int = 0, **kw) -> Path:
    """A run over the bundled tiny data as `orch run` records it (the staged host path in
    run.yaml, the local file in local.json), scored on the split the jobs would make: the
    model gets every WRONG_EVERY-th test text wrong."""
    from remote.data import load_splits
    from remote.files import sha256_file
    from remote.spec import DataSpec

    test = load_splits(DataSpec(path=str(TINY)), log=lambda _: None).test
    texts = [
        (e.id, e.label, {e.label: (10.0, 12), str(1 - int(e.label)): (11.0 if i % wrong_every else 9.0, 12)})
        for i, e in enumerate(test)
    ][drop:]
    host = f"/w/data/{sha256_file(str(TINY))[:16]}-{TINY.name}"
    return make_run(
        root,
        texts=texts,
        data_path=host,
        local_extra={"data_files": {"path": {"local": str(TINY), "host": host}}},
        **kw,
    )


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


def test_completeness_is_the_runs_own_expectation_not_the_manifests(tmp_path):
    """docs/CONTRACT.md "Completeness": a cut-short score file with a manifest to match fails."""
    # One job cut short, its manifest rewritten to match: the other job names the missing text.
    run_dir = make_run(tmp_path / "a")
    _rewrite(run_dir, "c0", b"".join(_lines(run_dir, "c0")[:-1]))
    assert "no class-'0' score for 1 of 10" in refusal(run_dir).message
    # ... and its n_test too: the manifests disagree.
    run_dir = make_run(tmp_path / "b")
    _rewrite(run_dir, "c0", b"".join(_lines(run_dir, "c0")[:-1]), n_test=9)
    err = refusal(run_dir)
    assert "disagree on n_test" in err.message and "9 in 'c0'" in err.message
    # Every job cut the same way but n_test left alone: fewer texts than the run expects.
    run_dir = make_run(tmp_path / "c")
    for job in ("c0", "c1"):
        _rewrite(run_dir, job, b"".join(_lines(run_dir, job)[:-1]))
    assert "hold 9 test texts, but the manifests' n_test is 10" in refusal(run_dir).message
    # No n_test at all.
    run_dir = make_run(tmp_path / "d")
    _edit_manifest(run_dir, "c1", lambda m: m.pop("n_test"))
    assert "'c1': manifest.json gives no n_test" in refusal(run_dir).message
    # Classes other than run.yaml's.
    run_dir = make_run(tmp_path / "e")
    for job in ("c0", "c1"):
        _edit_manifest(run_dir, job, lambda m: m.update(classes=["0", "1", "2"]))
    assert "but run.yaml says ['0', '1']" in refusal(run_dir).message


def test_a_classifier_job_must_score_every_text_for_every_class(tmp_path):
    run_dir = make_run(tmp_path / "a", kind="classifier")
    assert run_eval(run_dir)["n"] == 10
    run_dir = make_run(tmp_path / "b", kind="classifier")
    _rewrite(run_dir, "classifier", b"".join(_lines(run_dir, "classifier")[:-1]))
    assert "no class-'1' score for 1 of 10" in refusal(run_dir).message


def test_partial_check_of_finished_jobs(tmp_path):
    """`fetch-results --partial`: each finished job on its own, and the same texts in each."""
    from orchestrator.results.scores import check_partial

    run_dir = make_run(tmp_path / "a")
    check_partial(load_run(run_dir), ["c0", "c1"])
    check_partial(load_run(run_dir), ["c0"])
    _rewrite(run_dir, "c0", b"".join(_lines(run_dir, "c0")[:-1]))
    with pytest.raises(OrchError, match="'c0': scores.jsonl has 9 rows, but n_test 10 needs 10"):
        check_partial(load_run(run_dir), ["c0"])
    run_dir = make_run(tmp_path / "b")
    row = json.loads(_lines(run_dir, "c1")[-1])
    row["id"] = "other"
    _rewrite(run_dir, "c1", b"".join(_lines(run_dir, "c1")[:-1]) + (json.dumps(row) + "\n").encode())
    with pytest.raises(OrchError, match="1 only in 'c1': 'other'"):
        check_partial(load_run(run_dir), ["c0", "c1"])
    run_dir = make_run(tmp_path / "c", kind="classifier")
    _rewrite(run_dir, "classifier", b"".join(_lines(run_dir, "classifier")[:-1]))
    with pytest.raises(OrchError, match="has 19 rows, but n_test 10 needs 20"):
        check_partial(load_run(run_dir), ["classifier"])


def test_scores_are_streamed_line_by_line(tmp_path):
    """A score file is read a line at a time (and hashed as it is read): a 32 MB line costs
    no 32 MB of memory, and is refused as not a score row."""
    import tracemalloc

    run_dir = make_run(tmp_path)
    _rewrite(run_dir, "c0", b'{"id": "' + b"x" * (32 << 20) + b'"}\n')
    tracemalloc.start()
    try:
        err = refusal(run_dir)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "longer than 1024 KB, not a score row" in err.message and "scores.jsonl:1" in err.message
    assert peak < 8 << 20, peak


def test_merge_names_examples_and_counts():
    rows0 = [{"id": f"t{i}", "label": "0", "class": "0", "nll": 1.0, "tokens": 1} for i in range(9)]
    rows1 = [dict(r, **{"class": "1"}) for r in rows0[:2]]
    with pytest.raises(OrchError) as info:
        merge_scores([("neg", "0", rows0), ("pos", "1", rows1)], ["0", "1"])
    msg = info.value.message
    assert "'pos' has no class-'1' score for 7 of 9" in msg and "t2 (scored in job 'neg')" in msg
    assert "(and 2 more)" in msg
    with pytest.raises(OrchError, match="scored by two jobs"):
        merge_scores([("a", "0", rows0), ("b", "0", rows0)], ["0", "1"])
    with pytest.raises(OrchError, match="no job scores class"):
        merge_scores([("a", "0", rows0)], ["0", "1"])


def test_a_row_with_more_draws_than_the_run_allows_is_refused_before_any_padding():
    """Adaptive draws are NaN-padded to the longest row: one row a host made 400,000 draws
    long would have asked for rows x 400,000 floats."""
    rows = []
    for i in range(3):
        for c in ("0", "1"):
            draws = [1.0] * (400_000 if (i, c) == (2, "1") else 2)
            rows.append({"id": f"t{i}", "label": "0", "class": c, "nll": 1.0, "tokens": 1, "draws": draws})
    with pytest.raises(OrchError, match="has 400000 draws, more than the run's 64 a text can get") as info:
        merge_scores([("score", None, rows)], ["0", "1"], max_draws=64)
    assert "text 't2'" in info.value.message
    assert merge_scores([("score", None, rows[:4])], ["0", "1"], max_draws=64).n == 2


def test_merge_takes_integer_ids_and_labels_as_text():
    rows0 = [{"id": i, "label": i % 2, "class": 0, "nll": 1.0 + i, "tokens": 3} for i in range(4)]
    rows1 = [dict(r, **{"class": "1", "nll": 2.0, "se": 0.5}) for r in reversed(rows0)]
    s = merge_scores([("neg", "0", rows0), ("pos", "1", rows1)], ["0", "1"])
    assert s.ids == ["0", "1", "2", "3"] and s.labels == ["0", "1", "0", "1"]
    assert s.nll.tolist() == [[1.0, 2.0], [2.0, 2.0], [3.0, 2.0], [4.0, 2.0]]
    assert np.isnan(s.se[:, 0]).all() and (s.se[:, 1] == 0.5).all()


def test_merge_names_the_first_job_with_a_problem():
    """Jobs are judged in order, as a reader would: a duplicate in the first job is named
    before a malformed row in the second; inside one job a malformed row comes first."""
    good = [{"id": f"t{i}", "label": "0", "class": "0", "nll": 1.0, "tokens": 1} for i in range(3)]
    bad = [dict(r, **{"class": "1"}) for r in good]
    bad[2] = dict(bad[2], tokens=True)
    with pytest.raises(OrchError, match="job 'neg': 1 text\\(s\\) scored more than once"):
        merge_scores([("neg", "0", good + good[:1]), ("pos", "1", bad)], ["0", "1"])
    with pytest.raises(OrchError, match="job 'pos', scores.jsonl line \\?: text 't2': tokens must be"):
        merge_scores([("neg", "0", good), ("pos", "1", bad + bad[:1])], ["0", "1"])
    odd = [dict(r, label="1") if r["id"] == "t1" else r for r in bad[:2]] + [dict(good[2], **{"class": "1"})]
    with pytest.raises(OrchError) as info:
        merge_scores([("neg", "0", good), ("pos", "1", odd)], ["0", "1"])
    assert info.value.message == (
        "job 'pos': 1 text(s) carry a different label than in another job: \"t1 ('1' here, '0' in job 'neg')\""
    )


@pytest.mark.parametrize(
    "field,value,words",
    [
        ("tokens", 10**30, "tokens must be a positive integer"),
        ("nll", 10**400, "nll must be a finite number"),
        ("se", 10**400, "se must be a finite number from 0 to 1e\\+15, or null"),
        ("nll", "1.5", "nll must be a finite number"),
    ],
)
def test_numbers_beyond_any_float_are_refused_not_a_traceback(field, value, words):
    rows = [{"id": f"t{i}", "label": "0", "class": "0", "nll": 1.0, "tokens": 1} for i in range(3)]
    rows[1] = dict(rows[1], **{field: value}, _where=2)
    with pytest.raises(OrchError, match=f"job 'neg', scores.jsonl line 2: text 't1': {words}"):
        merge_scores([("neg", "0", rows), ("pos", "1", [dict(r, **{"class": "1"}) for r in rows])], ["0", "1"])


# --------------------------------------------------------------------------- outputs


def _not_json(word):
    raise AssertionError(f"metrics.json holds {word}, which is not JSON")


def test_metrics_json_is_never_written_with_nan_or_infinity(tmp_path):
    """NaN and Infinity are not JSON (jq and strict parsers refuse the file): a metric that
    came out non-finite fails the write rather than making such a file."""
    with pytest.raises(ValueError):
        write_metrics(tmp_path, {"accuracy": float("inf")})
    assert not (tmp_path / "metrics.json").exists()


def test_evaluate_run_writes_every_output(tmp_path):
    run_dir = make_run(tmp_path)
    metrics = evaluate_run(run_dir, plots=True)
    on_disk = json.loads((run_dir / "metrics.json").read_text(), parse_constant=_not_json)
    assert on_disk["accuracy"] == metrics["accuracy"] == pytest.approx(0.7)
    for key in (
        "accuracy_ci95",
        "macro_f1",
        "per_class",
        "confusion_matrix",
        "roc_auc",
        "per_token",
        "verdict",
        "by_length",
        "calibration",
        "timings",
        "test_ids_sha256",
        "files",
    ):
        assert key in on_disk
    with open(run_dir / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0])[:5] == ["id", "label", "nll_0", "nll_1", "prediction"]
    assert len(rows) == 10
    first = {r["id"]: r for r in rows}["0/4"]  # margin +2 on a class-0 text
    assert (first["label"], float(first["nll_0"]), float(first["nll_1"]), first["prediction"]) == (
        "0",
        102.0,
        100.0,
        "1",
    )
    plots = sorted(p.name for p in (run_dir / "plots").glob("*.png"))
    assert plots == ["accuracy_by_length.png", "calibration.png", "margin_hist.png", "roc.png"]
    assert all((run_dir / "plots" / p).stat().st_size > 1000 for p in plots)
    report = (run_dir / "report.md").read_text()
    for words in (
        "Acceptable",
        "70.00%",
        "## Per class",
        "## Confusion matrix",
        "## Timings",
        "NVIDIA H200",
        "plots/roc.png",
        "kind: ar",
        "## Host and software",
    ):
        assert words in report
    text = summary(metrics, run_dir, width=120)
    assert "Acceptable" in text and "70.00%" in text and "confusion matrix" in text and "4 plots in plots/" in text
    assert "\nrows: true class, columns: predicted\n" in text  # one line, though two classes make a narrow table
    # a re-run replaces the files and leaves no temporaries
    evaluate_run(run_dir)
    assert not [p for p in run_dir.rglob(".*") if p.is_file()]


@pytest.mark.slow  # draws the plots twice
def test_plots_are_a_step_of_their_own_and_never_stale(tmp_path, monkeypatch):
    """Without plots=True nothing is drawn and report.md says how to draw them; plots drawn
    for an evaluation are kept (not redrawn) while it stays the same, and removed when it
    changes, so report.md, metrics.json and plots/ always describe the same evaluation."""
    from matplotlib.figure import Figure

    drawn = []
    original = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda fig, *a, **kw: drawn.append(1) or original(fig, *a, **kw))
    run_dir = make_run(tmp_path, train_texts={"0": 900, "1": 100})
    plot_dir = run_dir / "plots"

    def report_plots():
        return sorted(line for line in (run_dir / "report.md").read_text().splitlines() if line.startswith("!["))

    metrics = evaluate_run(run_dir)
    assert not plot_dir.exists() and not drawn and metrics["files"]["plots"] == []
    assert "Not drawn: `orch eval r1 --plots` draws them into plots/." in (run_dir / "report.md").read_text()
    assert "(plots: `orch eval r1 --plots`)" in summary(metrics, run_dir)

    metrics = evaluate_run(run_dir, plots=True)
    assert len(drawn) == 4 and len(metrics["files"]["plots"]) == 4 and len(report_plots()) == 4
    stamp = {p.name: p.stat().st_mtime_ns for p in plot_dir.iterdir()}
    assert evaluate_run(run_dir, plots=True)["files"]["plots"] == metrics["files"]["plots"]
    assert evaluate_run(run_dir)["files"]["plots"] == metrics["files"]["plots"]  # same results: still theirs
    assert len(drawn) == 4 and {p.name: p.stat().st_mtime_ns for p in plot_dir.iterdir()} == stamp
    assert len(report_plots()) == 4

    (plot_dir / "notes.txt").write_text("mine")  # a user's file in plots/ is never touched
    changed = evaluate_run(run_dir, prior="train")  # other metrics: the old plots would lie
    assert changed["files"]["plots"] == [] and sorted(p.name for p in plot_dir.iterdir()) == ["notes.txt"]
    assert report_plots() == []
    evaluate_run(run_dir, prior="train", plots=True)
    assert len(drawn) == 8 and len(report_plots()) == 4

    (plot_dir / "roc.png").unlink()  # one gone: drawn again, not listed as if there
    assert len(evaluate_run(run_dir, prior="train", plots=True)["files"]["plots"]) == 4 and len(drawn) == 12


def test_cpu_only_run_reports_its_job_time_not_gpu_time_0s(tmp_path):
    from rich.console import Console

    from orchestrator.commands.results_view import print_comparison
    from orchestrator.results.compare import compare_runs

    run_dir = make_run(tmp_path, job_seconds=7)  # two jobs: 14 s in all
    for manifest in run_dir.glob("jobs/*/manifest.json"):
        doc = json.loads(manifest.read_text())
        manifest.write_text(json.dumps({**doc, "device": "cpu", "gpu_name": None}))
    metrics = evaluate_run(run_dir)
    assert metrics["gpu_seconds"] == 0
    verdict = [line for line in summary(metrics).splitlines() if line.startswith("verdict:")][0]
    assert "GPU time" not in verdict and verdict.endswith("compute time 14s CPU")
    report = (run_dir / "report.md").read_text()
    assert "GPU time" not in report and "compute time 14s CPU" in report
    compared = Console(record=True, width=200)
    print_comparison(compared, compare_runs([("r1", run_dir)]))
    assert "14s CPU" in compared.export_text()  # the same words as `orch compare`


def test_jobs_given_a_gpu_that_ran_on_the_cpu_are_named_in_the_report_and_the_summary(tmp_path):
    run_dir = make_run(tmp_path, job_seconds=7)
    note = "this job was given GPU 0 (CUDA_VISIBLE_DEVICES) but torch 2.11.0+cpu is a CPU build (no CUDA)"
    for manifest in run_dir.glob("jobs/*/manifest.json"):
        doc = json.loads(manifest.read_text())
        manifest.write_text(json.dumps({**doc, "device": "cpu", "gpu_name": None, "device_note": note}))
    metrics = evaluate_run(run_dir)
    assert metrics["gpu_seconds"] == 0  # CPU time, not GPU time
    assert {j["device_note"] for j in metrics["timings"]["jobs"].values()} == {note}
    from orchestrator.results.report import esc

    report = (run_dir / "report.md").read_text()
    assert "**Given a GPU but ran on the CPU:** c0, c1. " + esc(note) in report  # (markdown-escaped)
    assert f"| {esc('cpu (given a GPU)')} |" in report
    said = summary(metrics)
    assert "note: c0, c1 given a GPU but ran on the CPU" in said and "CPU times" in said


def test_gpu_run_reports_gpu_time(tmp_path):
    metrics = evaluate_run(make_run(tmp_path, job_seconds=7))
    verdict = [line for line in summary(metrics).splitlines() if line.startswith("verdict:")][0]
    assert verdict.endswith("compute time 14s GPU")


def test_evaluate_run_prints_nothing(tmp_path, capsys):
    """Printing is the commands' job (commands/results_view.py); results/ never imports rich."""
    evaluate_run(make_run(tmp_path))
    assert capsys.readouterr() == ("", "")
    import ast

    def imported(nodes):
        names = [a.name for node in nodes if isinstance(node, ast.Import) for a in node.names]
        return names + [node.module or "" for node in nodes if isinstance(node, ast.ImportFrom)]

    for path in (Path(__file__).resolve().parents[2] / "orchestrator" / "results").glob("*.py"):
        tree = ast.parse(path.read_text())
        names = imported(list(ast.walk(tree)))
        assert not [n for n in names if n.split(".")[0] in ("rich", "typer", "scipy")], path
        # scikit-learn: only where the yardsticks are computed, and only when they are
        top = imported(tree.body)
        assert not [n for n in top if n.split(".")[0] == "sklearn"], path
        if path.name != "yardsticks.py":
            assert not [n for n in names if n.split(".")[0] == "sklearn"], path


def test_min_accuracy_is_recorded(tmp_path):
    from orchestrator.results.evaluate import check_min_accuracy

    m = run_eval(make_run(tmp_path, eval_cfg={"min_accuracy": 0.8}))
    assert m["meets_min_accuracy"] is False
    with pytest.raises(OrchError, match="below eval.min_accuracy"):
        check_min_accuracy(m)


@pytest.mark.slow
def test_25k_texts_merge_and_score_like_a_direct_computation(tmp_path):
    """At the size of IMDB's test set, with the two jobs' rows in different orders, the
    merged table and its metrics are what a direct per-text computation gives.
    (How fast: bench/bench_eval.py, not a timed test.)"""
    rng = np.random.default_rng(0)
    n = 25_000
    labels = rng.integers(0, 2, n)
    tokens = rng.integers(20, 513, n)
    nll = np.round(rng.normal(3.0, 0.2, (n, 2)) * tokens[:, None], 3)
    nll[np.arange(n), labels] -= np.round(rng.normal(0.1, 0.2, n) * tokens, 3)
    texts = [
        (
            f"test/{i}",
            str(labels[i]),
            {"0": (float(nll[i, 0]), int(tokens[i])), "1": (float(nll[i, 1]), int(tokens[i]))},
        )
        for i in range(n)
    ]
    order = rng.permutation(n)
    run_dir = make_run(
        tmp_path, texts=texts, rows_hook=lambda job, rows: [rows[i] for i in order] if job == "c1" else rows
    )
    m = evaluate_run(run_dir)
    pred = np.argmin(nll, axis=1)  # equal priors: the smaller NLL wins
    assert m["n"] == n and m["correct"] == int(np.sum(pred == labels))
    assert m["accuracy"] == pytest.approx(np.mean(pred == labels))
    assert m["confusion_matrix"] == [[int(np.sum((labels == a) & (pred == b))) for b in (0, 1)] for a in (0, 1)]
    lo, hi = m["accuracy_ci95"]
    se = math.sqrt(m["accuracy"] * (1 - m["accuracy"]) / n)
    assert lo < m["accuracy"] < hi and abs((hi - lo) - 2 * 1.96 * se) < 0.3 * se
    with open(run_dir / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["id"] for r in rows] == [f"test/{i}" for i in range(n)]  # the first job's order
    sample = rng.integers(0, n, 50)
    for i in sample:
        row = rows[i]
        assert (float(row["nll_0"]), float(row["nll_1"]), row["label"], row["prediction"]) == (
            nll[i, 0],
            nll[i, 1],
            str(labels[i]),
            str(pred[i]),
        )


def test_predictions_csv_escapes_formulas_in_ids_labels_and_class_names(tmp_path):
    """Every text cell orch writes to a CSV, header included, goes through report.csv_cell."""
    texts = [
        ("=cmd|' /C calc'!A0", "=A", {"=A": (1.0, 3), "-1": (2.0, 3)}),
        ("@x", "-1", {"=A": (2.0, 3), "-1": (1.0, 3)}),
    ]
    run_dir = make_run(tmp_path, texts=texts, classes=("=A", "-1"))
    evaluate_run(run_dir, plots=False)
    with open(run_dir / "predictions.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0][2] == "nll_=A"  # the header's class names are inside safe text
    cells = [c for row in rows for c in row]
    assert "'=cmd|' /C calc'!A0" in cells and "'@x" in cells and "'=A" in cells
    assert not any(c.startswith(("=", "@")) for c in cells)
    assert "-1" in cells  # a number-like label stays as it is


def test_predictions_csv_shows_control_characters_in_ids_as_escapes(tmp_path):
    """A host's test id holding ESC, NUL or a newline: predictions.csv shows the escapes,
    never the raw characters (a terminal `cat`, a viewer, a spreadsheet acts on them)."""
    texts = [
        ("t0\x1b]0;owned\x07", "0", {"0": (1.0, 3), "1": (2.0, 3)}),
        ("t1\n=cmd\x00\x9b", "1", {"0": (2.0, 3), "1": (1.0, 3)}),
    ]
    run_dir = make_run(tmp_path, texts=texts)
    evaluate_run(run_dir, plots=False)
    raw = (run_dir / "predictions.csv").read_text()
    assert not [ch for ch in raw if (ord(ch) < 32 or 127 <= ord(ch) < 160) and ch not in "\r\n"]
    assert raw.count("\n") == 3  # header and two rows: no id spans lines
    with open(run_dir / "predictions.csv", newline="") as fh:
        ids = [row[0] for row in list(csv.reader(fh))[1:]]
    assert sorted(ids) == ["t0\\x1b]0;owned\\x07", "t1\\n=cmd\\x00\\x9b"]


@pytest.mark.parametrize(
    "cell, written",
    [
        ('=HYPERLINK("http://evil.example","x")', '\'=HYPERLINK("http://evil.example","x")'),
        ("+SUM(1,2)", "'+SUM(1,2)"),
        ("-2+3", "'-2+3"),
        ("@cmd", "'@cmd"),
        ("\tx", "\\tx"),  # a control is shown as its escape: then no formula starts
        ("\rx", "\\rx"),
        ("id\x1b[2J\x00\x9b\x7f", "id\\x1b[2J\\x00\\x9b\\x7f"),
        ("a\nb\u202ec", "a\\nb\\u202ec"),
        ("=\x1b", "'=\\x1b"),
        ("-1", "-1"),
        ("+1.5e3", "+1.5e3"),
        ("pos", "pos"),
        (-612.4, -612.4),
        (3, 3),
    ],
)
def test_csv_cells_that_would_be_formulas_are_quoted(cell, written):
    """OWASP CSV injection: a leading quote; plain numbers (a "-1" label) stay numbers."""
    from orchestrator.results.report import csv_cell

    assert csv_cell(cell) == written


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


def test_report_md_shows_class_names_as_text_not_markup(tmp_path):
    """Class names come from the data and back from the host: in report.md an HTML tag, a
    link or emphasis in one renders as the characters it is, and cannot break a table."""
    names = ("<b>pos</b>", "neg|*bad*[x](http://e)")
    texts = [
        ("a", names[0], {names[0]: (1.0, 3), names[1]: (2.0, 3)}),
        ("b", names[1], {names[0]: (2.0, 3), names[1]: (1.0, 3)}),
    ]
    run_dir = make_run(tmp_path, texts=texts, classes=names)
    evaluate_run(run_dir, plots=False)
    report = (run_dir / "report.md").read_text()
    prose = report.split("## Config")[0]  # the config's fenced block shows the YAML as it is
    assert "<b>" not in prose and "&lt;b&gt;pos&lt;/b&gt;" in prose
    assert "neg\\|\\*bad\\*\\[x\\]\\(http://e\\)" in report
    # the per-class table's rows still have its header's number of cells
    cells = lambda line: len(re.split(r"(?<!\\)\|", line))  # noqa: E731
    header = next(line for line in report.splitlines() if line.startswith("| class |"))
    row = next(line for line in report.splitlines() if line.startswith("| neg"))
    assert cells(row) == cells(header)


def test_a_fenced_block_cannot_be_closed_by_its_text():
    from orchestrator.results.report import fenced

    block = fenced("classes:\n- '```'\n- x", "yaml")
    assert block[0] == "````yaml" and block[-1] == "````"
    assert fenced("plain")[0] == "```"


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


def test_texts_decided_by_a_tie_are_counted_in_the_report(tmp_path):
    """Three texts that both class models score alike: argmax gave them the first class,
    and report.md says how many were decided that way."""

    def scores(i, label):
        if i < 3:
            return {"neg": (2.0, 4), "pos": (2.0, 4)}
        return {label: (1.0, 4), ("neg" if label == "pos" else "pos"): (2.0, 4)}

    texts = [(f"t{i}", label, scores(i, label)) for i, label in enumerate(["neg", "pos"] * 4)]
    run_dir = make_run(tmp_path, texts=texts, classes=("neg", "pos"))
    m = evaluate_run(run_dir, plots=False)
    assert m["tied"] == 3 and m["per_token"]["tied"] == 3
    assert "| tied best scores (a coin keyed on the text id) | 3 | 3 |" in (run_dir / "report.md").read_text()


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


def test_report_text_shows_controls_and_bidi_overrides_as_escapes():
    """report.md is read in viewers that honour bidi overrides and C1 controls: host or data
    text in it shows them as escapes, as the terminal does, in plain text and code spans."""
    from orchestrator.results.report import code, esc

    name = "gpu\u202eexe.pdf\x9b31m\x1b]52;c;x\x07\u200b"
    for out in (esc(name), code(name)):
        assert not any(ch in out for ch in "\u202e\x9b\x1b\x07\u200b"), out
        assert "u202e" in out and "x9b" in out and "x1b" in out and "u200b" in out
    assert esc("a\tb\nc") == "a\\\\tb\\\\nc"  # one line; the backslash is literal in markdown
    assert code("a`b") == "`a'b`"


def test_a_run_yaml_edited_after_launch_is_flagged_in_the_report(tmp_path):
    run_dir = make_run(tmp_path)
    sha = hashlib.sha256((run_dir / "run.yaml").read_bytes()).hexdigest()
    local = json.loads((run_dir / "local.json").read_text())
    (run_dir / "local.json").write_text(json.dumps({**local, "config_sha256": sha}))
    assert evaluate_run(run_dir)["config_edited"] is False
    assert "was edited after the run was launched" not in (run_dir / "report.md").read_text()
    (run_dir / "run.yaml").write_text((run_dir / "run.yaml").read_text().replace("init: scratch", "init: gpt2"))
    assert evaluate_run(run_dir)["config_edited"] is True
    assert "**run.yaml was edited after the run was launched**" in (run_dir / "report.md").read_text()
