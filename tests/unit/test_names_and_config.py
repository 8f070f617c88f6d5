import pytest

from orchestrator.config.experiments import parse_overrides
from orchestrator.config.project import check_name
from orchestrator.errors import OrchError
from remote.spec import SpecError, load_experiment, set_dotted


@pytest.mark.parametrize(
    "bad", ["", "-rf", "a b", "a;b", "$(x)", "a/b", "..", "exp.v2", "a:b", "x" * 65, "`id`", "a\nb"]
)
def test_illegal_names_refused(bad):
    with pytest.raises(OrchError) as err:
        check_name("run", bad)
    assert "illegal run name" in err.value.message


def test_good_names():
    for good in ("smoke-20261126-101500", "neg", "class-0", "a_b-C"):
        assert check_name("job", good) == good


def test_spec_errors_name_file_key_and_expectation():
    with pytest.raises(SpecError, match=r"f.yaml: key 'train.steps': expected an integer, got 'many'"):
        load_experiment({"data": {"path": "x"}, "train": {"steps": "many"}}, "f.yaml")
    with pytest.raises(SpecError, match=r"unknown key 'model.nlayer'"):
        load_experiment({"data": {"path": "x"}, "model": {"nlayer": 2}}, "f.yaml")
    with pytest.raises(SpecError, match=r"key 'model.kind': expected one of ar, mdlm, mlm-pll, classifier"):
        load_experiment({"data": {"path": "x"}, "model": {"kind": "gpt"}}, "f.yaml")


def test_overrides_keep_types():
    raw = {"data": {"path": "x"}}
    for key, value in parse_overrides(["train.steps=7", "model.kind=mdlm", "train.compile=true", "train.lr=1e-3"]):
        set_dotted(raw, key, value)
    exp = load_experiment(raw, "t")
    assert (exp.train.steps, exp.model.kind, exp.train.compile, exp.train.lr) == (7, "mdlm", True, 1e-3)
    with pytest.raises(OrchError):
        parse_overrides(["novalue"])


def test_default_names_are_made_safe_but_given_names_are_checked():
    from orchestrator.runs.plan import plan_jobs

    exp = load_experiment({"name": "imdb-v1.5", "data": {"path": "x"}}, "t")
    assert [j.name for j in plan_jobs(exp, ["0.0", "1.0"])] == ["class-0_0", "class-1_0"]
    exp = load_experiment({"data": {"path": "x", "class_names": {"0": "neg.v2", "1": "pos"}}}, "t")
    with pytest.raises(OrchError, match="not allowed"):
        plan_jobs(exp, ["0", "1"])


def test_new_run_ids_are_legal_and_unique(tmp_path):
    from orchestrator.config.project import Project
    from orchestrator.contract.records import new_run_id

    (tmp_path / "runs").mkdir()
    project = Project(tmp_path)
    exp = load_experiment({"name": "imdb v1.5", "data": {"path": "x"}}, "t")
    first = new_run_id(project, exp)
    assert first.startswith("imdb_v1_5-") and check_name("run", first)
    (tmp_path / "runs" / first).mkdir()
    assert new_run_id(project, exp) == first + "-2"


@pytest.mark.parametrize(
    "key,value,expected",
    [
        ("train.batch_size", 0, "expected an integer >= 1"),
        ("train.steps", -5, "expected an integer >= 1 (or set epochs)"),
        ("data.test_fraction", 1.5, "expected a number in (0, 1)"),
        ("score.mdlm_draws", 0, "expected an integer >= 1"),
        ("model.dropout", 1.0, "expected a number in [0, 1)"),
    ],
)
def test_out_of_range_numbers_refused_at_load(key, value, expected):
    raw = {"data": {"path": "x"}}
    set_dotted(raw, key, value)
    with pytest.raises(SpecError) as err:
        load_experiment(raw, "f.yaml")
    assert f"f.yaml: key '{key}': {expected}" in str(err.value)


def test_job_names_must_differ_ignoring_case():
    from orchestrator.runs.plan import plan_jobs

    exp = load_experiment({"data": {"path": "x", "class_names": {"0": "Neg", "1": "neg"}}}, "t")
    with pytest.raises(OrchError, match="ignoring case"):
        plan_jobs(exp, ["0", "1"])


def test_a_key_given_twice_in_a_config_file_is_refused(tmp_path):
    """YAML keeps the last of two equal keys silently: a config file may not have them."""
    from orchestrator.config.yamlfile import read_mapping
    from orchestrator.errors import ExitCode

    path = tmp_path / "exp.yaml"
    path.write_text("name: smoke\ntrain:\n  steps: 100\n  lr: 0.001\n  steps: 5\n")
    with pytest.raises(OrchError) as err:
        read_mapping(path)
    assert err.value.code == ExitCode.CONFIG and str(path) in err.value.message
    assert "key 'steps' is given twice (first on line 3)" in err.value.message and "line 5" in err.value.message
    # the same key in two different mappings is fine, and so are the shipped configs
    path.write_text("train:\n  steps: 1\npretrain:\n  steps: 2\n")
    assert read_mapping(path) == {"train": {"steps": 1}, "pretrain": {"steps": 2}}


def test_set_cannot_rename_the_experiment():
    """run.yaml records the name and `--resume` checks the run against it: a --set name=
    would make `orch run smoke --resume RUN` refuse the run it launched."""
    from pathlib import Path

    from orchestrator.config.experiments import load
    from orchestrator.config.project import Project
    from orchestrator.errors import ExitCode

    project = Project(Path(__file__).resolve().parents[2])
    with pytest.raises(OrchError) as err:
        load(project, "smoke", ["train.steps=3", "name=other"])
    assert err.value.code == ExitCode.CONFIG and "--set name=other" in err.value.message
    assert "smoke.yaml" in err.value.message and "copy" in err.value.hint
    assert load(project, "smoke", ["train.steps=3"])[0].name == "smoke"


def test_a_class_named_like_orchs_own_jobs_is_told_so():
    from orchestrator.errors import ExitCode
    from orchestrator.runs.plan import plan_jobs

    exp = load_experiment({"data": {"path": "x", "class_names": {"0": "Pretrain", "1": "pos"}}}, "t")
    with pytest.raises(OrchError) as err:
        plan_jobs(exp, ["0", "1"])
    assert err.value.code == ExitCode.CONFIG
    assert "class '0' maps to the job name 'Pretrain', which orch keeps for its pretraining job" in err.value.message
    assert "give class '0' another name" in err.value.hint
    exp = load_experiment({"data": {"path": "x", "class_names": {"0": "Pos", "1": "pos"}}}, "t")
    with pytest.raises(OrchError, match="two classes map to the job name 'pos'"):
        plan_jobs(exp, ["0", "1"])
