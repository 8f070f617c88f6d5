"""What the controller knows of a model kind comes from one table, remote/spec.py's KINDS
(stdlib: both sides read it): a kind added there with its facts is planned, validated,
scored and reported as those facts say, with no kind named anywhere else."""

import pytest

from orchestrator.results import metrics
from orchestrator.results.scores import scoring_role
from orchestrator.results.study_plots import draw_curves
from orchestrator.runs.plan import plan_jobs
from remote import spec
from remote.spec import KindFacts, SpecError, load_experiment


@pytest.fixture
def new_kinds(monkeypatch):
    kinds = dict(
        spec.KINDS,
        svm=KindFacts("a support vector machine", discriminative=True, draws=False),
        sedd=KindFacts("a score-entropy diffusion LM", discriminative=False, draws=True),
    )
    monkeypatch.setattr(spec, "KINDS", kinds)


def _exp(kind, **score):
    return load_experiment({"data": {"path": "x"}, "model": {"kind": kind}, "score": score}, "t")


def test_a_discriminative_kind_is_one_classifier_job_scored_as_one(new_kinds):
    exp = _exp("svm")
    assert [(j.name, j.role) for j in plan_jobs(exp, ["0", "1"])] == [("classifier", "classifier")]
    assert scoring_role(exp) == "classifier"
    assert spec.pretrain_kind_name("svm") == "ar"  # no LM loss of its own


def test_a_kind_scored_with_draws_takes_adaptive_draws_and_gets_a_draw_curve(new_kinds):
    exp = _exp("sedd", mdlm_draws="adaptive")
    assert scoring_role(exp) == "score"
    with pytest.raises(SpecError, match="needs model.kind mdlm or sedd"):
        _exp("ar", mdlm_draws="adaptive")
    table = {"rows": [{"name": "m", "type": "member", "kind": "sedd"}]}
    assert draw_curves(table, {"m": []}) == ({}, "no MDLM member has results yet")  # counted as one


def test_the_reports_words_come_from_the_table():
    assert {k: metrics.KIND_NOUNS[k] for k in spec.KINDS} == {k: f.noun for k, f in spec.KINDS.items()}
    assert metrics.BANDS_WRITTEN_FOR["poc"] == ("ar", "mdlm", "mlm-pll")
    assert [metrics.bands_for(k, "auto") for k in spec.KINDS] == ["poc", "mdlm", "poc", "poc"]
