"""A study file edited after launch, in words (runs/study_edits.py), and what `study run`
does with each kind: a launched run's config or presence cannot change, new members and
seeds are runs to launch, ensembles need no runs."""

import pytest
from studyfiles import write_study

from orchestrator.config import studies
from orchestrator.errors import ExitCode, OrchError
from orchestrator.runs import study as running
from orchestrator.runs.study_edits import CHANGED, ENSEMBLE, NEW, NOT_LAUNCHED, REMOVED, edits

BASE = {
    "base": "smoke",
    "seeds": [0, 1],
    "members": {"a": {"model.kind": "ar"}, "m": {"model.kind": "mdlm", "score.mdlm_draws": 8}},
    "ensembles": {"am": ["a", "m"]},
}


def recorded(project, launched=("st-a-s0", "st-a-s1", "st-m-s0", "st-m-s1")):
    write_study(project, BASE)
    doc = running.save_record(project, studies.load(project, "st"))
    for run_id in launched:
        (project.runs / run_id).mkdir(parents=True)
    return doc


def found(project, doc, change):
    write_study(project, {**BASE, **change})
    return [
        (e.text, e.kind, e.runs) for e in edits(doc, studies.load(project, "st"), running.launched_ids(project, doc))
    ]


def test_each_kind_of_edit_is_named_with_the_runs_it_concerns(project):
    doc = recorded(project)
    m = {"model.kind": "mdlm", "score.mdlm_draws": 16}
    assert found(project, doc, {"members": {**BASE["members"], "m": m}}) == [
        ("member m: score.mdlm_draws 8 -> 16", CHANGED, ["st-m-s0", "st-m-s1"])
    ]
    assert found(project, doc, {"set": {"train.steps": 7}}) == [
        ("set: train.steps (not set) -> 7", CHANGED, ["st-a-s0", "st-a-s1", "st-m-s0", "st-m-s1"])
    ]
    assert found(project, doc, {"members": {**BASE["members"], "c": {"model.kind": "ar"}}, "seeds": [0, 1, 2]}) == [
        ("added member c", NEW, ["st-c-s0", "st-c-s1", "st-c-s2"]),
        ("added seed 2", NEW, ["st-a-s2", "st-m-s2"]),
    ]
    assert found(project, doc, {"members": {"a": BASE["members"]["a"]}, "ensembles": {}}) == [
        ("removed member m", REMOVED, ["st-m-s0", "st-m-s1"]),
        ("removed ensemble am", ENSEMBLE, []),
    ]
    assert found(project, doc, {"ensembles": {"am": ["a", "m"], "ma": ["m", "a"]}}) == [
        ("added ensemble ma (m + a)", ENSEMBLE, [])
    ]
    assert found(project, doc, {}) == []


def test_an_edit_only_runs_not_launched_take_is_pending_not_refused(project):
    doc = recorded(project, launched=("st-a-s0", "st-a-s1"))
    m = {"model.kind": "mdlm", "score.mdlm_draws": 16}
    assert found(project, doc, {"members": {**BASE["members"], "m": m}}) == [
        ("member m: score.mdlm_draws 8 -> 16", NOT_LAUNCHED, [])
    ]
    running.save_record(project, studies.load(project, "st"))  # not refused: m was never launched


def test_a_changed_base_experiment_is_named_when_no_override_differs(project):
    doc = recorded(project)
    base = project.configs / "experiments" / "smoke.yaml"
    base.write_text(base.read_text().replace("steps: 60", "steps: 61", 1))
    ((text, kind, runs),) = found(project, doc, {})
    assert text == f"the base experiment smoke ({base}) changed" and kind == CHANGED and len(runs) == 4


def test_study_run_refuses_a_launched_runs_change_naming_it_and_keeps_launch_facts(project):
    doc = recorded(project, launched=())
    facts = {"host": "h", "workdir": "/w", "code_hash": "c" * 16, "config_sha256": "0" * 64}
    doc = running.update_record(project, "st", lambda d: d["runs"][0].update(launched=facts) is None)
    assert running.launched_ids(project, doc) == {"st-a-s0"}  # no folder here: study.json says so
    write_study(project, {**BASE, "members": {**BASE["members"], "a": {"model.kind": "ar", "train.lr": 0.01}}})
    with pytest.raises(OrchError) as err:
        running.save_record(project, studies.load(project, "st"))
    assert err.value.code == ExitCode.RUN_STATE
    assert err.value.message.startswith(
        "study st changed since its runs were launched: member a: train.lr (not set) -> 0.01 would change launched "
        "run st-a-s0: a study's runs keep the config they were launched with"
    )
    write_study(project, {**BASE, "ensembles": {}})  # allowed: the launch facts stay with their run
    saved = running.save_record(project, studies.load(project, "st"))
    assert saved["runs"][0]["launched"] == facts and saved["ensembles"] == {}


def test_a_member_added_above_launched_sharers_does_not_take_their_pretrain_over(project):
    """gpt2 owns the pretrain classifier shares; a new member listed first with the same
    pretraining would own it if read from the file alone, which would change both launched
    runs: the launched owner keeps it and the new member is just launched."""
    shared = {
        "data.unlabelled_path": "configs/data/tiny_unlabelled.jsonl",
        "pretrain.enabled": True,
        "pretrain.steps": 5,
    }
    members = {"gpt2": {"model.kind": "ar"}, "classifier": {"model.kind": "classifier"}}
    base = {"base": "smoke", "seeds": [0], "set": shared, "members": members}
    write_study(project, base)
    doc = running.save_record(project, studies.load(project, "st"))
    for run_id in ("st-gpt2-s0", "st-classifier-s0"):
        (project.runs / run_id).mkdir(parents=True)
    write_study(project, {**base, "members": {"gpt2b": {"model.kind": "ar", "train.lr": 0.001}, **members}})
    plan = running.keep_launched_owners(project, studies.load(project, "st"))
    assert [(e.text, e.kind, e.runs) for e in edits(doc, plan, running.launched_ids(project, doc))] == [
        ("added member gpt2b", NEW, ["st-gpt2b-s0"])
    ]
    by_id = {r.run_id: r for r in plan.runs}
    assert by_id["st-gpt2b-s0"].pretrain_from == "st-gpt2-s0"
    assert by_id["st-classifier-s0"].pretrain_from == "st-gpt2-s0" and by_id["st-gpt2-s0"].owns_pretrain
    # Read from the file alone (no study.json yet), member order decides, as before.
    fresh = studies.load(project, "st")
    assert {r.run_id: r.pretrain_from for r in fresh.runs}["st-gpt2-s0"] == "st-gpt2b-s0"
