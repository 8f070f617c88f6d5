"""Read a YAML config file into a mapping, with errors that name the file."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Union

import yaml

from orchestrator.errors import ExitCode, OrchError


def read_mapping(path: Path, label: Union[str, Path, None] = None, text: Optional[str] = None) -> Dict:
    """PATH's mapping (TEXT: its contents, already read)."""
    label = label or path
    try:
        data = yaml.safe_load(path.read_text() if text is None else text) or {}
    except yaml.YAMLError as exc:
        raise OrchError(f"{label}: not valid YAML: {exc}", ExitCode.CONFIG) from None
    except OSError as exc:
        raise OrchError(f"{label}: cannot read: {exc.strerror}", ExitCode.CONFIG) from None
    except UnicodeDecodeError as exc:
        raise OrchError(
            f"{label}: not UTF-8 text (byte {exc.start}: {exc.object[exc.start : exc.start + 1]!r})",
            ExitCode.CONFIG,
            hint="a config file is YAML saved as UTF-8 text",
        ) from None
    if not isinstance(data, dict):
        raise OrchError(f"{label}: expected a mapping of keys at the top level", ExitCode.CONFIG)
    return data
