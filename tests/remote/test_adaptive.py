"""Adaptive MDLM draws (remote/adaptive.py): rounds of shared draws, only for open texts.

Tiny random class models in-process for the round loop (the masks each model is asked
about are recorded, as test_mdlm.py::test_common_random_numbers does), and one real run
folder through remote.run_job for the score job's files.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch
from runkit import class_jobs, experiment, job, read_jsonl, write_run
from test_mdlm import _record_inputs, make_tokenizer, one_thread, tiny_model  # noqa: F401 (a fixture)

from remote import adaptive, run_job
from remote.files import sha256_file
from remote.kinds import mdlm
from remote.score import score_texts
from remote.spec import AdaptiveSpec, ScoreSpec

TEXTS = [
    "w1 w2 w3 w4 w5 w6",
    "w7 w8 w9",
    "w10 w11 w12 w13 w14 w15 w1 w2",
    "w3 w3 w4",
    "w5 w6 w7 w8 w9 w10",
    "w11 w12",
    "w13 w14 w15 w0 w1",
    "w2 w4 w6 w8",
]


def class_models(tok):
    """Two "class models" that are close: some texts' decisions settle at once, some never."""
    a = tiny_model(tok, seed=3)
    b = copy.deepcopy(a)
    torch.manual_seed(9)
    with torch.no_grad():
        b.net.head.weight.add_(0.05 * torch.randn_like(b.net.head.weight))
    return [a, b]


def rounds(tmp_path, models, tok, spec, prior=(0.0, 0.0), log=lambda m: None):
    ids = [tok(t)["input_ids"] for t in TEXTS]
    tids = [f"t{i}" for i in range(len(TEXTS))]
    return adaptive.score_rounds(
        models, mdlm, ids, tids, spec, tok, list(prior), dtype="fp32", job_dir=str(tmp_path), log=log
    )


def spec(round=2, max=8, z=2.0, seed=1234):
    return ScoreSpec(batch_size=16, mdlm_draws="adaptive", seed=seed, adaptive=AdaptiveSpec(round, max, z))


def test_every_class_model_scores_the_same_masks(tmp_path):
    tok = make_tokenizer()
    models = class_models(tok)
    seen = [_record_inputs(m) for m in models]
    out = rounds(tmp_path, models, tok, spec())
    assert out["rounds"] > 1
    assert len(seen[0]) == len(seen[1]) >= out["rounds"]
    for x, y in zip(*seen):
        assert torch.equal(x, y)  # the same masked copies, round after round
    for per_class in out["draws"]:
        assert len(per_class[0]) == len(per_class[1])


def test_identical_seeds_give_identical_draws_other_seeds_other_draws(tmp_path):
    tok = make_tokenizer()
    models = class_models(tok)
    first = rounds(tmp_path, models, tok, spec())
    again = rounds(tmp_path, models, tok, spec())
    assert json.dumps(first) == json.dumps(again)
    other = rounds(tmp_path, models, tok, spec(seed=99))
    assert other["draws"] != first["draws"]


def test_settled_texts_stop_early_and_every_text_is_bounded(tmp_path):
    tok = make_tokenizer()
    lines = []
    out = rounds(tmp_path, class_models(tok), tok, spec(round=3, max=8), log=lines.append)
    # Within a round the log says how far each class model's pass is (minutes per round at scale).
    assert any(line.startswith("round 1, class model 2/2: score ") for line in lines), lines
    counts = [len(d[0]) for d in out["draws"]]
    assert min(counts) >= 3 and max(counts) <= 8
    assert len(set(counts)) > 1, counts  # some settled early, some went on
    assert 8 in counts  # the last round draws only what max leaves (3 + 3 + 2)
    assert out["forward_passes"] == 2 * sum(counts)
    for d, k in zip(out["draws"], counts):
        if k < 8:
            assert adaptive.settled(d, [0.0, 0.0], 2.0)


def test_round_zero_is_fixed_k_round_scoring(tmp_path):
    """Round 0 keeps the fixed-K seed, so a text's first `round` draws are exactly what
    score.mdlm_draws = round gives it; later rounds draw other masks."""
    tok = make_tokenizer()
    models = class_models(tok)
    out = rounds(tmp_path, models, tok, spec(round=2, max=8))
    ids = [tok(t)["input_ids"] for t in TEXTS]
    fixed = score_texts(
        models[0], mdlm, ids, [f"t{i}" for i in range(len(TEXTS))], ScoreSpec(batch_size=16, mdlm_draws=2),
        tok, dtype="fp32", job_dir=str(tmp_path), log=lambda m: None,
    )  # fmt: skip
    for per_class, (_, _, _, d) in zip(out["draws"], fixed):
        assert per_class[0][:2] == d
        if len(per_class[0]) > 2:
            assert per_class[0][2:4] != d


def test_settled_is_the_paired_z_rule():
    # margin 1 nat between the classes, per-draw differences 0.9 and 1.1: SE 0.1 -> settled
    assert adaptive.settled([[10.0, 20.0], [11.1, 20.9]], [0.0, 0.0], 2.0)
    # the same margin with differences -1 and 3: SE 2 -> open
    assert not adaptive.settled([[10.0, 20.0], [9.0, 23.0]], [0.0, 0.0], 2.0)
    # a prior that moves the margin to 0 leaves it open; one draw is never settled
    assert not adaptive.settled([[10.0, 20.0], [11.1, 20.9]], [-1.0, 0.0], 2.0)
    assert not adaptive.settled([[10.0], [50.0]], [0.0, 0.0], 2.0)
    # three classes: the two leading ones decide, not the far third
    assert adaptive.settled([[10.0, 20.0], [11.1, 20.9], [99.0, 1.0]], [0.0, 0.0, 0.0], 2.0)


@pytest.mark.slow
def test_score_job_writes_rows_for_every_class_and_reruns_to_the_same_bytes(tmp_path):
    exp = experiment(
        model__kind="mdlm",
        train__steps=5,
        score__mdlm_draws="adaptive",
        score__adaptive={"round": 2, "max": 6, "z": 2.0},
        data__max_test=30,
    )
    run_dir = write_run(tmp_path / "run", exp, class_jobs() + [job("score", "score", None, ["neg", "pos"])])
    for name in ("neg", "pos", "score"):
        assert run_job.main(["--run-dir", str(run_dir), "--job", name]) == 0, name
    jobs = run_dir / "jobs"
    for name in ("neg", "pos"):
        assert json.loads((jobs / name / "manifest.json").read_text())["files"] == {}
        assert not (jobs / name / "scores.jsonl").exists()
    manifest = json.loads((jobs / "score" / "manifest.json").read_text())
    scores = jobs / "score" / "scores.jsonl"
    assert manifest["files"]["scores.jsonl"]["sha256"] == sha256_file(str(scores))
    rows = read_jsonl(scores)
    assert len(rows) == 2 * 30 == 2 * manifest["n_test"]
    by_text = {}
    for row in rows:
        by_text.setdefault(row["id"], {})[row["class"]] = row
        assert row["nll"] == pytest.approx(sum(row["draws"]) / len(row["draws"]), rel=1e-12)
    for pair in by_text.values():
        assert set(pair) == {"0", "1"} and len(pair["0"]["draws"]) == len(pair["1"]["draws"])
        assert pair["0"]["tokens"] == pair["1"]["tokens"]
    ad = manifest["adaptive"]
    assert ad["draws_total"] == sum(len(p["0"]["draws"]) for p in by_text.values())
    assert ad["forward_passes"] == 2 * ad["draws_total"] and 2 <= ad["draws_min"] <= ad["draws_max"] <= 6
    before = scores.read_bytes()
    assert run_job.main(["--run-dir", str(run_dir), "--job", "score"]) == 0
    assert scores.read_bytes() == before  # identical seeds, identical bytes


def test_score_role_without_adaptive_draws_is_a_user_error(tmp_path, capsys):
    exp = experiment(model__kind="mdlm", score__mdlm_draws=4)
    run_dir = write_run(tmp_path / "run", exp, class_jobs() + [job("score", "score", None, ["neg", "pos"])])
    assert run_job.main(["--run-dir", str(run_dir), "--job", "score"]) == 2
    assert "only runs with score.mdlm_draws: adaptive" in capsys.readouterr().err
