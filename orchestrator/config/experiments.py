"""Experiment configs: configs/experiments/NAME.yaml -> a validated remote.spec.Experiment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import yaml

from orchestrator.config.project import Project
from orchestrator.config.yamlfile import read_mapping
from orchestrator.errors import ExitCode, OrchError
from remote.spec import Experiment, SpecError, load_experiment, set_dotted


def is_path(arg: str) -> bool:
    """`orch run configs/experiments/x.yaml` names a file; `orch run x` names an experiment."""
    return "/" in arg or arg.endswith((".yaml", ".yml")) or (os.sep != "/" and os.sep in arg)


def experiment_path(project: Project, name: str) -> Path:
    """The YAML file of an experiment given by name (configs/experiments/NAME.yaml) or by
    path (relative to the current folder); a message names it as the user gave it."""
    known = sorted(p.stem for p in (project.configs / "experiments").glob("*.yaml"))
    hint = "known experiments: " + (", ".join(known) or "none")
    if is_path(name):
        candidate = Path(name).expanduser()
        if candidate.is_file():
            return candidate.resolve()
        what = "is a folder, not a YAML file" if candidate.is_dir() else "does not exist"
        raise OrchError(
            f"experiment file {name} {what}"
            + (f" (looked for {candidate.resolve()})" if not candidate.is_absolute() else ""),
            ExitCode.CONFIG,
            hint=hint + "; a name runs configs/experiments/NAME.yaml",
        )
    path = project.configs / "experiments" / f"{name}.yaml"
    if not path.is_file():
        raise OrchError(f"no experiment {name!r} ({path} does not exist)", ExitCode.CONFIG, hint=hint)
    return path


def names_experiment(arg: str, recorded: object, run_id: str) -> bool:
    """Whether `orch run ARG --resume RUN` names the run's experiment: its name, the run
    id itself, or a path to a file of that name."""
    if arg in (recorded, run_id):
        return True
    return is_path(arg) and Path(arg).stem == recorded


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
            if key == "name":  # run.yaml records it, and `--resume` checks the run against it
                raise OrchError(
                    f"--set name={value}: an experiment's name comes from its file ({path.name}); "
                    "--set cannot change it",
                    ExitCode.CONFIG,
                    hint=f"copy {path} to a file named as you want the experiment called",
                )
            set_dotted(raw, key, value)
        if overrides:
            where += " (with --set " + " ".join(overrides) + ")"
        return load_experiment(raw, where), raw
    except SpecError as exc:
        raise OrchError(str(exc), ExitCode.CONFIG) from None
