"""Load labelled and unlabelled texts and make the run's train/validation/test split.

Standard library only (``datasets`` is imported lazily for ``source: hf``), so the
controller could use it too.  Every job of a run calls ``load_splits`` on the same
file with the same seed and must get the same split: membership is decided by a hash
of (seed, normalised text), never by Python's per-process ``hash`` or by file order.
Hashing the text, not its id, puts every copy of a text on the same side: the IMDB train
file holds 94 texts twice or more, and a split by id left 38 of its 5,000 test texts with
a copy in training (see ``text_key`` and docs/DATA.md).

Labels are always strings ("0", "1", "pos"...), whatever type the file holds.
"""

from __future__ import annotations

import csv
import gzip
import html
import io
import json
import os
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

from remote.files import stable_seed
from remote.spec import DataSpec


class DataError(ValueError):
    """The data cannot be used as configured: names the file and, where known, the line."""


@dataclass(frozen=True)
class Example:
    id: str
    text: str
    label: Optional[str]  # None for unlabelled texts


@dataclass
class Splits:
    train: List[Example]
    val: List[Example]
    test: List[Example]
    classes: List[str]
    # How the split treated copies of one text (see ``text_key``): the manifest's "data".
    duplicates: Dict[str, int] = field(default_factory=dict)

    def train_of(self, label: str) -> List[Example]:
        return [e for e in self.train if e.label == label]

    def val_of(self, label: str) -> List[Example]:
        return [e for e in self.val if e.label == label]


# ---------------------------------------------------------------- text clean-up

_BR = re.compile(r"<\s*br\s*/?\s*>", re.IGNORECASE)
# A tag starts with a letter (or "/" + letter): "a < b" and "<3" are left alone.
_TAG = re.compile(r"</?[A-Za-z][^<>]*>")


def clean_html(text: str) -> str:
    """IMDB-style markup: ``<br />`` becomes a newline, other tags go, entities decode."""
    text = _BR.sub("\n", text)
    text = _TAG.sub("", text)
    return html.unescape(text)


# ---------------------------------------------------------------- file readers


def detect_format(path: str, fmt: str = "auto") -> str:
    if fmt in ("jsonl", "csv", "tsv"):
        return fmt
    if fmt != "auto":
        raise DataError(f"data.format: expected auto, jsonl, csv or tsv, got {fmt!r}")
    name = path[:-3] if path.endswith(".gz") else path
    ext = os.path.splitext(name)[1].lower()
    if ext in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if ext == ".csv":
        return "csv"
    if ext == ".tsv":
        return "tsv"
    # Unknown extension: a JSONL file starts with "{".
    with _open_binary(path) as f:
        head = f.read(4096).lstrip()
    return "jsonl" if head.startswith(b"{") else "csv"


def _open_binary(path: str):
    if not os.path.isfile(path):
        raise DataError(f"{path}: data file not found")
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def label_str(value: object) -> Optional[str]:
    """A label as the string that names its class: plain ``str()`` (0 -> "0"), exactly as
    the controller's label scan does, so both sides agree on the class names."""
    if value is None or isinstance(value, (dict, list)):
        return None
    return str(value)


def _make_example(
    row: Dict, where: str, fallback_id: str, fields: Tuple[str, str, str], need_label: bool, clean: bool
) -> Example:
    text_field, label_field, id_field = fields
    if text_field not in row:
        raise DataError(f"{where}: missing field '{text_field}' (fields here: {', '.join(map(str, row))})")
    text = row[text_field]
    if not isinstance(text, str):
        raise DataError(f"{where}: field '{text_field}' is not a string: {text!r:.60}")
    label = None
    if need_label:
        if label_field not in row:
            raise DataError(f"{where}: missing field '{label_field}' (fields here: {', '.join(map(str, row))})")
        label = label_str(row[label_field])
        if label is None or label == "":
            raise DataError(f"{where}: field '{label_field}' is empty or not a scalar: {row[label_field]!r:.60}")
    raw_id = row.get(id_field)
    ex_id = fallback_id if raw_id is None or raw_id == "" else str(raw_id)
    return Example(ex_id, clean_html(text) if clean else text, label)


def _read_jsonl(path: str, fields, need_label: bool, clean: bool) -> Iterator[Example]:
    base = os.path.basename(path)
    with _open_binary(path) as f:
        lineno = 0
        while True:
            try:
                raw = f.readline()
            except (OSError, EOFError) as e:  # truncated / corrupt gzip
                raise DataError(f"{path}:{lineno + 1}: cannot read ({e})") from None
            if not raw:
                break
            lineno += 1
            if not raw.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                # utf-8-sig on the first line: an editor's (or an export's) byte-order mark
                row = json.loads(raw.decode("utf-8-sig" if lineno == 1 else "utf-8").rstrip("\r\n"))
            except UnicodeDecodeError as e:
                raise DataError(f"{where}: not UTF-8 ({e.reason})") from None
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: not valid JSON ({e.msg}, column {e.colno})") from None
            if not isinstance(row, dict):
                raise DataError(f"{where}: expected a JSON object, got {type(row).__name__}")
            yield _make_example(row, where, f"{base}:{lineno}", fields, need_label, clean)


def _read_csv(path: str, fields, need_label: bool, clean: bool, delimiter: str) -> Iterator[Example]:
    base = os.path.basename(path)
    csv.field_size_limit(1 << 30)  # reviews can be long; the default 128 KiB limit is not
    with _open_binary(path) as fb:
        # utf-8-sig: spreadsheet "CSV UTF-8" exports start with a byte-order mark.
        f = io.TextIOWrapper(fb, encoding="utf-8-sig", newline="")
        reader = csv.reader(f, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        except (csv.Error, UnicodeDecodeError) as e:
            raise DataError(f"{path}:1: cannot parse the CSV header ({e})") from None
        need = [fields[0]] + ([fields[1]] if need_label else [])
        for name in need:
            if name not in header:
                raise DataError(f"{path}:1: missing column '{name}' (columns: {', '.join(header)})")
        start = reader.line_num + 1  # a quoted field may span lines: report where the row starts
        while True:
            try:
                values = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError) as e:
                raise DataError(f"{path}:{start}: cannot parse the CSV row ({e})") from None
            where = f"{path}:{start}"
            lineno, start = start, reader.line_num + 1
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) != len(header):
                raise DataError(f"{where}: {len(values)} fields, the header has {len(header)}")
            yield _make_example(dict(zip(header, values)), where, f"{base}:{lineno}", fields, need_label, clean)


def read_file(path: str, spec: DataSpec, need_label: bool = True) -> List[Example]:
    """All texts of one JSONL/CSV/TSV file (optionally gzipped), in file order."""
    fields = (spec.text_field, spec.label_field, spec.id_field)
    fmt = detect_format(path, spec.format)
    if fmt == "jsonl":
        rows = list(_read_jsonl(path, fields, need_label, spec.clean_html))
    else:
        rows = list(_read_csv(path, fields, need_label, spec.clean_html, "\t" if fmt == "tsv" else ","))
    rows = _drop_empty(rows, path)
    if not rows:
        raise DataError(f"{path}: no texts in the file")
    _check_unique_ids(rows, path)
    return rows


def _drop_empty(rows: List[Example], where: str) -> List[Example]:
    """Texts that are empty (or only markup) have no tokens to score: leave them out, say so."""
    kept = [r for r in rows if r.text.strip()]
    if len(kept) < len(rows):
        sys.stderr.write(
            f"data: {where}: skipped {len(rows) - len(kept)} empty text(s)"
            f" (e.g. id {next(r.id for r in rows if not r.text.strip())!r})\n"
        )
    return kept


def read_hf(name: str, split: str, spec: DataSpec, need_label: bool = True) -> List[Example]:
    """A Hugging Face dataset split (the host downloads it; needs internet the first time)."""
    try:
        import datasets  # lazy: only hosts using source=hf need it
    except ImportError:
        raise DataError(
            "data.source is 'hf' but the `datasets` package is not installed on this host (pip install datasets)"
        ) from None
    try:
        ds = datasets.load_dataset(name, split=split)
    except Exception as e:  # network, unknown name or split: all user-fixable
        raise DataError(f"cannot load Hugging Face dataset {name!r} split {split!r}: {e}") from None
    fields = (spec.text_field, spec.label_field, spec.id_field)
    rows = [
        _make_example(row, f"{name}[{split}] row {i}", f"{name}/{split}:{i}", fields, need_label, spec.clean_html)
        for i, row in enumerate(ds)
    ]
    rows = _drop_empty(rows, f"{name}[{split}]")
    if not rows:
        raise DataError(f"{name}[{split}]: no texts")
    _check_unique_ids(rows, f"{name}[{split}]")
    return rows


def _check_unique_ids(rows: List[Example], where: str) -> None:
    seen = set()
    for e in rows:
        if e.id in seen:
            raise DataError(
                f"{where}: duplicate id {e.id!r} (ids key the scores; set data.id_field"
                " to a unique field or remove it to use <file>:<line>)"
            )
        seen.add(e.id)


# ---------------------------------------------------------------- splitting


def _rank(seed: int, salt: str, ex: Example) -> int:
    return stable_seed(seed, salt, ex.id)


def text_key(text: str) -> str:
    """What makes two texts the same text: the text (after data.clean_html, where set) with
    every run of whitespace made one space and none at either end.  Case and punctuation count."""
    return " ".join(text.split())


Keys = Dict[Example, str]


def keys_of(rows: List[Example], known: Optional[Keys] = None) -> Keys:
    """Each text's ``text_key``, computed once (on IMDB's 25k reviews a pass costs ~1 s)."""
    known = known if known is not None else {}
    return {e: known[e] if e in known else text_key(e.text) for e in rows}


def conflicting(rows: List[Example], keys: Keys) -> set:
    """The text keys that occur with two or more different labels."""
    labels: Dict[str, set] = defaultdict(set)
    for e in rows:
        labels[keys[e]].add(e.label)
    return {k for k, seen in labels.items() if len(seen) > 1}


def stratified_split(
    rows: List[Example], fraction: float, seed: int, salt: str, keys: Optional[Keys] = None
) -> Tuple[List[Example], List[Example]]:
    """(rest, held_out): about round(n_c * fraction) texts of each class c held out.

    Copies of one text (same ``text_key``) go to the same side: the texts are ranked by a
    hash of (seed, salt, text key) and whole groups of copies are held out, in rank order,
    until round(n_c * fraction) are (the last group may take it a few over).  A text that
    occurs under two different labels is never held out: its copies all stay in the rest
    (a test on it could not be right under both labels).  The split depends only on the
    seed and the texts, so it is the same in every job and whatever the file's order.
    """
    if fraction <= 0:
        return list(rows), []
    held = set()
    keys = keys_of(rows, keys)
    mixed = conflicting(rows, keys)
    for label in {e.label for e in rows}:
        members = [e for e in rows if e.label == label]
        groups: Dict[str, List[Example]] = defaultdict(list)
        for e in members:
            key = keys[e]
            if key not in mixed:
                groups[key].append(e)
        n = int(len(members) * fraction + 0.5)  # round half up (round() would go to even)
        n = min(n, len(members) - 1) if len(members) > 1 else 0  # keep at least one on each side
        taken = 0
        for key in sorted(groups, key=lambda k: stable_seed(seed, salt, k)):
            if taken >= n:
                break
            if taken + len(groups[key]) > len(members) - 1:
                continue  # would leave the class nothing on the other side
            held.update(e.id for e in groups[key])
            taken += len(groups[key])
    return [e for e in rows if e.id not in held], [e for e in rows if e.id in held]


def duplicate_facts(rows: List[Example], keys: Keys) -> Dict[str, int]:
    """How many labelled texts are copies of another (folded onto one side of every split),
    and how many occur under two labels (kept out of the test and validation splits)."""
    count: Dict[str, int] = defaultdict(int)
    for e in rows:
        count[keys[e]] += 1
    mixed = conflicting(rows, keys)
    return {
        "duplicate_texts": sum(c - 1 for c in count.values()),
        "conflicting_label_texts": sum(count[k] for k in mixed),
    }


def cap_per_class(rows: List[Example], cap: int, seed: int, salt: str) -> List[Example]:
    if cap <= 0:
        return list(rows)
    keep = set()
    for label in {e.label for e in rows}:
        members = sorted((e for e in rows if e.label == label), key=lambda e: _rank(seed, salt, e))
        keep.update(e.id for e in members[:cap])
    return [e for e in rows if e.id in keep]


def cap_stratified(rows: List[Example], cap: int, seed: int, salt: str) -> List[Example]:
    """At most ``cap`` texts with the class proportions kept (to within one text)."""
    if cap <= 0 or len(rows) <= cap:
        return list(rows)
    # Give each text its quantile within its class, then take the lowest quantiles:
    # every class contributes in proportion to its size.
    position: Dict[str, float] = {}
    for label in {e.label for e in rows}:
        members = sorted((e for e in rows if e.label == label), key=lambda e: _rank(seed, salt, e))
        for i, e in enumerate(members):
            position[e.id] = (i + 0.5) / len(members)
    chosen = sorted(rows, key=lambda e: (position[e.id], _rank(seed, salt + "/tie", e)))[:cap]
    keep = {e.id for e in chosen}
    return [e for e in rows if e.id in keep]


def dataset_name(path: str, source: str = "file") -> str:
    """The name a data path gives a data set: a HF name's last part, the folder of a file
    named train/test/data..., else the file's name without its extensions (and without
    the sha256 prefix a staged copy carries)."""
    if source == "hf":
        return path.rstrip("/").rsplit("/", 1)[-1].lower()
    name = os.path.basename(path)
    folder = os.path.basename(os.path.dirname(path))
    stem = name.split(".")[0].lower()
    if len(stem) > 17 and stem[16] == "-" and all(c in "0123456789abcdef" for c in stem[:16]):
        stem = stem[17:]  # <workdir>/data/<sha256[:16]>-<name>: a staged copy
    if stem in ("train", "test", "data", "labelled", "labeled", "all") and folder:
        return folder.lower()
    return stem


def natural_key(label: str):
    return (0, int(label), "") if label.lstrip("-").isdigit() else (1, 0, label)


def load_splits(spec: DataSpec, log=print) -> Splits:
    """The run's labelled data: train / val / test and the ordered list of classes."""
    given_test = bool(spec.test_path) or (spec.source == "hf" and bool(spec.hf_test_split))
    keys: Keys = {}  # each text's key, computed once
    if spec.source == "hf":
        labelled = read_hf(spec.path, spec.hf_train_split, spec)
        if spec.test_path:
            test = read_file(spec.test_path, spec)
        elif spec.hf_test_split:
            test = read_hf(spec.path, spec.hf_test_split, spec)
        else:
            keys = keys_of(labelled)
            labelled, test = stratified_split(labelled, spec.test_fraction, spec.seed, "test", keys)
    else:
        labelled = read_file(spec.path, spec)
        if spec.test_path:
            test = read_file(spec.test_path, spec)
        else:
            if not 0 < spec.test_fraction < 1:
                raise DataError(
                    f"data.test_fraction must be in (0, 1) when data.test_path is empty, got {spec.test_fraction}"
                )
            keys = keys_of(labelled)
            labelled, test = stratified_split(labelled, spec.test_fraction, spec.seed, "test", keys)
    keys = keys_of(labelled + test, keys)
    facts = duplicate_facts(labelled + test, keys)
    if given_test:
        # A test file of its own cannot be split by text: its copies leave the training side.
        labelled, facts["train_copies_of_test_dropped"] = drop_copies(labelled, test, keys)
        if facts["train_copies_of_test_dropped"]:
            log(f"data: dropped {facts['train_copies_of_test_dropped']} training texts that are copies of test texts")
    train, val = stratified_split(labelled, spec.val_fraction, spec.seed, "val", keys)

    seen = sorted({e.label for e in train}, key=natural_key)
    classes = list(spec.classes) if spec.classes else seen
    missing = [c for c in classes if c not in seen]
    if missing:
        raise DataError(
            f"data.classes: no training texts with label {', '.join(map(repr, missing))}"
            f" (labels in the training data: {', '.join(seen)})"
        )
    if len(classes) < 2:
        raise DataError(f"need at least 2 classes, found {classes} in {spec.path}")
    wanted = set(classes)
    dropped = sum(e.label not in wanted for e in train + val + test)
    if dropped:
        log(f"data: dropping {dropped} texts whose label is not one of data.classes")
    train = [e for e in train if e.label in wanted]
    val = [e for e in val if e.label in wanted]
    test = [e for e in test if e.label in wanted]

    train = cap_per_class(train, spec.max_per_class, spec.seed, "cap")
    test = cap_stratified(test, spec.max_test, spec.seed, "max_test")
    if not test:
        raise DataError(f"{spec.test_path or spec.path}: no test texts (check data.test_fraction / test_path)")
    return Splits(train=train, val=val, test=test, classes=classes, duplicates=facts)


def drop_copies(rows: List[Example], of: List[Example], keys: Optional[Keys] = None) -> Tuple[List[Example], int]:
    """``rows`` without the texts whose ``text_key`` is one of ``of``'s, and how many went."""
    keys = keys or {}
    gone = {keys[e] if e in keys else text_key(e.text) for e in of}
    kept = [e for e in rows if (keys[e] if e in keys else text_key(e.text)) not in gone]
    return kept, len(rows) - len(kept)


def load_unlabelled(spec: DataSpec, test: Optional[List[Example]] = None) -> Tuple[List[Example], int]:
    """Texts for the pretrain stage (labels, if the file has any, are ignored), without
    those that are copies of a test text (``test``, else the run's own test split), and
    how many copies were dropped: the pretrained model must not have read a test text."""
    if spec.unlabelled_path:
        rows = read_file(spec.unlabelled_path, spec, need_label=False)
    elif spec.source == "hf":
        rows = read_hf(spec.path, spec.hf_unlabelled_split, spec, need_label=False)
    else:
        raise DataError("data.unlabelled_path is empty: the pretrain stage has no texts")
    rows = [Example(e.id, e.text, None) for e in rows]
    rows, dropped = drop_copies(rows, load_splits(spec, log=lambda _: None).test if test is None else test)
    if spec.max_unlabelled > 0 and len(rows) > spec.max_unlabelled:
        keep = {e.id for e in sorted(rows, key=lambda e: _rank(spec.seed, "unlabelled", e))[: spec.max_unlabelled]}
        rows = [e for e in rows if e.id in keep]
    return rows, dropped
