"""Data staging: local data files go to <workdir>/data/<sha256[:16]>-<name>, once."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List

from orchestrator.config.project import control_char
from orchestrator.errors import ExitCode, OrchError
from remote.files import sha256_file
from remote.spec import DataSpec, Experiment

DATA_KEYS = ("path", "test_path", "unlabelled_path")


def local_data_files(exp: Experiment, root: Path) -> Dict[str, Path]:
    """data.<key> -> absolute local path, for the keys that name a file."""
    if exp.data.source != "file":
        return {}
    out = {}
    for key in DATA_KEYS:
        value = getattr(exp.data, key)
        if not value:
            continue
        path = Path(value).expanduser()
        path = path if path.is_absolute() else (root / path)
        if not path.is_file():
            raise OrchError(
                f"data.{key}: {value} does not exist (looked for {path})",
                ExitCode.CONFIG,
                hint=_missing_hint(path, root, key),
            )
        bad = control_char(path.name)
        if bad:
            # The staged name is <sha>-<file name> on the host, listed line by line.
            raise OrchError(
                f"data.{key}: the file name {path.name!r} contains a control character ({bad})",
                ExitCode.CONFIG,
                hint="rename the file to a name without newlines or tabs",
            )
        out[key] = path.resolve()
    return out


def _missing_hint(path: Path, root: Path, key: str) -> str:
    try:
        parts = path.resolve().relative_to(root.resolve()).parts
    except ValueError:
        parts = ()
    if len(parts) >= 2 and parts[0] == "data":
        from orchestrator.data.registry import KNOWN

        if parts[1] in KNOWN:
            return f"`orch data get {parts[1]}` downloads it (see docs/DATA.md)"
    return f"paths in an experiment are relative to the project folder; use --set data.{key}=FILE"


def staged_names(files: Dict[str, Path]) -> Dict[str, str]:
    """data.<key> -> where its file lives under the workdir: data/<sha256[:16]>-<name>
    (content-addressed: a file is sent once, whichever run needs it)."""
    return {key: f"data/{sha256_file(str(path))[:16]}-{path.name}" for key, path in files.items()}


def scan_labels(path: Path, spec: DataSpec) -> List[str]:
    """The classes of a local labelled file, read with the host's own loader (so both
    sides name classes identically) - and a malformed line is caught before launch."""
    from remote.data import DataError, natural_key, read_file

    try:
        rows = read_file(str(path), spec)
    except DataError as exc:
        raise OrchError(str(exc), ExitCode.DATA, hint=_data_hint(str(exc), spec)) from None
    return sorted({row.label for row in rows}, key=natural_key)


FEW_TRAIN = 10  # a class with fewer training texts than this gets a warning before launch


def check_splits(exp: Experiment, root: Path, classes: List[str]) -> List[str]:
    """Split the local data exactly as the jobs will (remote.data.load_splits, with the
    run's CLASSES) and refuse what would make every job fail on the host - no test texts,
    a class with no training texts - before anything is sent.  Returns warnings for what
    runs but measures little: a class with fewer than FEW_TRAIN training texts, or with no
    test texts (its recall is undefined and it leaves macro-F1)."""
    from dataclasses import replace

    from remote.data import DataError, load_splits

    files = local_data_files(exp, root)
    spec = replace(
        exp.data,
        path=str(files["path"]),
        test_path=str(files["test_path"]) if "test_path" in files else "",
        classes=list(classes),
    )
    try:
        splits = load_splits(spec, log=lambda _: None)
    except DataError as exc:
        raise OrchError(str(exc), ExitCode.DATA, hint=_data_hint(str(exc), spec)) from None
    warnings = []
    for c in splits.classes:
        train, test = len(splits.train_of(c)), sum(e.label == c for e in splits.test)
        if train < FEW_TRAIN or test == 0:
            warnings.append(
                f"class {c!r}: {train} training text{'' if train == 1 else 's'} and {test} test "
                f"text{'' if test == 1 else 's'} after the split: "
                + ("its model learns from almost nothing" if train < FEW_TRAIN else "nothing measures it")
            )
    return warnings


def _data_hint(message: str, spec: DataSpec) -> str:
    """How to fix what remote.data found: the message says where (file, or file:line)."""
    if "missing field" in message or "missing column" in message:
        return "set data.text_field / data.label_field to the file's field names"
    if "no test texts" in message:
        return "the split left no test texts: raise data.test_fraction, or give data.test_path"
    if "no training texts" in message:
        return "every text of that class went to the test or validation split: add texts, or lower the fractions"
    if "no texts" in message:
        return (
            f"the file holds no non-empty texts: write one labelled text per line, e.g. "
            f'{{"{spec.text_field}": "...", "{spec.label_field}": "pos"}} (or a CSV with a header row)'
        )
    if re.search(r":\d+: ", message):
        return "fix that line of the file"
    return "check the file (see data.format, data.text_field, data.label_field)"
