import pytest

from orchestrator.errors import OrchError
from orchestrator.project import check_name
from orchestrator.experiments import parse_overrides
from remote.spec import SpecError, load_experiment, set_dotted


@pytest.mark.parametrize("bad", ["", "-rf", "a b", "a;b", "$(x)", "a/b", "..", "a..b", "x" * 65, "`id`", "a\nb"])
def test_illegal_names_refused(bad):
    with pytest.raises(OrchError) as err:
        check_name("run", bad)
    assert "illegal run name" in err.value.message


def test_good_names():
    for good in ("smoke-20261126-101500", "neg", "class-0", "a.b_c"):
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
