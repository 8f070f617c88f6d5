"""Every experiment config the project ships validates (issue 13: the new ones too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import experiments
from orchestrator.config.project import Project

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.stem for p in (ROOT / "configs" / "experiments").glob("*.yaml"))


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_experiment_validates(name):
    exp, raw = experiments.load(Project(ROOT), name)
    assert exp.name == name and raw["name"] == name


def test_the_cpu_imdb_configs_are_sized_for_two_cores_and_use_the_full_data():
    for kind in ("ar", "mdlm"):
        exp, _ = experiments.load(Project(ROOT), f"imdb-cpu-{kind}")
        assert exp.model.kind == kind and exp.host == "local"
        assert exp.data.path == "data/imdb/train.jsonl.gz" and exp.data.unlabelled_path == "data/imdb/unsup.jsonl.gz"
        assert exp.data.test_fraction == 0.2 and exp.data.max_per_class == 0 and exp.data.max_test == 0
        assert exp.pretrain.enabled and exp.pretrain.cpu_threads == 2 and exp.train.cpu_threads == 1
    assert experiments.load(Project(ROOT), "imdb-cpu-mdlm")[0].score.is_adaptive
