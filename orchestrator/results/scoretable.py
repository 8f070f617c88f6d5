"""Score rows into one table: the (text x class) `Scores` of a run, merged from its jobs'
score rows (orchestrator/results/scores.py reads them from the files).

The merge is columnar: each job's rows become columns, and the checks and the join are
numpy and dict operations over those columns.  Python only walks rows one by one to word
a refusal, which names the job, the line and example ids.

Rows arrive a chunk at a time (``JobColumns.add``): a chunk's row dicts are dropped once
they are columns, so the memory a score file takes is its numbers as float64 and its ids,
not a dict per row (7-11x the file: docs/BENCHMARKS-controller.md, "Evaluation
memory").  A host decides how big a valid file is; room.MemoryBudget counts what they take.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import chain, repeat
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from orchestrator.contract.hostdocs import NUM_MAX
from orchestrator.errors import ExitCode, OrchError
from orchestrator.results.room import MemoryBudget

MAX_EXAMPLES = 5  # ids named in an error message
DRAWS_RTOL = 1e-9  # a row's nll is the mean of its draws, to float precision


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
    """A number the contract allows (docs/CONTRACT.md: at most NUM_MAX in size): finite,
    and far enough from float's limits that sums, differences and squares stay finite."""
    try:
        return math.isfinite(value) and abs(value) <= NUM_MAX
    except OverflowError:  # an integer beyond any float
        return False


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
        return f"{where}: text {tid!r}: nll must be a finite number at most {NUM_MAX:g} in size, got {nll!r}"
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1 or tokens > MAX_TOKENS:
        return f"{where}: text {tid!r}: tokens must be a positive integer, got {tokens!r}"
    if se is not None and (isinstance(se, bool) or not isinstance(se, (int, float)) or not _finite(se) or se < 0):
        return f"{where}: text {tid!r}: se must be a finite number from 0 to {NUM_MAX:g}, or null, got {se!r}"
    if "draws" in row:
        draws = row["draws"]
        if not isinstance(draws, list) or not draws or not all(type(d) in (int, float) and _finite(d) for d in draws):
            return f"{where}: text {tid!r}: draws must be a non-empty list of finite numbers at most {NUM_MAX:g}"
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
    lines: np.ndarray  # each row's line in its file (-1: not from a file), for messages
    ids: List[str]
    label: np.ndarray  # class index of each row's label
    cls: np.ndarray  # class index of each row's class
    nll: np.ndarray
    tokens: np.ndarray
    se: np.ndarray
    draws: Optional[np.ndarray] = None  # (rows, K) or None when no row has draws

    def nbytes(self) -> int:
        """About what these columns hold in memory (an id: its text, a str and a list slot)."""
        arrays = (self.lines, self.label, self.cls, self.nll, self.tokens, self.se, self.draws)
        return sum(a.nbytes for a in arrays if a is not None) + sum(map(len, self.ids)) + 64 * len(self.ids)


def _where(job: str, line: Any, tid: Any) -> str:
    return f"job {job!r}, scores.jsonl line {line}: text {tid!r}"


def _draw_problem(
    job: str, rows: List[Dict[str, Any]], nll: np.ndarray, ragged: bool = False, max_draws: Optional[int] = None
) -> Tuple[Optional[np.ndarray], Optional[str]]:
    """(the rows' draws as a (rows, K) array or None, None) or (None, what is wrong):
    every row or none has draws, all the same number of them (``ragged``, a job that scores
    every class: any number, NaN-padded to the longest, paired per text by _join_draws),
    at most ``max_draws`` (the run's own setting: the padded array is rows x the longest,
    so one row a host made long must not decide its size), and each row's nll is their
    mean (the draws are what the estimate was made of)."""
    have = ["draws" in r for r in rows]
    if not any(have):
        return None, None

    def where(r):
        return _where(job, r.get("_where", "?"), r.get("id"))

    if not all(have):
        r = rows[have.index(False)]
        return None, f"{where(r)}: has no draws, while other rows of the job have them"
    column = _column(rows, "draws")
    if not all(type(d) is list and d for d in column):
        return None, None  # _row_problem words it
    if max_draws is not None and any(len(d) > max_draws for d in column):
        r = next(r for r in rows if len(r["draws"]) > max_draws)
        return None, f"{where(r)}: has {len(r['draws'])} draws, more than the run's {max_draws} a text can get"
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
    if not (np.abs(flat) <= NUM_MAX).all():  # NaN and inf fail too
        return None, None
    mean = draws.mean(axis=1) if (lengths == k).all() else np.nansum(draws, axis=1) / lengths
    off = np.abs(mean - nll) > DRAWS_RTOL * np.maximum(np.abs(nll), 1.0)
    if off.any():
        r = rows[int(np.flatnonzero(off)[0])]
        return None, f"{where(r)}: nll {r['nll']!r} is not the mean of its draws"
    return draws, None


def _job_columns(
    job: str,
    job_class: Optional[str],
    rows: List[Dict[str, Any]],
    col: Dict[str, int],
    classes: List[str],
    max_draws: Optional[int] = None,
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
    if int(np.isnan(se_a).sum()) != se.count(None):  # se's NaN means null; a NaN sent is no number
        return None, first_problem()
    with np.errstate(invalid="ignore"):  # NaN compares False
        ok = (np.abs(nll_a) <= NUM_MAX) & ~((se_a < 0) | (se_a > NUM_MAX) | np.isinf(se_a))
    ok &= (tokens_a >= 1) & (cls_i >= 0) & (label_i >= 0)
    if job_class is not None:
        ok &= cls_i == col[job_class]
    if not ok.all():
        return None, first_problem()
    draws, problem = _draw_problem(job, rows, nll_a, ragged=job_class is None, max_draws=max_draws)
    if problem is not None:
        return None, problem
    if draws is None and any("draws" in r for r in rows):
        return None, first_problem()
    lines = np.fromiter((r.get("_where", -1) for r in rows), dtype=np.int64, count=n)
    return _Columns(job, lines, ids, label_i, cls_i, nll_a, tokens_a.astype(np.float64), se_a, draws), None


# Rows turned into columns at a time: a chunk's dicts (~3-5x their JSON) are all that is
# held of them.
CHUNK_ROWS = 8192
CHUNK_BYTES = 1 << 20


class JobColumns:
    """One job's rows, added a chunk at a time, kept as columns once valid (``add`` and
    ``finish`` return the first problem, or None).  Across chunks the job must stay one
    job: draws in every row or in none, and (a job of one class) the same number of them."""

    def __init__(
        self,
        job: str,
        job_class: Optional[str],
        col: Dict[str, int],
        classes: List[str],
        max_draws: Optional[int] = None,
        budget: Optional[MemoryBudget] = None,
    ):
        self.job, self.job_class, self.col, self.classes, self.max_draws = job, job_class, col, classes, max_draws
        self.budget = budget  # what the columns may take in memory (None: no limit)
        self.parts: List[_Columns] = []

    def add(self, rows: List[Dict[str, Any]]) -> Optional[str]:
        if not rows:
            return None
        part, problem = _job_columns(self.job, self.job_class, rows, self.col, self.classes, self.max_draws)
        if problem is not None:
            return problem
        if self.parts:
            first = self.parts[0].draws
            r = rows[0]
            if (first is None) != (part.draws is None):
                return f"{_where(self.job, r.get('_where', '?'), r.get('id'))}: " + (
                    "has no draws, while other rows of the job have them"
                    if part.draws is None
                    else "has draws, while other rows of the job have none"
                )
            if first is not None and self.job_class is not None and part.draws.shape[1] != first.shape[1]:
                return (
                    f"{_where(self.job, r.get('_where', '?'), r.get('id'))}: has {part.draws.shape[1]} draws, "
                    f"the job's first row {first.shape[1]}"
                )
        if self.budget is not None:
            last = int(part.lines[-1])
            self.budget.charge(part.nbytes(), f"job {self.job!r}, scores.jsonl line {last if last >= 0 else '?'}")
        self.parts.append(part)
        return None

    def finish(self) -> Tuple[Optional[_Columns], Optional[str]]:
        """(the job's columns, None), or (None, a problem only the whole job shows)."""
        parts = self.parts
        if not parts:
            empty = np.zeros(0)
            ints = np.zeros(0, dtype=np.int64)
            return _Columns(self.job, ints, [], ints, ints, empty, empty, empty), None
        if len(parts) == 1:
            return parts[0], None
        draws = None
        if parts[0].draws is not None:
            width = max(p.draws.shape[1] for p in parts)
            draws = np.full((sum(len(p.ids) for p in parts), width), np.nan)
            at = 0
            for p in parts:
                draws[at : at + len(p.ids), : p.draws.shape[1]] = p.draws
                at += len(p.ids)
                p.draws = None  # copied: let it go now, not after the whole job
            counts = (~np.isnan(draws)).sum(axis=1)
            if not (counts == width).all() and counts.min() < 2:  # as _draw_problem, across chunks
                i = int(np.argmin(counts))
                line = int(np.concatenate([p.lines for p in parts])[i])
                tid = list(chain.from_iterable(p.ids for p in parts))[i]
                return None, (
                    f"{_where(self.job, line if line >= 0 else '?', tid)}: has 1 draw, while other texts have "
                    "more (adaptive draws give every text at least 2)"
                )
        cat = lambda name: np.concatenate([getattr(p, name) for p in parts])  # noqa: E731
        ids = list(chain.from_iterable(p.ids for p in parts))
        self.parts = []
        columns = _Columns(
            self.job, cat("lines"), ids, cat("label"), cat("cls"), cat("nll"), cat("tokens"), cat("se"), draws
        )
        return columns, None


class ScoreMerge:
    """The merge of a run's jobs, one job after the other: ``job(name)`` gives its
    JobColumns to add rows to, ``done(part, problem)`` ends it, ``result()`` joins.

    Refused, with example ids and the job named: malformed rows, a class outside
    ``classes``, a row for another class than the job's, duplicate (id, class) rows,
    a text whose label differs between rows, and texts some class has no score for.
    Jobs are judged in order: the first job with a problem is the one named (a duplicate
    or a label disagreement among the jobs before a malformed row is named first).
    """

    def __init__(
        self,
        owners: Sequence[Tuple[str, Optional[str]]],
        classes: Sequence[str],
        max_draws: Optional[int] = None,
        budget: Optional[MemoryBudget] = None,
    ):
        self.classes = [str(c) for c in classes]
        self.col = {c: i for i, c in enumerate(self.classes)}
        self.max_draws = max_draws
        self.budget = budget if budget is not None else MemoryBudget()
        if len(self.col) != len(self.classes) or len(self.classes) < 2:
            raise OrchError(f"need at least two distinct classes, got {self.classes}", ExitCode.DATA)
        self.owner: Dict[str, str] = {}  # class -> job that scores it
        self.job_class = dict(owners)
        for job, job_class in owners:
            for c in [job_class] if job_class is not None else self.classes:
                if c not in self.col:
                    raise OrchError(
                        f"job {job!r} scores class {c!r}, which is not one of the classes {self.classes}",
                        ExitCode.DATA,
                    )
                if c in self.owner:
                    raise OrchError(f"class {c!r} is scored by two jobs: {self.owner[c]!r} and {job!r}", ExitCode.DATA)
                self.owner[c] = job
        unscored = [c for c in self.classes if c not in self.owner]
        if unscored:
            raise OrchError(f"no job scores class(es) {name_examples(unscored)}", ExitCode.DATA)
        self.parts: List[_Columns] = []

    def job(self, name: str) -> JobColumns:
        return JobColumns(name, self.job_class[name], self.col, self.classes, self.max_draws, self.budget)

    def done(self, part: JobColumns, problem: Optional[str]) -> None:
        """The job's rows are all added (PROBLEM: the first one found while adding)."""
        columns = None
        if problem is None:
            columns, problem = part.finish()
        if problem is not None:
            _join(self.parts, self.classes, self.col)  # a duplicate or disagreement before it is named first
            raise OrchError(problem, ExitCode.DATA)
        self.parts.append(columns)

    def result(self) -> Scores:
        classes = self.classes
        ids, first_job, y, nll, tokens, se, have, draws = _join(self.parts, classes, self.col)
        n = len(ids)
        if not n:
            raise OrchError("the score files hold no test texts", ExitCode.DATA)
        for j, c in enumerate(classes):
            missing = np.flatnonzero(~have[:, j])
            if missing.size:
                named = [f"{ids[i]} (scored in job {first_job[i]!r})" for i in missing[:MAX_EXAMPLES]]
                more = missing.size - len(named)
                raise OrchError(
                    f"job {self.owner[c]!r} has no class-{c!r} score for {missing.size} of {n} test text(s): "
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
    at = 0
    for p in parts:  # job by job: no concatenated copy of every job's draws
        rows = slice(at, at + len(p.ids))
        out[code[rows], cls[rows]] = p.draws
        at += len(p.ids)
        p.draws = None  # the table holds them now (no part is read after its join): let it go
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
