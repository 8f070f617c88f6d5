"""The data checks before launch (orchestrator/runs/staging.py): what would make every job
fail on the host is refused on the laptop, with the file and a fix."""

from __future__ import annotations

import json

import pytest


def test_the_jobs_split_is_checked_before_launch(tmp_path):
    """The controller splits the local data as the jobs will: no test texts is refused,
    a class with almost nothing to learn from is a warning."""
    from orchestrator.errors import ExitCode, OrchError
    from orchestrator.runs.staging import check_splits
    from remote.spec import Experiment

    def exp_for(lines):
        data = tmp_path / "d.jsonl"
        data.write_text("".join(json.dumps({"text": f"text {i}", "label": label}) + "\n" for i, label in lines))
        exp = Experiment()
        exp.data.path = str(data)
        return exp

    with pytest.raises(OrchError) as err:
        check_splits(exp_for([(i, i % 2) for i in range(3)]), tmp_path, ["0", "1"])
    assert err.value.code == ExitCode.DATA and "no test texts" in err.value.message
    assert "data.test_fraction" in err.value.hint
    lines = [(i, i % 2) for i in range(200)] + [(999, 2)]
    warnings = check_splits(exp_for(lines), tmp_path, ["0", "1", "2"])
    assert len(warnings) == 1 and warnings[0].startswith("class '2': ") and "learns from almost nothing" in warnings[0]
    assert check_splits(exp_for([(i, i % 2) for i in range(200)]), tmp_path, ["0", "1"]) == []


def test_data_of_one_class_is_a_data_error_and_one_class_asked_a_config_error(tmp_path):
    from orchestrator.errors import ExitCode, OrchError
    from orchestrator.runs.launch import classes_for
    from remote.spec import Experiment

    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"text": f"text {i}", "label": "pos"}) + "\n" for i in range(30)))
    exp = Experiment()
    exp.data.path = str(data)
    with pytest.raises(OrchError) as err:
        classes_for(exp, tmp_path)
    assert err.value.code == ExitCode.DATA and "at least 2 classes, got ['pos'] in " in err.value.message
    exp.data.classes = ["pos"]
    with pytest.raises(OrchError) as err:
        classes_for(exp, tmp_path)
    assert err.value.code == ExitCode.CONFIG
