"""Experiment configs: configs/experiments/NAME.yaml -> a validated remote.spec.Experiment."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import yaml

from remote.spec import Experiment, SpecError, load_experiment, set_dotted

from .errors import ExitCode, OrchError
from .project import Project
from .yamlfile import read_mapping


def experiment_path(project: Project, name: str) -> Path:
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate.resolve()
    path = project.configs / "experiments" / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in (project.configs / "experiments").glob("*.yaml"))
        raise OrchError(
            f"no experiment {name!r} ({path} does not exist)",
            ExitCode.CONFIG,
            hint="known experiments: " + (", ".join(known) or "none"),
        )
    return path


def parse_overrides(pairs: Sequence[str]) -> List[Tuple[str, object]]:
    """`--set key=value`; the value is read as YAML so numbers and booleans keep their type."""
    out = []
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise OrchError(f"--set {pair!r}: expected KEY=VALUE, e.g. --set train.steps=200", ExitCode.USAGE)
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if isinstance(value, str):
            try:  # YAML 1.1 reads "1e-3" as a string; a number is what anyone means
                value = float(value) if any(c.isdigit() for c in value) else value
            except ValueError:
                pass
        out.append((key.strip(), value))
    return out


def load(project: Project, name: str, overrides: Sequence[str] = ()) -> Tuple[Experiment, Dict]:
    """Return the validated experiment and the raw mapping it came from (after --set)."""
    path = experiment_path(project, name)
    raw = read_mapping(path)
    raw.setdefault("name", path.stem)
    where = str(path)
    try:
        for key, value in parse_overrides(overrides):
            set_dotted(raw, key, value)
        if overrides:
            where += " (with --set " + " ".join(overrides) + ")"
        return load_experiment(raw, where), raw
    except SpecError as exc:
        raise OrchError(str(exc), ExitCode.CONFIG)
