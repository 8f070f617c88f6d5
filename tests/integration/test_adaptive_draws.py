"""`score.mdlm_draws: adaptive` through the real `orch` CLI on the built-in `local` host:
class jobs that only train, one joint score job, and an evaluation that counts the draws."""

import csv
import json

import pytest

pytestmark = pytest.mark.integration

ADAPTIVE = [
    "--set",
    "model.kind=mdlm",
    "--set",
    "train.steps=40",
    "--set",
    "score.mdlm_draws=adaptive",
    "--set",
    "score.adaptive.round=2",
    "--set",
    "score.adaptive.max=8",
    "--set",
    "eval.min_accuracy=0",
]


def test_adaptive_run_trains_class_jobs_then_one_score_job_counts_draws(ssh_project):
    p = ssh_project
    proc = p.orch("run", "smoke", "--wait", "--name", "adapt", *ADAPTIVE, timeout=400)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    status = json.loads(p.orch("status", "adapt", "--json", check=True).stdout)
    assert {j["name"]: j["state"] for j in status["jobs"]} == {"class-0": "done", "class-1": "done", "score": "done"}

    run = p.run_dir("adapt")
    # The class jobs trained and kept their checkpoints; only the score job scored.
    for name in ("class-0", "class-1"):
        manifest = json.loads((run / "jobs" / name / "manifest.json").read_text())
        assert manifest["files"] == {} and manifest["steps"] == 40
        assert (p.root / ".orch" / "local" / "runs" / "adapt" / "jobs" / name / "ckpt" / "final").is_dir()
    score = json.loads((run / "jobs" / "score" / "manifest.json").read_text())
    assert score["role"] == "score" and set(score["files"]) == {"scores.jsonl"}

    metrics = json.loads((run / "metrics.json").read_text())
    ad = metrics["adaptive"]
    assert 2 <= ad["draws_min"] and ad["draws_max"] <= 8 and ad["draws_min"] < ad["draws_max"]
    assert ad["forward_passes"] == 2 * ad["draws_total"] and ad["draws_total"] == round(ad["draws_mean"] * metrics["n"])
    assert ad == {**ad, **{k: score["adaptive"][k] for k in ("draws_mean", "draws_total", "forward_passes")}}
    assert ad["share_of_fixed_max"] < 1
    assert metrics["paired"]["mean_margin_se"] > 0 and metrics["mc_noise"]["accuracy_ci95"]
    with open(run / "predictions.csv") as f:
        assert all(float(r["margin_se"]) >= 0 for r in csv.DictReader(f))
    report = (run / "report.md").read_text()
    assert "Adaptive draws" in report and f"{ad['forward_passes']} forward passes" in report


def test_adaptive_draws_for_a_kind_without_draws_is_refused_before_launch(ssh_project):
    p = ssh_project
    proc = p.orch("run", "smoke", "--name", "bad", "--set", "score.mdlm_draws=adaptive")
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "smoke.yaml" in proc.stderr and "'score.mdlm_draws'" in proc.stderr and "model.kind mdlm" in proc.stderr
    assert "Traceback" not in proc.stderr and not p.run_dir("bad").exists()
