"""Restoring a study run's deleted folder from its host (runs/restore.py), host `local`:
the host's run.yaml is taken only as launched (sha256, run id, snapshot), never through a
link or past its size cap, and only runs/RUN/run.yaml and local.json are written."""

import hashlib
import json
import re

import pytest
import yaml

from orchestrator.config.hosts import HostConfig
from orchestrator.config.project import Project
from orchestrator.errors import OrchError
from orchestrator.runs import restore as restoring
from orchestrator.transport.base import LocalTransport

RUN = "st-a-s1"


@pytest.fixture
def bed(tmp_path):
    project = Project(tmp_path / "p")
    (project.root / "configs").mkdir(parents=True)
    workdir = tmp_path / "host"
    host_run = workdir / "runs" / RUN
    host_run.mkdir(parents=True)
    text = yaml.safe_dump(
        {"run_id": RUN, "code_hash": "c" * 16, "experiment": {"name": "smoke"}, "jobs": [{"name": "class-0"}]}
    )
    (host_run / "run.yaml").write_text(text)
    facts = {
        "host": "local",
        "workdir": str(workdir),
        "code_hash": "c" * 16,
        "backend": "tmux",
        "config_sha256": hashlib.sha256(text.encode()).hexdigest(),
        "planned_jobs": [{"name": "class-0", "gpu": ""}],
    }
    record = {"name": "st", "runs": [{"member": "a", "seed": 1, "run_id": RUN, "launched": facts}]}
    transport = LocalTransport(HostConfig(name="local", workdir=str(workdir)))
    return project, transport, record, host_run / "run.yaml"


def test_the_launched_run_yaml_and_the_recorded_facts_make_the_folder_again(bed):
    project, transport, record, host_yaml = bed
    assert restoring.restore(project, transport, record, record["runs"][0]) is True
    run_dir = project.runs / RUN
    assert (run_dir / "run.yaml").read_bytes() == host_yaml.read_bytes()
    local = json.loads((run_dir / "local.json").read_text())
    assert local["run_id"] == RUN and local["workdir"] == record["runs"][0]["launched"]["workdir"]
    assert local["study"] == {"name": "st", "member": "a", "seed": 1} and local["state"] == "launched"
    assert sorted(p.name for p in run_dir.iterdir()) == ["local.json", "run.yaml"]
    assert restoring.restore(project, transport, record, record["runs"][0]) is False  # nothing left to do


@pytest.mark.parametrize(
    "spoil, said",
    [
        (lambda p: p.write_text(p.read_text() + "# edited\n"), "is not the run.yaml launched (its sha256"),
        (lambda p: (p.unlink(), p.symlink_to(p.parent / "elsewhere.yaml")), "is not a regular file (a link?)"),
        (lambda p: p.unlink(), "has no"),
    ],
)
def test_a_host_copy_that_is_not_the_launched_one_is_refused_and_nothing_is_written(bed, spoil, said):
    project, transport, record, host_yaml = bed
    (host_yaml.parent / "elsewhere.yaml").write_text(host_yaml.read_text())
    spoil(host_yaml)
    with pytest.raises(OrchError, match=re.escape(said)):
        restoring.restore(project, transport, record, record["runs"][0])
    assert not (project.runs / RUN).exists()


def test_without_a_recorded_sha256_nothing_is_restored(bed):
    """A study.json older than the sha256 of run.yaml: the host's file, intact as it may be,
    cannot be told from another run's of the same shape, so nothing is written and the
    message says how to recover by hand."""
    project, transport, record, _ = bed
    del record["runs"][0]["launched"]["config_sha256"]
    with pytest.raises(OrchError) as caught:
        restoring.restore(project, transport, record, record["runs"][0])
    assert "records no sha256 of run st-a-s1's run.yaml" in caught.value.message
    assert "not restored" in caught.value.message and "back from a backup" in caught.value.hint
    assert "orch study resume st" in caught.value.hint
    assert not (project.runs / RUN).exists()


def test_a_recorded_sha256_of_another_runs_run_yaml_is_refused(bed):
    """The sha256 matches (study.json edited to another run's), but the file names another run."""
    project, transport, record, host_yaml = bed
    host_yaml.write_text(host_yaml.read_text().replace(RUN, "st-a-s0"))
    record["runs"][0]["launched"]["config_sha256"] = hashlib.sha256(host_yaml.read_bytes()).hexdigest()
    with pytest.raises(OrchError, match="is not run st-a-s1's run.yaml"):
        restoring.restore(project, transport, record, record["runs"][0])
    assert not (project.runs / RUN / "local.json").exists()


def test_a_run_yaml_over_the_cap_is_refused(bed, monkeypatch):
    project, transport, record, _ = bed
    monkeypatch.setattr(restoring, "MAX_RUN_YAML", 16)
    with pytest.raises(OrchError, match="over the 0 MB of any run.yaml"):
        restoring.restore(project, transport, record, record["runs"][0])


def test_a_run_yaml_of_the_users_here_is_never_overwritten(bed):
    project, transport, record, _ = bed
    mine = project.runs / RUN / "run.yaml"
    mine.parent.mkdir(parents=True)
    mine.write_text("mine\n")
    with pytest.raises(OrchError, match="is here without local.json and is not the run.yaml"):
        restoring.restore(project, transport, record, record["runs"][0])
    assert mine.read_text() == "mine\n" and not (mine.parent / "local.json").exists()
