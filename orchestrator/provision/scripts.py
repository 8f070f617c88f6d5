"""The host-side scripts under bootstrap/: where they are found, and their text.

A project that carries its own bootstrap/ (the orch checkout itself, or a copy of it) uses
that one; otherwise orch's own, next to its package. The controller ships a script's text
to the host itself (uploaded for the steps, inline for the probe): the host needs no copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Optional, Sequence

from orchestrator.errors import ExitCode, OrchError

ORCH_SCRIPTS = Path(__file__).resolve().parents[2] / "bootstrap"


def scripts_dir(names: Sequence[str], project_root: Optional[Path] = None) -> Path:
    """The project's bootstrap/ when it has every one of `names`, else orch's own."""
    if project_root is not None:
        here = Path(project_root) / "bootstrap"
        if all((here / n).is_file() for n in names):
            return here
    return ORCH_SCRIPTS


def read_scripts(names: Sequence[str], project_root: Optional[Path] = None) -> Dict[str, str]:
    folder = scripts_dir(names, project_root)
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise OrchError(
            f"bootstrap scripts missing in {folder}: {', '.join(missing)}",
            ExitCode.CONFIG,
            hint="they ship with orch (its bootstrap/ folder): reinstall orch from its checkout, "
            "or copy that folder into the project",
        )
    return {n: (folder / n).read_text() for n in names}
