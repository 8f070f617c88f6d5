"""Fixtures shared by unit tests (helpers live in tests/*.py modules, not here)."""

import pytest
import studyfiles


@pytest.fixture
def project(tmp_path):
    """A project with a copy of the shipped configs (tests/studyfiles.py)."""
    return studyfiles.configs_project(tmp_path)
