"""score.mdlm_draws: adaptive on the controller's side: the config rules, the plan (one
joint score job after the class jobs), and the evaluation of per-text draw counts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from orchestrator.errors import ExitCode, OrchError
from orchestrator.results.evaluate import evaluate_run
from orchestrator.runs.plan import plan_jobs
from remote.spec import SpecError, load_experiment, set_dotted
from tests.unit.evalruns import make_run, refusal


def adaptive_exp(**sets):
    raw = {"data": {"path": "x"}, "model": {"kind": "mdlm"}, "score": {"mdlm_draws": "adaptive"}}
    for key, value in sets.items():
        set_dotted(raw, key, value)
    return load_experiment(raw, "f.yaml")


@pytest.mark.parametrize(
    "key,value,expected",
    [
        ("score.mdlm_draws", "lots", "key 'score.mdlm_draws': expected an integer >= 1 or 'adaptive', got 'lots'"),
        ("model.kind", "ar", "key 'score.mdlm_draws': 'adaptive' needs model.kind mdlm"),
        ("model.kind", "classifier", "got model.kind 'classifier'"),
        ("score.adaptive.round", 1, "key 'score.adaptive.round': expected an integer >= 2"),
        ("score.adaptive.max", 3, "key 'score.adaptive.max': expected an integer >= score.adaptive.round (4), got 3"),
        ("score.adaptive.z", 0, "key 'score.adaptive.z': expected a number > 0"),
        ("score.adaptive.z", "big", "key 'score.adaptive.z': expected a number, got 'big'"),
        ("score.adaptive.min", 2, "unknown key 'score.adaptive.min' (known keys here: round, max, z)"),
    ],
)
def test_adaptive_config_errors_name_the_file_and_key(key, value, expected):
    with pytest.raises(SpecError) as err:
        adaptive_exp(**{key: value})
    assert str(err.value).startswith("f.yaml: ") and expected in str(err.value)


def test_adaptive_defaults_and_fixed_k_unchanged():
    exp = adaptive_exp()
    assert exp.score.is_adaptive and (exp.score.adaptive.round, exp.score.adaptive.max, exp.score.adaptive.z) == (
        4,
        64,
        2.0,
    )
    fixed = load_experiment({"data": {"path": "x"}, "model": {"kind": "mdlm"}, "score": {"mdlm_draws": 8}}, "f")
    assert fixed.score.mdlm_draws == 8 and not fixed.score.is_adaptive
    assert [j.role for j in plan_jobs(fixed, ["0", "1"])] == ["class", "class"]


def test_adaptive_plan_adds_one_score_job_after_every_class_job():
    jobs = plan_jobs(adaptive_exp(**{"pretrain.enabled": True, "data.unlabelled_path": "u"}), ["0", "1"])
    assert [(j.name, j.role, j.requires) for j in jobs] == [
        ("pretrain", "pretrain", []),
        ("class-0", "class", ["pretrain"]),
        ("class-1", "class", ["pretrain"]),
        ("score", "score", ["class-0", "class-1"]),
    ]
    with pytest.raises(OrchError) as err:
        plan_jobs(adaptive_exp(**{"data.class_names": {"0": "Score", "1": "pos"}}), ["0", "1"])
    assert err.value.code == ExitCode.CONFIG and "'Score'" in err.value.message


# --------------------------------------------------------------------------- evaluation


def adaptive_run(root: Path, texts, rows_hook=None) -> Path:
    """A fetched adaptive run: class jobs that only trained, one score job with every row."""
    run_dir = make_run(root, texts=texts, kind="classifier", rows_hook=rows_hook)
    doc = yaml.safe_load((run_dir / "run.yaml").read_text())
    doc["experiment"]["model"]["kind"] = "mdlm"
    doc["experiment"]["score"] = {"mdlm_draws": "adaptive", "adaptive": {"round": 2, "max": 6, "z": 2.0}}
    blank = {"requires": [], "after": [], "gpu": ""}
    doc["jobs"] = [
        {"name": "c0", "role": "class", "label": "0", **blank},
        {"name": "c1", "role": "class", "label": "1", **blank},
        {"name": "score", "role": "score", "label": None, **{**blank, "requires": ["c0", "c1"]}},
    ]
    (run_dir / "run.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (run_dir / "jobs" / "classifier").rename(run_dir / "jobs" / "score")
    manifest = json.loads((run_dir / "jobs" / "score" / "manifest.json").read_text())
    (run_dir / "jobs" / "score" / "manifest.json").write_text(json.dumps({**manifest, "job": "score", "role": "score"}))
    return run_dir


def texts_with_draws(per_text):
    """per_text: (label, class-0 draws, class-1 draws) -> make_run texts."""
    return [
        (f"t{i}", label, {"0": (sum(d0) / len(d0), 10, d0), "1": (sum(d1) / len(d1), 10, d1)})
        for i, (label, d0, d1) in enumerate(per_text)
    ]


def test_evaluation_of_per_text_draw_counts(tmp_path):
    per_text = [
        ("0", [10.0, 11.0], [20.0, 21.0]),  # settled after one round of 2
        ("1", [15.0, 13.0, 14.0, 16.0, 15.0, 13.0], [14.0, 15.0, 13.0, 15.0, 14.0, 14.0]),  # went to max 6
        ("1", [30.0, 31.0, 30.0, 29.0], [20.0, 21.0, 22.0, 19.0]),  # settled after two rounds
    ]
    run_dir = adaptive_run(tmp_path, texts_with_draws(per_text))
    m = evaluate_run(run_dir)
    ad = m["adaptive"]
    assert (ad["draws_mean"], ad["draws_min"], ad["draws_max"], ad["draws_total"], ad["at_max"]) == (4.0, 2, 6, 12, 1)
    assert ad["forward_passes"] == 24 and ad["fixed_max_forward_passes"] == 36
    assert ad["share_of_fixed_max"] == pytest.approx(24 / 36)
    # The same rounds cut at a smaller max: round 2 alone is fixed K = 2 (text t1 wrong).
    assert ad["by_max"] == [
        {"max": 2, "accuracy": pytest.approx(2 / 3), "forward_passes": 12},
        {"max": 4, "accuracy": 1.0, "forward_passes": 20},
        {"max": 6, "accuracy": 1.0, "forward_passes": 24},
    ]
    # Each text's paired SE is over its own draws.
    se = [np.std(np.subtract(d0, d1), ddof=1) / np.sqrt(len(d0)) for _, d1, d0 in per_text]
    assert m["paired"]["mean_margin_se"] == pytest.approx(np.mean(se))
    assert m["mc_noise"] is not None and m["accuracy"] == 1.0
    report = (run_dir / "report.md").read_text()
    assert "**Adaptive draws** (rounds of 2, at most 6, z 2)" in report and "**24 forward passes**" in report
    assert "| max draws | accuracy | forward passes |" in report and "| 4 | 100.00% | 20 |" in report
    assert "| draws per text / forward passes | 4.0 / 24 (66.7% of K=6) |" in report
    assert "decisions not significant (95%, adaptive draws)" in report


def test_merge_refuses_a_text_with_other_draw_counts_per_class(tmp_path):
    per_text = [("0", [10.0, 11.0], [20.0, 21.0]), ("1", [15.0, 13.0, 14.0, 16.0], [14.0, 15.0])]
    err = refusal(adaptive_run(tmp_path, texts_with_draws(per_text)))
    assert (
        err.code == ExitCode.DATA and "another number of draws for one class" in err.message and "'t1'" in err.message
    )


def test_merge_refuses_a_single_draw_among_adaptive_counts(tmp_path):
    per_text = [("0", [10.0], [20.0]), ("1", [15.0, 13.0, 14.0, 16.0], [14.0, 15.0, 13.0, 15.0])]
    err = refusal(adaptive_run(tmp_path, texts_with_draws(per_text)))
    assert err.code == ExitCode.DATA and "'t0': has 1 draw" in err.message and "'score'" in err.message


def test_another_prior_than_the_one_the_draws_stopped_under_is_named(tmp_path):
    # remote/adaptive.py settles a text's decision under the run's eval.prior
    per_text = [("0", [10.0, 11.0], [20.0, 21.0]), ("1", [30.0, 31.0, 30.0, 29.0], [20.0, 21.0, 22.0, 19.0])]
    run_dir = adaptive_run(tmp_path, texts_with_draws(per_text))
    assert evaluate_run(run_dir)["adaptive"]["prior_note"] is None
    doc = yaml.safe_load((run_dir / "run.yaml").read_text())
    doc["experiment"]["eval"] = {"prior": "train"}  # the draws stopped under the training frequencies
    (run_dir / "run.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    m = evaluate_run(run_dir, prior="uniform")
    assert m["adaptive"]["prior_note"].startswith("the adaptive draws were stopped under the run's eval.prior 'train'")
    report = (run_dir / "report.md").read_text()
    assert "Note: the adaptive draws were stopped under the run's eval.prior 'train'" in report
