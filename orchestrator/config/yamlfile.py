"""Read a YAML config file into a mapping, with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Union

import yaml

from orchestrator.errors import ExitCode, OrchError


def read_mapping(path: Path, label: Union[str, Path, None] = None) -> Dict:
    label = label or path
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise OrchError(f"{label}: not valid YAML: {exc}", ExitCode.CONFIG) from None
    except OSError as exc:
        raise OrchError(f"{label}: cannot read: {exc.strerror}", ExitCode.CONFIG) from None
    if not isinstance(data, dict):
        raise OrchError(f"{label}: expected a mapping of keys at the top level", ExitCode.CONFIG)
    return data
