"""Study configs: validation (errors name file, member and key), the same test set for
every member, seeds applied by the study, shared pretrain jobs, the plan's jobs."""

import json

import pytest
from studyfiles import write_study

from orchestrator import backends
from orchestrator.config import studies
from orchestrator.errors import ExitCode, OrchError
from orchestrator.runs import study as running
from orchestrator.runs.plan import job_command, plan_jobs

BASE = {
    "base": "smoke",
    "seeds": [0, 1],
    "set": {"data.unlabelled_path": "configs/data/tiny_unlabelled.jsonl", "pretrain.enabled": True},
    "members": {"gpt2": {"model.kind": "ar"}, "mdlm": {"model.kind": "mdlm"}, "clf": {"model.kind": "classifier"}},
}


def test_members_times_seeds_become_runs_with_the_study_seeds(project):
    write_study(project, BASE)
    study = studies.load(project, "st")
    assert [(r.member, r.seed, r.run_id) for r in study.runs] == [
        ("gpt2", 0, "st-gpt2-s0"), ("gpt2", 1, "st-gpt2-s1"), ("mdlm", 0, "st-mdlm-s0"),
        ("mdlm", 1, "st-mdlm-s1"), ("clf", 0, "st-clf-s0"), ("clf", 1, "st-clf-s1"),
    ]  # fmt: skip
    for run in study.runs:
        assert run.exp.train.seed == run.exp.pretrain.seed == run.exp.score.seed == run.seed
    assert study.host == "local"  # the base experiment's


def test_members_with_the_same_pretraining_share_one_pretrain_job_per_seed(project):
    write_study(project, BASE)
    study = studies.load(project, "st")
    by_id = {r.run_id: r for r in study.runs}
    # The classifier's backbone is a causal LM: it starts from the GPT's pretrain of its seed.
    assert by_id["st-clf-s0"].pretrain_from == "st-gpt2-s0" and by_id["st-clf-s1"].pretrain_from == "st-gpt2-s1"
    assert by_id["st-mdlm-s0"].owns_pretrain and by_id["st-gpt2-s0"].owns_pretrain
    jobs = plan_jobs(by_id["st-clf-s0"].exp, ["0", "1"])
    assert [(j.name, j.requires) for j in jobs] == [("classifier", ["st-gpt2-s0/pretrain"])]
    assert [j.name for j in plan_jobs(by_id["st-gpt2-s0"].exp, ["0", "1"])] == ["pretrain", "class-0", "class-1"]
    # The wrapper waits for the other run's job by RUN/JOB.
    assert "--requires st-gpt2-s0/pretrain" in job_command(
        "python3", "/w/runs/st-clf-s0", "/w/code/h", jobs[0], backends.get("tmux")
    )
    # --only clf brings the runs that train its pretrain along, first.
    chosen = running.with_owners(study, studies.only(study, ["clf"]), project)
    assert [r.run_id for r in chosen] == ["st-gpt2-s0", "st-gpt2-s1", "st-clf-s0", "st-clf-s1"]


def test_different_pretraining_is_not_shared(project):
    write_study(
        project, {**BASE, "members": {"a": {"model.kind": "ar"}, "b": {"model.kind": "ar", "pretrain.steps": 7}}}
    )
    study = studies.load(project, "st")
    assert all(r.owns_pretrain for r in study.runs)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"members": {"a": {"data.seed": 3}}}, "key 'members.a.data.seed': members may not change the data"),
        ({"members": {"a": {"train.seed": 3}}}, "key 'members.a.train.seed': the study's `seeds` set the seeds"),
        ({"members": {"a": {"model.kind": "gpt"}}}, "member 'a' (seed 0): key 'model.kind': expected one of"),
        ({"members": {"a": {"model.nlayer": 2}}}, "unknown key 'model.nlayer'"),
        ({"members": {"a b": {}}}, "key 'members': illegal member name 'a b'"),
        ({"members": {}}, "key 'members': required"),
        ({"seeds": [0, 0]}, "key 'seeds': a seed is listed twice"),
        ({"seeds": "0"}, "key 'seeds': expected a list of integers >= 0"),
        ({"base": None}, "key 'base': required"),
        ({"colour": 1}, "key 'colour': unknown key"),
        ({"ensembles": {"e": ["gpt2"]}}, "key 'ensembles.e': expected a list of two or more distinct members"),
        ({"ensembles": {"e": ["gpt2", "nope"]}}, "key 'ensembles.e': no member named 'nope'"),
        ({"ensembles": {"gpt2": ["gpt2", "mdlm"]}}, "key 'ensembles.gpt2': already the name of a member"),
        ({"members": {"m" * 60: {}}}, "longer than 64 characters"),
    ],
)
def test_bad_study_configs_name_file_and_key(project, change, message):
    path = write_study(project, {**BASE, **change})
    with pytest.raises(OrchError) as err:
        studies.load(project, "st")
    assert err.value.code == ExitCode.CONFIG
    assert str(path) in err.value.message and message in err.value.message, err.value.message


def test_a_member_that_would_score_another_test_set_is_refused(project):
    # A member cannot set data.* itself; an override that moves the data another way (the
    # base experiment's name is not data) is still compared: here the data differ by class names.
    path = write_study(project, {**BASE, "members": {"a": {}, "b": {"eval.bands": "poc"}}})
    study = studies.load(project, "st")
    next(r for r in study.runs if r.member == "b").exp.data.seed = 5
    with pytest.raises(OrchError, match=r"member 'b' would score another test set than 'a' \(data.seed: 5 vs 0\)"):
        studies._check_same_test_set(study, str(path))


def test_unknown_study_lists_the_known_ones(project):
    write_study(project, BASE, name="known")
    with pytest.raises(OrchError) as err:
        studies.load(project, "nope")
    assert "no study 'nope'" in err.value.message and "known" in (err.value.hint or "")


def test_record_refuses_a_study_changed_since_its_runs_were_launched(project):
    write_study(project, BASE)
    study = studies.load(project, "st")
    doc = running.save_record(project, study)
    assert [r["run_id"] for r in doc["runs"]][:2] == ["st-gpt2-s0", "st-gpt2-s1"]
    assert json.loads(running.record_path(project, "st").read_text())["members"]["mdlm"] == {"model.kind": "mdlm"}
    (project.runs / "st-gpt2-s0").mkdir(parents=True)  # launched
    write_study(project, {**BASE, "set": {**BASE["set"], "train.steps": 5}})
    changed = studies.load(project, "st")
    said = r"changed since its runs were launched: "
    said += r"set: train.steps \(not set\) -> 5 would change launched run st-gpt2-s0\b"
    with pytest.raises(OrchError, match=said):
        running.save_record(project, changed)
    # the dry run says what the launch would: not "would launch now"
    with pytest.raises(OrchError, match=said) as err:
        running.preview(project, changed, changed.runs)
    assert err.value.code == ExitCode.RUN_STATE


def test_a_run_cannot_be_named_like_the_studies_folder(project):
    with pytest.raises(OrchError, match="runs/studies/ holds the studies"):
        project.run_dir("studies")


def test_config_signature_ignores_seeds_and_paths():
    a = {"name": "x", "data": {"path": "/h/a"}, "train": {"seed": 1, "steps": 5}, "pretrain": {"from_run": "r"}}
    b = {"name": "y", "data": {"path": "/h/b"}, "train": {"seed": 2, "steps": 5}, "pretrain": {"from_run": ""}}
    assert running.config_signature(a) == running.config_signature(b)
    # a study's config leaves the classes to the data; the run.yaml it launched lists them
    a["data"]["classes"], b["data"]["classes"] = [], ["0", "1"]
    assert running.config_signature(a) == running.config_signature(b)
    b["train"]["steps"] = 6
    assert running.config_signature(a) != running.config_signature(b)


def test_the_dry_runs_table_keeps_its_columns_with_a_long_member_name(project):
    long_name = "simple-diffusion-stratified-t"
    write_study(project, {**BASE, "members": {"gpt2": {"model.kind": "ar"}, long_name: {"model.kind": "mdlm"}}})
    study = studies.load(project, "st")
    header, *rows = running.preview(project, study, study.runs)[1:-1]
    # every column starts where the header's does (the seed, right-aligned, ends where it does)
    for column in ("member", "jobs", "pretrain", "estimate"):
        at = header.index(column)
        assert all(row[at - 2 : at] == "  " and row[at] != " " for row in rows), (column, header, rows)
    end = header.index("seed") + len("seed")
    assert all(row[end - 1].isdigit() and row[end : end + 2] == "  " for row in rows), (header, rows)
    assert any(long_name in row for row in rows)
