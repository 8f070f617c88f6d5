"""A project folder holding a copy of the shipped configs, and study files written into it:
what the unit tests of study configs, edits, primary comparisons and Ctrl-C start from."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from orchestrator.config.project import Project

REPO = Path(__file__).resolve().parents[1]


def configs_project(root: Path) -> Project:
    """A project in ROOT with the shipped configs (a copy: tests may edit them) and a remote/
    folder, which marks a project root."""
    shutil.copytree(REPO / "configs", root / "configs")
    (root / "remote").mkdir()
    return Project(root)


def write_study(project: Project, doc: dict, name: str = "st") -> Path:
    path = project.configs / "studies" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path
