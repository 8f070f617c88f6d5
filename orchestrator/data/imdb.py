"""`orch data get imdb`: the Large Movie Review Dataset v1.0 (Maas et al., ACL 2011) as
the JSONL files the IMDB experiments read.

    data/downloads/aclImdb_v1.tar.gz   the official archive, sha256-verified (kept)
    data/imdb/train.jsonl.gz           25,000 labelled reviews, the official train split
    data/imdb/test.jsonl.gz            25,000 labelled reviews, the official test split
    data/imdb/unsup.jsonl.gz           50,000 unlabelled reviews (train/unsup)
    data/imdb/SOURCE.json              where they came from: URL, sha256, counts

One JSON object a line, in archive order by split, class (neg, pos) and review number:
{"id": "train/pos/0_9", "text": "...", "label": 1, "rating": 9} (label 0 = neg, rating
<= 4; 1 = pos, rating >= 7; unsup lines have no label or rating). The text is the file's,
unchanged (it still holds <br /> markup: the experiments set data.clean_html).

The archive is never unpacked to disk: its members are read from the tar stream after
every member has been checked against the release's layout (no absolute or ../ paths, no
links or devices, only the names the release has). See docs/DATA.md.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import tarfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from orchestrator import output
from orchestrator.data import download
from orchestrator.errors import ExitCode, OrchError

URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
ARCHIVE = "aclImdb_v1.tar.gz"
# The release's published checksum (the same in TensorFlow Datasets' and Julia MLDatasets'
# registries) and size (the server's Content-Length): see docs/DATA.md.
SHA256 = "c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe"
SIZE = 84125825
EXPECTED = {"train": 25000, "test": 25000, "unsup": 50000}

REVIEW = re.compile(r"aclImdb/(train|test)/(pos|neg|unsup)/(\d+)_(\d+)\.txt")
DIRS = re.compile(r"aclImdb(/(train|test)(/(pos|neg))?|/train/unsup)?/?")
OTHER_FILES = re.compile(
    r"aclImdb/(README|imdb\.vocab|imdbEr\.txt|(train|test)/labeledBow\.feat|train/unsupBow\.feat|"
    r"(train|test)/urls_(pos|neg)\.txt|train/urls_unsup\.txt)"
)
MAX_REVIEW_BYTES = 1 << 20  # the longest review is ~14 kB


class ArchiveError(Exception):
    """The archive is not the aclImdb v1 layout (or is unsafe to read)."""


def check_member(member: tarfile.TarInfo) -> Optional[Tuple[str, str, int, int]]:
    """Refuse anything the release does not hold; (split, class, number, rating) for a review."""
    name = member.name
    parts = name.split("/")
    if name.startswith("/") or ".." in parts or "\\" in name:
        raise ArchiveError(f"member {name!r} points outside the archive's folder")
    if member.issym() or member.islnk():
        raise ArchiveError(f"member {name!r} is a link (to {member.linkname!r}); the release has none")
    if member.isdir():
        if not DIRS.fullmatch(name):
            raise ArchiveError(f"unexpected folder {name!r}: not the aclImdb v1 layout")
        return None
    if not member.isreg():
        raise ArchiveError(f"member {name!r} is not a regular file")
    found = REVIEW.fullmatch(name)
    if found:
        split, label, number, rating = found.groups()
        if split == "test" and label == "unsup":
            raise ArchiveError(f"unexpected member {name!r}: the test split has no unsup reviews")
        if member.size > MAX_REVIEW_BYTES:
            raise ArchiveError(f"member {name!r} is {member.size} bytes: too big for a review")
        return split, label, int(number), int(rating)
    if OTHER_FILES.fullmatch(name):
        return None
    raise ArchiveError(f"unexpected member {name!r}: not the aclImdb v1 layout")


def read_reviews(archive: Path) -> Dict[str, List[dict]]:
    """split -> rows in archive order (class neg before pos, then review number)."""
    found: Dict[str, List[Tuple[Tuple[int, int], dict]]] = {"train": [], "test": [], "unsup": []}
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            for member in tar:  # streamed: each member is checked before its bytes are read
                review = check_member(member)
                if review is None:
                    continue
                split, label, number, rating = review
                handle = tar.extractfile(member)
                text = handle.read().decode("utf-8", errors="replace") if handle else ""
                key = f"{split}/{label}/{number}_{rating}"
                if label == "unsup":
                    found["unsup"].append(((0, number), {"id": key, "text": text}))
                else:
                    found[split].append(
                        (
                            (0 if label == "neg" else 1, number),
                            {"id": key, "text": text, "label": 0 if label == "neg" else 1, "rating": rating},
                        )
                    )
    except (tarfile.TarError, EOFError, OSError, gzip.BadGzipFile) as exc:
        raise ArchiveError(f"cannot read the archive ({exc})") from None
    return {split: [row for _, row in sorted(rows, key=lambda r: r[0])] for split, rows in found.items()}


def write_jsonl_gz(path: Path, rows: List[dict]) -> None:
    """Deterministic bytes (no timestamp in the gzip header), written temp-then-rename."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        for row in rows:
            gz.write((json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8"))
    os.replace(tmp, path)


def get(project_root: Path, *, url: str = URL, sha256: str = SHA256, force: bool = False) -> Dict:
    """Download (or reuse) the archive and write data/imdb/*.jsonl.gz; returns SOURCE.json's content."""
    official = sha256 == SHA256
    out_dir = Path(project_root) / "data" / "imdb"
    archive = Path(project_root) / "data" / "downloads" / ARCHIVE
    source_file = out_dir / "SOURCE.json"
    if not force and source_file.is_file():
        try:
            recorded = json.loads(source_file.read_text())
        except ValueError:
            recorded = {}
        if recorded.get("sha256") == sha256 and all((out_dir / f"{s}.jsonl.gz").is_file() for s in EXPECTED):
            output.say(f"data/imdb is up to date (from {recorded.get('url')}, sha256 {sha256[:16]}...)", markup=False)
            return recorded
    output.say(f"getting the Large Movie Review Dataset v1.0 from {url}", markup=False)
    download.fetch(url, archive, sha256=sha256, size=SIZE if official else None, label=ARCHIVE)
    output.say(f"sha256 ok ({sha256[:16]}...); reading {archive}", markup=False)
    try:
        splits = read_reviews(archive)
    except ArchiveError as exc:
        raise OrchError(
            f"{archive}: {exc}: refused, nothing was written",
            ExitCode.DATA,
            hint="delete the archive and run `orch data get imdb` again; if it persists, the source "
            "is not the aclImdb v1 release",
        ) from None
    counts = {split: len(rows) for split, rows in splits.items()}
    if official and counts != EXPECTED:
        raise OrchError(f"{archive} holds {counts} reviews, not the release's {EXPECTED}: refused", ExitCode.DATA)
    for split in ("train", "test"):
        labels = {row["label"] for row in splits[split]}
        if labels != {0, 1}:
            raise OrchError(
                f"{archive}: the {split} split has labels {sorted(labels)}, not neg and pos: refused", ExitCode.DATA
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, rows in splits.items():
        write_jsonl_gz(out_dir / f"{split}.jsonl.gz", rows)
    source = {
        "dataset": "Large Movie Review Dataset v1.0 (Maas et al., ACL 2011)",
        "url": url,
        "sha256": sha256,
        "archive": str(archive.relative_to(project_root)),
        "counts": counts,
        "files": {s: f"data/imdb/{s}.jsonl.gz" for s in splits},
        "written": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    tmp = source_file.with_name(".SOURCE.json.tmp")
    tmp.write_text(json.dumps(source, indent=2) + "\n")
    os.replace(tmp, source_file)
    return source
