"""A fetched run as data: its record, its jobs' host documents, and their scores merged
into one (text x class) table, with the completeness rule of docs/CONTRACT.md.

Pure reads of the run folder (nothing is written), shared by `orch eval`, `orch compare`
and `fetch-results` (which checks its staged copy with the same code before it swaps it
in).  Everything a host wrote is untrusted: each refusal is one OrchError that names the
job, the file, the line and example ids.

The merge is columnar: each score file is parsed a line at a time (and hashed as it is
read), its fields become columns, and the checks and the join are numpy and dict
operations over those columns.  Python only walks rows one by one to word a refusal.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import stat
from dataclasses import dataclass
from functools import partial
from itertools import chain, repeat
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from orchestrator.contract.hostdocs import BadDocument, check_manifest, check_status, read_local
from orchestrator.contract.records import load_resolved
from orchestrator.errors import ExitCode, OrchError
from remote.spec import Experiment, SpecError, build

SCORING_ROLES = ("class", "classifier", "score")
# What each role produces; a class job of an adaptive-draws run only trains (its run's
# score job scores), so what a run's jobs must produce is also decided by scoring_role.
ROLE_FILES = {"class": ("scores.jsonl",), "classifier": ("scores.jsonl",), "score": ("scores.jsonl",), "pretrain": ()}
MAX_EXAMPLES = 5  # ids named in an error message
MAX_LINE = 1 << 20  # a score row is ~150 bytes plus ~20 a draw (K <= ~50,000): a longer line is not one
DRAWS_RTOL = 1e-9  # a row's nll is the mean of its draws, to float precision


# --------------------------------------------------------------------------- the run


@dataclass
class FetchedJob:
    """A job of a fetched run, as evaluation reads it: its plan entry, status and manifest."""

    name: str
    role: str
    label: Optional[str]
    gpu: str
    dir: Path
    status: Optional[Dict[str, Any]]
    manifest: Optional[Dict[str, Any]]


@dataclass
class RunData:
    run_dir: Path
    run_id: str
    config: Dict[str, Any]  # run.yaml as read
    experiment: Experiment
    local: Dict[str, Any]  # local.json ({} when absent)
    jobs: List[FetchedJob]

    @property
    def scoring_role(self) -> str:
        return scoring_role(self.experiment)

    def scoring_jobs(self) -> List[FetchedJob]:
        return [j for j in self.jobs if j.role == self.scoring_role]


def scoring_role(exp: Experiment) -> str:
    """The role of the jobs whose score files a run is evaluated from: ``classifier``, the
    joint ``score`` job of an adaptive-draws run, else the ``class`` jobs."""
    if exp.model.kind == "classifier":
        return "classifier"
    return "score" if exp.score.is_adaptive else "class"


@dataclass
class Scores:
    """Merged scores: one row per test text, one column per class (``classes`` order)."""

    ids: List[str]
    classes: List[str]
    y: np.ndarray  # (n,) index of the true class
    nll: np.ndarray  # (n, C)
    tokens: np.ndarray  # (n, C) tokens each class model scored
    se: np.ndarray  # (n, C) standard error of the estimate, NaN when not given
    tokenizer_sha256: Optional[str] = None  # the class jobs' shared tokenizer (check_tokenization)
    # (n, C, K) per-draw estimates (draw j shared by the classes), or None; with adaptive
    # draws a text has K_i <= K of them, the rest NaN (the same K_i for every class)
    draws: Optional[np.ndarray] = None

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def labels(self) -> List[str]:
        return np.array(self.classes, dtype=object)[self.y].tolist()

    def subset(self, ids: Sequence[str]) -> "Scores":
        """The rows of ``ids``, in that order (every id must be present)."""
        where = dict(zip(self.ids, range(len(self.ids))))
        rows = np.fromiter(map(where.__getitem__, ids), dtype=np.int64, count=len(ids))
        return Scores(
            list(ids),
            self.classes,
            self.y[rows],
            self.nll[rows],
            self.tokens[rows],
            self.se[rows],
            self.tokenizer_sha256,
            None if self.draws is None else self.draws[rows],
        )


def _read_json(path: Path, what: str) -> Dict[str, Any]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise OrchError(f"{path}: {what} is not valid JSON ({exc})", ExitCode.DATA) from None
    except OSError as exc:
        raise OrchError(f"cannot read {path}: {exc.strerror}", ExitCode.DATA) from None
    if not isinstance(value, dict):
        raise OrchError(f"{path}: {what} must be a JSON object", ExitCode.DATA)
    return value


def _read_host_doc(path: Path, what: str, check) -> Optional[Dict[str, Any]]:
    """A status.json / manifest.json the host wrote: None when absent, else checked
    against the contract (hostdocs) so a bad one is one message."""
    try:
        return read_local(path, check)
    except BadDocument as exc:
        raise OrchError(
            f"{path}: bad {what}: {exc}",
            ExitCode.DATA,
            hint="the host's files are not what orch's contract says: fetch the run again, or look at "
            "that job's folder on the host",
        ) from None


def load_run(run_dir: Path, jobs_dir: Optional[Path] = None) -> RunData:
    """Read run.yaml, local.json and every job's status.json / manifest.json (not scores).

    ``jobs_dir``: where the job folders are (default run_dir/jobs; a fetch checks its
    staging folder before it replaces run_dir/jobs)."""
    run_dir = Path(run_dir)
    jobs_dir = Path(jobs_dir) if jobs_dir is not None else run_dir / "jobs"
    run_yaml = run_dir / "run.yaml"
    if not run_yaml.is_file():
        raise OrchError(f"{run_dir} is not a run folder (no run.yaml)", ExitCode.RUN_STATE)
    config = load_resolved(run_dir)
    try:
        experiment = build(Experiment, config.get("experiment") or {}, str(run_yaml), prefix="experiment.")
    except SpecError as exc:
        raise OrchError(str(exc), ExitCode.CONFIG) from None
    jobs_raw = config.get("jobs")
    if not isinstance(jobs_raw, list) or not jobs_raw:
        raise OrchError(f"{run_yaml}: key 'jobs': expected a non-empty list", ExitCode.CONFIG)
    local_path = run_dir / "local.json"
    local = _read_json(local_path, "local.json") if local_path.is_file() else {}

    jobs = []
    for i, raw in enumerate(jobs_raw):
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise OrchError(f"{run_yaml}: key 'jobs[{i}]': expected a mapping with a name", ExitCode.CONFIG)
        job_dir = jobs_dir / raw["name"]
        label = raw.get("label")
        jobs.append(
            FetchedJob(
                name=raw["name"],
                role=str(raw.get("role", "")),
                label=None if label is None else str(label),
                gpu=str(raw.get("gpu") or ""),
                dir=job_dir,
                status=_read_host_doc(job_dir / "status.json", "status.json", check_status),
                manifest=_read_host_doc(job_dir / "manifest.json", "manifest.json", check_manifest),
            )
        )
    run_id = str(config.get("run_id") or run_dir.name)
    return RunData(run_dir, run_id, config, experiment, local, jobs)


# --------------------------------------------------------------------------- one score file

_scan_once = json.JSONDecoder().scan_once  # the C scanner behind json.loads


def _parse_line(text: str) -> Any:
    """``json.loads(text)``, skipping its Python wrappers for the usual line (one object,
    then only JSON whitespace): the same scanner, the same object.  Anything else goes
    through json.loads itself, so its errors are json.loads's."""
    if text[:1] == "{":
        try:
            value, end = _scan_once(text, 0)
        except (StopIteration, ValueError):
            return json.loads(text)
        if not text[end:].strip(" \t\n\r"):
            return value
    return json.loads(text)


def listed_file(job: FetchedJob, name: str) -> Dict[str, Any]:
    """The manifest's entry for a file the job's role must produce (the manifest must list it)."""
    entry = ((job.manifest or {}).get("files") or {}).get(name)
    if not isinstance(entry, dict):
        raise OrchError(
            f"job {job.name!r}: manifest.json does not list {name}, which a {job.role} job must produce",
            ExitCode.DATA,
            hint="the job's results are incomplete or were changed on the host",
        )
    return entry


def _read_scores(job: FetchedJob) -> List[Dict[str, Any]]:
    """The rows of a job's scores.jsonl, read line by line and hashed as they are read;
    the file must be a regular file of the manifest's size and sha256.  Each row carries
    its line number as ``_where`` (for messages)."""
    path = job.dir / "scores.jsonl"
    expected = listed_file(job, "scores.jsonl")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise OrchError(
            f"job {job.name!r}: {path} is missing although manifest.json says the job finished", ExitCode.DATA
        ) from None
    if not stat.S_ISREG(st.st_mode):
        raise OrchError(
            f"job {job.name!r}: {path} is not a regular file",
            ExitCode.DATA,
            hint="fetch the run again (a fetch never writes links)",
        )
    if st.st_size != expected["size"]:
        raise OrchError(
            f"job {job.name!r}: scores.jsonl has {st.st_size} bytes, manifest.json says {expected['size']}",
            ExitCode.DATA,
            hint="the copy is incomplete or was changed: fetch the run again",
        )
    digest = hashlib.sha256()
    rows: List[Dict[str, Any]] = []
    problem: Optional[str] = None  # the first unparseable line; reported unless the hash says "corrupt"
    with open(path, "rb") as fh:
        for lineno, line in enumerate(iter(partial(fh.readline, MAX_LINE + 1), b""), 1):
            digest.update(line)
            if problem is not None:
                continue
            if len(line) > MAX_LINE:
                problem = f"{path}:{lineno}: longer than {MAX_LINE >> 10} KB, not a score row"
                continue
            if not line.strip():
                continue
            try:
                row = _parse_line(line.decode("utf-8", errors="replace"))
            except json.JSONDecodeError as exc:
                problem = f"{path}:{lineno}: not valid JSON ({exc.msg})"
                continue
            except RecursionError:
                problem = f"{path}:{lineno}: not valid JSON (nested too deeply)"
                continue
            if not isinstance(row, dict):
                problem = f"{path}:{lineno}: expected a JSON object"
                continue
            row["_where"] = lineno
            rows.append(row)
    if digest.hexdigest() != expected["sha256"]:
        raise OrchError(
            f"job {job.name!r}: scores.jsonl does not match the sha256 in manifest.json",
            ExitCode.DATA,
            hint="the copy is corrupt or was changed: fetch the run again",
        )
    if problem:
        raise OrchError(problem, ExitCode.DATA)
    return rows


# --------------------------------------------------------------------------- columns


def _column(rows: Sequence[Dict[str, Any]], key: str) -> List[Any]:
    return list(map(dict.get, rows, repeat(key)))


def _types(values: Sequence[Any]) -> set:
    return set(map(type, values))


_ID_TYPES = {str, int}  # bool is its own type here: type(True) is bool, never int


def _scalar_str(value: Any) -> Optional[str]:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int)):
        return str(value)
    return None


def _strings(values: List[Any]) -> List[Optional[str]]:
    """A column as strings (ints written as text), None where it is neither."""
    if _types(values) <= {str}:
        return values
    return list(map(_scalar_str, values))


def name_examples(items: Sequence[Any], total: Optional[int] = None) -> str:
    """The first few ITEMS, and how many more there are of TOTAL (default: len(ITEMS))."""
    shown = ", ".join(repr(x) for x in list(items)[:MAX_EXAMPLES])
    more = (len(items) if total is None else total) - MAX_EXAMPLES
    return shown + (f" (and {more} more)" if more > 0 else "")


MAX_TOKENS = (1 << 63) - 1  # what an int64 column holds; no text has more tokens


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer beyond any float
        return False


def _is_float(value: Any) -> bool:
    try:
        float(value)
    except OverflowError:
        return False
    return True


def _row_problem(
    row: Dict[str, Any], job: str, job_class: Optional[str], col: Dict[str, int], classes: List[str]
) -> Optional[str]:
    """What is wrong with one score row (None: nothing). The columnar checks find that a
    job has a bad row; this words the first one."""
    where = f"job {job!r}, scores.jsonl line {row.get('_where', '?')}"
    tid = _scalar_str(row.get("id"))
    label = _scalar_str(row.get("label"))
    cls = _scalar_str(row.get("class"))
    nll, tokens, se = row.get("nll"), row.get("tokens"), row.get("se")
    if tid is None or label is None or cls is None:
        return f"{where}: needs string fields id, label and class"
    if isinstance(nll, bool) or not isinstance(nll, (int, float)) or not _finite(nll):
        return f"{where}: text {tid!r}: nll must be a finite number, got {nll!r}"
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1 or tokens > MAX_TOKENS:
        return f"{where}: text {tid!r}: tokens must be a positive integer, got {tokens!r}"
    if se is not None and (isinstance(se, bool) or not isinstance(se, (int, float)) or not _is_float(se)):
        return f"{where}: text {tid!r}: se must be a number or null, got {se!r}"
    if "draws" in row:
        draws = row["draws"]
        if not isinstance(draws, list) or not draws or not all(type(d) in (int, float) and _finite(d) for d in draws):
            return f"{where}: text {tid!r}: draws must be a non-empty list of finite numbers"
    if cls not in col:
        return f"{where}: text {tid!r}: class {cls!r} is not one of the classes {classes}"
    if job_class is not None and cls != job_class:
        return f"{where}: text {tid!r} is scored for class {cls!r}, but this job's class is {job_class!r}"
    if label not in col:
        return f"{where}: text {tid!r} has label {label!r}, which is not one of the classes {classes}"
    return None


@dataclass
class _Columns:
    """One job's rows as columns, every row valid."""

    job: str
    rows: List[Dict[str, Any]]
    ids: List[str]
    label: np.ndarray  # class index of each row's label
    cls: np.ndarray  # class index of each row's class
    nll: np.ndarray
    tokens: np.ndarray
    se: np.ndarray
    draws: Optional[np.ndarray] = None  # (rows, K) or None when no row has draws


def _draw_problem(
    job: str, rows: List[Dict[str, Any]], nll: np.ndarray, ragged: bool = False
) -> Tuple[Optional[np.ndarray], Optional[str]]:
    """(the rows' draws as a (rows, K) array or None, None) or (None, what is wrong):
    every row or none has draws, all the same number of them (``ragged``, a job that scores
    every class: any number, NaN-padded to the longest, paired per text by _join_draws),
    and each row's nll is their mean (the draws are what the estimate was made of)."""
    have = ["draws" in r for r in rows]
    if not any(have):
        return None, None

    def where(r):
        return f"job {job!r}, scores.jsonl line {r.get('_where', '?')}: text {r.get('id')!r}"

    if not all(have):
        r = rows[have.index(False)]
        return None, f"{where(r)}: has no draws, while other rows of the job have them"
    column = _column(rows, "draws")
    if not all(type(d) is list and d for d in column):
        return None, None  # _row_problem words it
    k = len(column[0])
    if not ragged and any(len(d) != k for d in column):
        r = next(r for r in rows if len(r["draws"]) != k)
        return None, f"{where(r)}: has {len(r['draws'])} draws, the job's first row {k}"
    if not _types(list(chain.from_iterable(column))) <= {int, float}:
        return None, None  # _row_problem words it
    lengths = np.fromiter(map(len, column), dtype=np.int64, count=len(column))
    if ragged and not (lengths == k).all() and lengths.min() < 2:
        r = rows[int(np.argmin(lengths))]
        return None, f"{where(r)}: has 1 draw, while other texts have more (adaptive draws give every text at least 2)"
    try:
        if (lengths == k).all():
            draws = np.array(column, dtype=np.float64)
            flat = draws
        else:
            flat = np.fromiter(chain.from_iterable(column), dtype=np.float64, count=int(lengths.sum()))
            draws = np.full((len(column), int(lengths.max())), np.nan)
            draws[np.arange(draws.shape[1])[None, :] < lengths[:, None]] = flat
    except OverflowError:
        return None, None
    if not np.isfinite(flat).all():
        return None, None
    mean = draws.mean(axis=1) if (lengths == k).all() else np.nansum(draws, axis=1) / lengths
    off = np.abs(mean - nll) > DRAWS_RTOL * np.maximum(np.abs(nll), 1.0)
    if off.any():
        r = rows[int(np.flatnonzero(off)[0])]
        return None, f"{where(r)}: nll {r['nll']!r} is not the mean of its draws"
    return draws, None


def _job_columns(
    job: str, job_class: Optional[str], rows: List[Dict[str, Any]], col: Dict[str, int], classes: List[str]
) -> Tuple[Optional[_Columns], Optional[str]]:
    """(columns, None) when every row is valid, else (None, the first bad row's problem)."""

    def first_problem() -> str:
        return next(p for p in (_row_problem(r, job, job_class, col, classes) for r in rows) if p is not None)

    n = len(rows)
    ids, labels, cls = _column(rows, "id"), _column(rows, "label"), _column(rows, "class")
    nll, tokens, se = _column(rows, "nll"), _column(rows, "tokens"), _column(rows, "se")
    if (
        not (_types(ids) | _types(labels) | _types(cls)) <= _ID_TYPES
        or not _types(nll) <= {int, float}
        or not _types(tokens) <= {int}
        or not _types(se) <= {int, float, type(None)}
    ):
        return None, first_problem()
    try:
        nll_a = np.array(nll, dtype=np.float64)
        tokens_a = np.array(tokens, dtype=np.int64)
        se_a = np.array(se, dtype=np.float64)  # None -> NaN
    except OverflowError:  # an integer beyond float64 / int64
        return None, first_problem()
    ids, labels, cls = _strings(ids), _strings(labels), _strings(cls)
    cls_i = np.fromiter(map(col.get, cls, repeat(-1)), dtype=np.int64, count=n)
    label_i = np.fromiter(map(col.get, labels, repeat(-1)), dtype=np.int64, count=n)
    ok = np.isfinite(nll_a) & (tokens_a >= 1) & (cls_i >= 0) & (label_i >= 0)
    if job_class is not None:
        ok &= cls_i == col[job_class]
    if not ok.all():
        return None, first_problem()
    draws, problem = _draw_problem(job, rows, nll_a, ragged=job_class is None)
    if problem is not None:
        return None, problem
    if draws is None and any("draws" in r for r in rows):
        return None, first_problem()
    return _Columns(job, rows, ids, label_i, cls_i, nll_a, tokens_a.astype(np.float64), se_a, draws), None


def merge_scores(job_rows: Sequence[Tuple[str, Optional[str], List[Dict[str, Any]]]], classes: Sequence[str]) -> Scores:
    """Merge per-job score rows into one (text x class) table, refusing anything inconsistent.

    ``job_rows`` holds (job name, the class the job scores or None for all, rows).
    Refused, with example ids and the job named: malformed rows, a class outside
    ``classes``, a row for another class than the job's, duplicate (id, class) rows,
    a text whose label differs between rows, and texts some class has no score for.
    Jobs are judged in order: the first job with a problem is the one named.
    """
    classes = [str(c) for c in classes]
    col = {c: i for i, c in enumerate(classes)}
    if len(col) != len(classes) or len(classes) < 2:
        raise OrchError(f"need at least two distinct classes, got {classes}", ExitCode.DATA)
    owner: Dict[str, str] = {}  # class -> job that scores it
    for job, job_class, _ in job_rows:
        for c in [job_class] if job_class is not None else classes:
            if c not in col:
                raise OrchError(
                    f"job {job!r} scores class {c!r}, which is not one of the classes {classes}", ExitCode.DATA
                )
            if c in owner:
                raise OrchError(f"class {c!r} is scored by two jobs: {owner[c]!r} and {job!r}", ExitCode.DATA)
            owner[c] = job
    unscored = [c for c in classes if c not in owner]
    if unscored:
        raise OrchError(f"no job scores class(es) {name_examples(unscored)}", ExitCode.DATA)

    parts: List[_Columns] = []
    bad_row: Optional[str] = None  # the first malformed row, in the first job that has one
    for job, job_class, rows in job_rows:
        part, bad_row = _job_columns(job, job_class, rows, col, classes)
        if bad_row is not None:
            break  # the jobs before it may still hold a duplicate or a disagreement, named first
        parts.append(part)
    table = _join(parts, classes, col)  # refuses duplicates and label disagreements
    if bad_row is not None:
        raise OrchError(bad_row, ExitCode.DATA)
    ids, first_job, y, nll, tokens, se, have, draws = table
    n = len(ids)
    if not n:
        raise OrchError("the score files hold no test texts", ExitCode.DATA)
    for j, c in enumerate(classes):
        missing = np.flatnonzero(~have[:, j])
        if missing.size:
            named = [f"{ids[i]} (scored in job {first_job[i]!r})" for i in missing[:MAX_EXAMPLES]]
            more = missing.size - len(named)
            raise OrchError(
                f"job {owner[c]!r} has no class-{c!r} score for {missing.size} of {n} test text(s): "
                + ", ".join(named)
                + (f" (and {more} more)" if more > 0 else ""),
                ExitCode.DATA,
                hint="every class model must score the same test texts: re-run or re-fetch the job",
            )
    return Scores(ids, classes, y, nll, tokens, se, draws=draws)


def _join(parts: List[_Columns], classes: List[str], col: Dict[str, int]):
    """The (text x class) table of valid rows: texts in order of first appearance, the
    label of a text's first row.  Refuses, job by job, a (text, class) pair scored twice
    and a text whose label differs from its first row's."""
    k = len(classes)
    all_ids = list(chain.from_iterable(p.ids for p in parts))
    ids = list(dict.fromkeys(all_ids))  # in order of first appearance
    index = dict(zip(ids, range(len(ids))))
    n_rows = len(all_ids)
    code = np.fromiter(map(index.__getitem__, all_ids), dtype=np.int64, count=n_rows)
    cat = (lambda name: np.concatenate([getattr(p, name) for p in parts])) if parts else (lambda name: np.zeros(0))
    label, cls = cat("label").astype(np.int64), cat("cls").astype(np.int64)
    job_of = np.repeat(np.arange(len(parts)), [len(p.ids) for p in parts])
    first = np.unique(code, return_index=True)[1]  # codes count up from 0 in order of first appearance
    first_label = label[first]
    disagree = label != first_label[code]
    key = code * k + cls
    keep = ~disagree
    kept = np.flatnonzero(keep)
    _, first_kept = np.unique(key[kept], return_index=True)
    duplicate = keep.copy()
    duplicate[kept[first_kept]] = False
    first_job_name = np.array([p.job for p in parts], dtype=object)[job_of[first]].tolist()
    if duplicate.any() or disagree.any():
        for j, part in enumerate(parts):
            mine = job_of == j
            dups = np.flatnonzero(duplicate & mine)
            if dups.size:
                raise OrchError(
                    f"job {part.job!r}: {dups.size} text(s) scored more than once for the same class: "
                    f"{name_examples([all_ids[i] for i in dups[:MAX_EXAMPLES]], dups.size)}",
                    ExitCode.DATA,
                )
            odd = np.flatnonzero(disagree & mine)
            if odd.size:
                shown = [
                    f"{all_ids[i]} ({classes[label[i]]!r} here, {classes[first_label[code[i]]]!r} in job "
                    f"{first_job_name[code[i]]!r})"
                    for i in odd[:MAX_EXAMPLES]
                ]
                raise OrchError(
                    f"job {part.job!r}: {odd.size} text(s) carry a different label than in another job: "
                    f"{name_examples(shown, odd.size)}",
                    ExitCode.DATA,
                    hint="the jobs did not score the same test set",
                )
    n = len(ids)
    nll = np.full((n, k), np.nan)
    tokens = np.full((n, k), np.nan)
    se = np.full((n, k), np.nan)
    have = np.zeros((n, k), dtype=bool)
    nll[code, cls], tokens[code, cls], se[code, cls], have[code, cls] = cat("nll"), cat("tokens"), cat("se"), True
    return ids, first_job_name, first_label, nll, tokens, se, have, _join_draws(parts, code, cls, n, k, ids)


def _join_draws(
    parts: List[_Columns], code: np.ndarray, cls: np.ndarray, n: int, k: int, ids: Sequence[str] = ()
) -> Optional[np.ndarray]:
    """(n, C, K) per-draw estimates when every job has draws, the same number of them;
    None when no job has any.  A mix cannot be paired: refused, naming the jobs; so is a
    text with another number of draws for one class than for another (adaptive draws)."""
    counts = {p.job: (None if p.draws is None else p.draws.shape[1]) for p in parts}
    if not parts or all(v is None for v in counts.values()):
        return None
    if len(set(counts.values())) > 1:
        desc = ", ".join(f"{job!r}: {'none' if v is None else v}" for job, v in counts.items())
        raise OrchError(
            f"the jobs' score rows carry different numbers of draws per text ({desc})",
            ExitCode.DATA,
            hint="the class models must score the same draws (score.mdlm_draws) for their "
            "difference to be paired: re-run the jobs with one config",
        )
    n_draws = next(iter(counts.values()))
    out = np.full((n, k, n_draws), np.nan)
    out[code, cls] = np.concatenate([p.draws for p in parts])
    per_class = (~np.isnan(out)).sum(axis=2)  # (n, C); a missing (text, class) is refused later
    scored = (per_class > 0).all(axis=1)
    odd = np.flatnonzero(scored & (per_class.min(axis=1) != per_class.max(axis=1)))
    if odd.size:
        shown = [ids[i] if ids else int(i) for i in odd[:MAX_EXAMPLES]]
        raise OrchError(
            f"{odd.size} text(s) have another number of draws for one class than for another: "
            f"{name_examples(shown, odd.size)}",
            ExitCode.DATA,
            hint="the class models must score the same draws of a text for their difference to be paired",
        )
    return out


# --------------------------------------------------------------------------- a run's scores


def expected_n_test(jobs: Sequence[FetchedJob]) -> int:
    """The run's number of test texts: every scoring job's manifest must give the same n_test."""
    seen: Dict[int, List[str]] = {}
    for job in jobs:
        n = (job.manifest or {}).get("n_test")
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise OrchError(
                f"job {job.name!r}: manifest.json gives no n_test (the number of test texts), got {n!r}",
                ExitCode.DATA,
                hint="the job's results are incomplete or were changed on the host",
            )
        seen.setdefault(n, []).append(job.name)
    if len(seen) > 1:
        desc = ", ".join(f"{n} in {name_examples(names)}" for n, names in sorted(seen.items()))
        raise OrchError(
            f"the jobs' manifests disagree on n_test: {desc}",
            ExitCode.DATA,
            hint="every job of a run scores the same test texts: a job's results were cut short or changed",
        )
    return next(iter(seen))


def check_job_rows(job: FetchedJob, rows: List[Dict[str, Any]], classes: Sequence[str], n_test: int) -> List[str]:
    """One job on its own (a partial fetch cannot merge): one row per test text (class job)
    or per test text and class (classifier), none twice.  Returns the job's test ids."""
    ids = _strings(_column(rows, "id"))
    pairs = list(zip(ids, _strings(_column(rows, "class"))))
    distinct = dict.fromkeys(pairs)
    if len(distinct) != len(pairs):
        seen: set = set()
        twice = [str(p[0]) for p in pairs if p in seen or seen.add(p)]  # word the refusal: the repeats, in order
        raise OrchError(
            f"job {job.name!r}: {len(twice)} text(s) scored more than once for the same class: {name_examples(twice)}",
            ExitCode.DATA,
        )
    per_text = 1 if job.role == "class" else len(classes)
    if len(pairs) != n_test * per_text:
        raise OrchError(
            f"job {job.name!r}: scores.jsonl has {len(pairs)} rows, but n_test {n_test} needs {n_test * per_text}",
            ExitCode.DATA,
            hint="the job's results were cut short or changed on the host",
        )
    return sorted(set(ids) - {None})


def check_same_texts(ids_of: Dict[str, List[str]]) -> None:
    """Every job scored the same test ids."""
    names = list(ids_of)
    first = set(ids_of[names[0]])
    for name in names[1:]:
        other = set(ids_of[name])
        if other != first:
            extra, missing = sorted(other - first), sorted(first - other)
            raise OrchError(
                f"job {name!r} scored other test texts than job {names[0]!r}: "
                + "; ".join(
                    part
                    for part in (
                        f"{len(extra)} only in {name!r}: {name_examples(extra)}" if extra else "",
                        f"{len(missing)} only in {names[0]!r}: {name_examples(missing)}" if missing else "",
                    )
                    if part
                ),
                ExitCode.DATA,
                hint="every job of a run scores the same test texts",
            )


def run_classes(run: RunData) -> List[str]:
    """The class order: the manifests' "classes" (which must agree), else the config."""
    seen: Dict[Tuple[str, ...], str] = {}
    for job in run.scoring_jobs():
        classes = (job.manifest or {}).get("classes")
        if isinstance(classes, list) and classes:
            seen.setdefault(tuple(str(c) for c in classes), job.name)
    if len(seen) > 1:
        desc = "; ".join(f"{list(k)} in job {v!r}" for k, v in seen.items())
        raise OrchError(f"the jobs' manifests disagree on the classes: {desc}", ExitCode.DATA)
    configured = [str(c) for c in run.experiment.data.classes]
    if seen:
        found = list(next(iter(seen)))
        if configured and set(found) != set(configured):
            raise OrchError(
                f"the jobs' manifests give the classes {found}, but run.yaml says {configured}",
                ExitCode.DATA,
                hint="the host's results are not this run's",
            )
        return found
    if run.experiment.data.classes:
        return list(run.experiment.data.classes)
    return sorted({j.label for j in run.jobs if j.role == "class" and j.label is not None})


def load_scores(run: RunData) -> Scores:
    """Read and merge the score files of the run's scoring jobs (all must be complete)."""
    jobs = run.scoring_jobs()
    if not jobs:
        raise OrchError(
            f"run {run.run_id!r} has no {run.scoring_role!r} job to evaluate "
            f"(model.kind is {run.experiment.model.kind!r})",
            ExitCode.RUN_STATE,
        )
    incomplete = [j.name for j in jobs if j.manifest is None]
    if incomplete:
        raise OrchError(
            f"run {run.run_id!r}: job(s) {name_examples(incomplete)} have no manifest.json here, "
            "so their results are not complete",
            ExitCode.RUN_STATE,
            hint=f"`orch status {run.run_id}` shows the jobs; `orch fetch-results {run.run_id}` pulls finished results",
        )
    for job in jobs:
        if job.role == "class" and job.label is None:
            raise OrchError(f"run.yaml: class job {job.name!r} has no label", ExitCode.CONFIG)
    n_test = expected_n_test(jobs)
    classes = run_classes(run)
    job_rows = [(j.name, j.label if j.role == "class" else None, _read_scores(j)) for j in jobs]
    scores = merge_scores(job_rows, classes)
    if scores.n != n_test:
        raise OrchError(
            f"the score files hold {scores.n} test texts, but the manifests' n_test is {n_test}",
            ExitCode.DATA,
            hint="the jobs' results were cut short or changed on the host",
        )
    scores.tokenizer_sha256 = check_tokenization(jobs, scores)
    return scores


def check_tokenization(jobs: Sequence[FetchedJob], scores: Scores) -> Optional[str]:
    """The class jobs must have read every text with the same tokenizer: their manifests'
    ``tokenizer_sha256`` must be equal, and every text must have the same token count in
    every class model.  The masks MDLM draws for a text depend on its token count, so the
    common random numbers behind a paired class difference hold only then; and a class
    decision that depends on which BPE a job happened to train is not a decision.

    Returns the shared fingerprint, or None for a run whose manifests record none (runs
    made before it was recorded: nothing to compare, so no check).  A classifier job is
    one model: there is nothing to compare."""
    class_jobs = [j for j in jobs if j.role == "class"]
    if not class_jobs:
        return None
    prints = {j.name: (j.manifest or {}).get("tokenizer_sha256") for j in class_jobs}
    if all(v is None for v in prints.values()):
        return None
    groups: Dict[Optional[str], List[str]] = {}
    for name, value in prints.items():
        groups.setdefault(value, []).append(name)
    if len(groups) > 1:
        desc = "; ".join(
            f"{'none recorded' if v is None else v[:16]} in job(s) {name_examples(names)}"
            for v, names in groups.items()
        )
        raise OrchError(
            f"the class jobs did not use the same tokenizer (manifest tokenizer_sha256): {desc}",
            ExitCode.DATA,
            hint="each class model must read a text as the same tokens for their scores to be "
            "compared: train the tokenizer once (a pretrain job) or re-run the class jobs",
        )
    ref_job = class_jobs[0]
    ref = scores.classes.index(ref_job.label)
    for job in class_jobs[1:]:
        c = scores.classes.index(job.label)
        odd = np.flatnonzero(scores.tokens[:, c] != scores.tokens[:, ref])
        if odd.size:
            shown = [
                f"{scores.ids[i]} ({int(scores.tokens[i, c])} tokens here, {int(scores.tokens[i, ref])} "
                f"in job {ref_job.name!r})"
                for i in odd[:MAX_EXAMPLES]
            ]
            raise OrchError(
                f"job {job.name!r}: {odd.size} text(s) have another token count than in job "
                f"{ref_job.name!r} although both record the same tokenizer: "
                f"{name_examples(shown, odd.size)}",
                ExitCode.DATA,
                hint="the jobs did not tokenize the same test texts the same way: re-run the jobs",
            )
    return next(iter(groups))


def check_partial(run: RunData, names: Sequence[str]) -> None:
    """The completeness rule for the finished scoring jobs NAMES of a run that is not
    finished (`fetch-results --partial`): each job on its own, and the same texts in each."""
    jobs = [j for j in run.scoring_jobs() if j.name in names]
    if not jobs:
        return
    n_test = expected_n_test(jobs)
    classes = run_classes(run)
    ids_of = {j.name: check_job_rows(j, _read_scores(j), classes, n_test) for j in jobs}
    check_same_texts(ids_of)


def scores_digest(run: RunData) -> str:
    """sha256 over the scoring jobs' scores.jsonl hashes (as their manifests list them):
    what an evaluation of this run was computed from."""
    h = hashlib.sha256()
    for job in run.scoring_jobs():
        h.update(f"{job.name}\0{listed_file(job, 'scores.jsonl')['sha256']}\n".encode())
    return h.hexdigest()
