"""Local evaluation of a fetched run: load the score files, merge them, compute metrics.

Everything here except :func:`evaluate_run` is a pure function of the files it is given
(no writes, no network), so ``orch eval`` works offline and ``orch compare`` can reuse
the same loading and metric code without touching the run folders.

The classifier: for each test text x and class c, score(c) = -nll_c(x) + log prior(c);
predict argmax_c score(c). The per-token variant divides the likelihood by the number of
tokens the class model scored, score_norm(c) = -nll_c / tokens_c + log prior(c) / n(x),
with n(x) the text's mean token count over the classes: the prior keeps its share of a
per-token log joint, and with a shared tokenizer the per-token argmax equals the raw one
(only the margin, hence ROC-AUC and calibration, changes).

Metric code comes from scikit-learn / scipy; numpy only arranges the arrays.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from remote.spec import Experiment, SpecError, build

from orchestrator.errors import ExitCode, OrchError

if TYPE_CHECKING:
    from rich.console import Console

# The seed plan's verdict bands, highest first: (label, lower bound in %, strict?).
# "Excellent > 85%" is strict; "Good 75-85%" includes 75%.
BANDS: Dict[str, List[Tuple[str, float, bool]]] = {
    "poc": [("Excellent", 85.0, True), ("Good", 75.0, False), ("Acceptable", 65.0, False)],
    "mdlm": [("Excellent", 90.0, True), ("Good", 85.0, False), ("Acceptable", 80.0, False)],
}
BAND_TITLES = {"poc": "proof-of-concept per-class LM", "mdlm": "full MDLM"}
FAILED = "Failed"
SCORING_ROLES = ("class", "classifier")
BOOTSTRAP_SEED = 0
CI_LEVEL = 0.95
MAX_EXAMPLES = 5  # ids named in an error message


# --------------------------------------------------------------------------- loading


@dataclass
class JobRecord:
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
    jobs: List[JobRecord]

    @property
    def scoring_role(self) -> str:
        return "classifier" if self.experiment.model.kind == "classifier" else "class"

    def scoring_jobs(self) -> List[JobRecord]:
        return [j for j in self.jobs if j.role == self.scoring_role]


@dataclass
class Scores:
    """Merged scores: one row per test text, one column per class (``classes`` order)."""

    ids: List[str]
    classes: List[str]
    y: np.ndarray  # (n,) index of the true class
    nll: np.ndarray  # (n, C)
    tokens: np.ndarray  # (n, C) tokens each class model scored
    se: np.ndarray  # (n, C) standard error of the estimate, NaN when not given

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def labels(self) -> List[str]:
        return [self.classes[i] for i in self.y]

    def subset(self, ids: Sequence[str]) -> "Scores":
        """The rows of ``ids``, in that order (every id must be present)."""
        where = {tid: i for i, tid in enumerate(self.ids)}
        rows = np.array([where[tid] for tid in ids], dtype=np.int64)
        return Scores(list(ids), self.classes, self.y[rows], self.nll[rows], self.tokens[rows], self.se[rows])


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
    from orchestrator.runs.hostdocs import BadDocument, read_local

    try:
        return read_local(path, check)
    except BadDocument as exc:
        raise OrchError(f"{path}: bad {what}: {exc}", ExitCode.DATA,
                        hint="the host's files are not what orch's contract says: fetch the run again, or look at "
                             "that job's folder on the host") from None


def load_run(run_dir: Path, jobs_dir: Optional[Path] = None) -> RunData:
    """Read run.yaml, local.json and every job's status.json / manifest.json (not scores).

    ``jobs_dir``: where the job folders are (default run_dir/jobs; a fetch checks its
    staging folder before it replaces run_dir/jobs)."""
    from orchestrator.runs.hostdocs import check_manifest, check_status

    run_dir = Path(run_dir)
    jobs_dir = Path(jobs_dir) if jobs_dir is not None else run_dir / "jobs"
    run_yaml = run_dir / "run.yaml"
    if not run_yaml.is_file():
        raise OrchError(f"{run_dir} is not a run folder (no run.yaml)", ExitCode.RUN_STATE)
    from orchestrator.runs.launch import load_resolved

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
            JobRecord(
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


MAX_LINE = 1 << 16  # a score row is about 150 bytes: a longer line is not one
ROLE_FILES = {"class": ("scores.jsonl",), "classifier": ("scores.jsonl",), "pretrain": ()}  # what each role produces


def listed_file(job: JobRecord, name: str) -> Dict[str, Any]:
    """The manifest's entry for a file the job's role must produce (the manifest must list it)."""
    entry = ((job.manifest or {}).get("files") or {}).get(name)
    if not isinstance(entry, dict):
        raise OrchError(f"job {job.name!r}: manifest.json does not list {name}, which a {job.role} job must produce",
                        ExitCode.DATA, hint="the job's results are incomplete or were changed on the host")
    return entry


def _read_scores(job: JobRecord) -> List[Dict[str, Any]]:
    """The rows of a job's scores.jsonl, read line by line and hashed as they are read;
    the file must be a regular file of the manifest's size and sha256."""
    import os
    import stat

    path = job.dir / "scores.jsonl"
    expected = listed_file(job, "scores.jsonl")
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise OrchError(f"job {job.name!r}: {path} is missing although manifest.json says the job finished",
                        ExitCode.DATA) from None
    if not stat.S_ISREG(st.st_mode):
        raise OrchError(f"job {job.name!r}: {path} is not a regular file", ExitCode.DATA,
                        hint="fetch the run again (a fetch never writes links)")
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
        for lineno, line in enumerate(iter(lambda: fh.readline(MAX_LINE + 1), b""), 1):
            digest.update(line)
            if problem is not None:
                continue
            if len(line) > MAX_LINE:
                problem = f"{path}:{lineno}: longer than {MAX_LINE >> 10} KB, not a score row"
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line.decode("utf-8", errors="replace"))
            except json.JSONDecodeError as exc:
                problem = f"{path}:{lineno}: not valid JSON ({exc.msg})"
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


def expected_n_test(jobs: Sequence[JobRecord]) -> int:
    """The run's number of test texts: every scoring job's manifest must give the same n_test."""
    seen: Dict[int, List[str]] = {}
    for job in jobs:
        n = (job.manifest or {}).get("n_test")
        if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
            raise OrchError(f"job {job.name!r}: manifest.json gives no n_test (the number of test texts), got {n!r}",
                            ExitCode.DATA, hint="the job's results are incomplete or were changed on the host")
        seen.setdefault(n, []).append(job.name)
    if len(seen) > 1:
        desc = ", ".join(f"{n} in {name_examples(names)}" for n, names in sorted(seen.items()))
        raise OrchError(f"the jobs' manifests disagree on n_test: {desc}", ExitCode.DATA,
                        hint="every job of a run scores the same test texts: a job's results were cut short or changed")
    return next(iter(seen))


def check_job_rows(job: JobRecord, rows: List[Dict[str, Any]], classes: Sequence[str], n_test: int) -> List[str]:
    """One job on its own (a partial fetch cannot merge): one row per test text (class job)
    or per test text and class (classifier), none twice.  Returns the job's test ids."""
    pairs = set()
    twice: List[str] = []
    for row in rows:
        key = (_scalar_str(row.get("id")), _scalar_str(row.get("class")))
        if key in pairs:
            twice.append(str(key[0]))
        pairs.add(key)
    if twice:
        raise OrchError(f"job {job.name!r}: {len(twice)} text(s) scored more than once for the same class: "
                        f"{name_examples(twice)}", ExitCode.DATA)
    per_text = len(classes) if job.role == "classifier" else 1
    if len(pairs) != n_test * per_text:
        raise OrchError(f"job {job.name!r}: scores.jsonl has {len(pairs)} rows, but n_test {n_test} needs "
                        f"{n_test * per_text}", ExitCode.DATA,
                        hint="the job's results were cut short or changed on the host")
    return sorted({tid for tid, _ in pairs if tid is not None})


def check_same_texts(ids_of: Dict[str, List[str]]) -> None:
    """Every job scored the same test ids."""
    names = list(ids_of)
    first = set(ids_of[names[0]])
    for name in names[1:]:
        other = set(ids_of[name])
        if other != first:
            extra, missing = sorted(other - first), sorted(first - other)
            raise OrchError(f"job {name!r} scored other test texts than job {names[0]!r}: "
                            + "; ".join(part for part in (
                                f"{len(extra)} only in {name!r}: {name_examples(extra)}" if extra else "",
                                f"{len(missing)} only in {names[0]!r}: {name_examples(missing)}" if missing else "")
                                if part), ExitCode.DATA, hint="every job of a run scores the same test texts")


def name_examples(items: Sequence[Any]) -> str:
    shown = ", ".join(repr(x) for x in list(items)[:MAX_EXAMPLES])
    more = len(items) - MAX_EXAMPLES
    return shown + (f" (and {more} more)" if more > 0 else "")


def _scalar_str(value: Any) -> Optional[str]:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int)):
        return str(value)
    return None


def merge_scores(
    job_rows: Sequence[Tuple[str, Optional[str], List[Dict[str, Any]]]], classes: Sequence[str]
) -> Scores:
    """Merge per-job score rows into one (text x class) table, refusing anything inconsistent.

    ``job_rows`` holds (job name, the class the job scores or None for all, rows).
    Refused, with example ids and the job named: malformed rows, a class outside
    ``classes``, a row for another class than the job's, duplicate (id, class) rows,
    a text whose label differs between rows, and texts some class has no score for.
    """
    classes = [str(c) for c in classes]
    col = {c: i for i, c in enumerate(classes)}
    if len(col) != len(classes) or len(classes) < 2:
        raise OrchError(f"need at least two distinct classes, got {classes}", ExitCode.DATA)
    owner: Dict[str, str] = {}  # class -> job that scores it
    for job, job_class, _ in job_rows:
        for c in [job_class] if job_class is not None else classes:
            if c not in col:
                raise OrchError(f"job {job!r} scores class {c!r}, which is not one of the classes {classes}", ExitCode.DATA)
            if c in owner:
                raise OrchError(f"class {c!r} is scored by two jobs: {owner[c]!r} and {job!r}", ExitCode.DATA)
            owner[c] = job
    unscored = [c for c in classes if c not in owner]
    if unscored:
        raise OrchError(f"no job scores class(es) {name_examples(unscored)}", ExitCode.DATA)

    index: Dict[str, int] = {}
    ids: List[str] = []
    label_of: List[str] = []
    first_job: List[str] = []
    values: Dict[Tuple[int, int], Tuple[float, float, float]] = {}
    for job, job_class, rows in job_rows:
        duplicates: List[str] = []
        disagree: List[str] = []
        for row in rows:
            where = f"job {job!r}, scores.jsonl line {row.get('_where', '?')}"
            tid = _scalar_str(row.get("id"))
            label = _scalar_str(row.get("label"))
            cls = _scalar_str(row.get("class"))
            nll, tokens, se = row.get("nll"), row.get("tokens"), row.get("se")
            if tid is None or label is None or cls is None:
                raise OrchError(f"{where}: needs string fields id, label and class", ExitCode.DATA)
            if isinstance(nll, bool) or not isinstance(nll, (int, float)) or not math.isfinite(nll):
                raise OrchError(f"{where}: text {tid!r}: nll must be a finite number, got {nll!r}", ExitCode.DATA)
            if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 1:
                raise OrchError(f"{where}: text {tid!r}: tokens must be a positive integer, got {tokens!r}", ExitCode.DATA)
            if se is not None and (isinstance(se, bool) or not isinstance(se, (int, float))):
                raise OrchError(f"{where}: text {tid!r}: se must be a number or null, got {se!r}", ExitCode.DATA)
            if cls not in col:
                raise OrchError(f"{where}: text {tid!r}: class {cls!r} is not one of the classes {classes}", ExitCode.DATA)
            if job_class is not None and cls != job_class:
                raise OrchError(f"{where}: text {tid!r} is scored for class {cls!r}, but this job's class is {job_class!r}", ExitCode.DATA)
            if label not in col:
                raise OrchError(f"{where}: text {tid!r} has label {label!r}, which is not one of the classes {classes}", ExitCode.DATA)
            i = index.get(tid)
            if i is None:
                i = index[tid] = len(ids)
                ids.append(tid)
                label_of.append(label)
                first_job.append(job)
            elif label_of[i] != label:
                disagree.append(f"{tid} ({label!r} here, {label_of[i]!r} in job {first_job[i]!r})")
                continue
            key = (i, col[cls])
            if key in values:
                duplicates.append(tid)
                continue
            values[key] = (float(nll), float(tokens), float("nan") if se is None else float(se))
        if duplicates:
            raise OrchError(
                f"job {job!r}: {len(duplicates)} text(s) scored more than once for the same class: {name_examples(duplicates)}",
                ExitCode.DATA,
            )
        if disagree:
            raise OrchError(
                f"job {job!r}: {len(disagree)} text(s) carry a different label than in another job: {name_examples(disagree)}",
                ExitCode.DATA,
                hint="the jobs did not score the same test set",
            )
    if not ids:
        raise OrchError("the score files hold no test texts", ExitCode.DATA)

    n, k = len(ids), len(classes)
    table = np.full((n, k, 3), np.nan)
    have = np.zeros((n, k), dtype=bool)
    for (i, j), v in values.items():
        table[i, j] = v
        have[i, j] = True
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
    y = np.array([col[label] for label in label_of], dtype=np.int64)
    return Scores(ids, classes, y, table[:, :, 0], table[:, :, 1], table[:, :, 2])


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
            raise OrchError(f"the jobs' manifests give the classes {found}, but run.yaml says {configured}",
                            ExitCode.DATA, hint="the host's results are not this run's")
        return found
    if run.experiment.data.classes:
        return list(run.experiment.data.classes)
    return sorted({j.label for j in run.scoring_jobs() if j.label is not None})


def load_scores(run: RunData) -> Scores:
    """Read and merge the score files of the run's scoring jobs (all must be complete)."""
    jobs = run.scoring_jobs()
    if not jobs:
        raise OrchError(
            f"run {run.run_id!r} has no {run.scoring_role!r} job to evaluate (model.kind is {run.experiment.model.kind!r})",
            ExitCode.RUN_STATE,
        )
    incomplete = [j.name for j in jobs if j.manifest is None]
    if incomplete:
        raise OrchError(
            f"run {run.run_id!r}: job(s) {name_examples(incomplete)} have no manifest.json here, so their results are not complete",
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
        raise OrchError(f"the score files hold {scores.n} test texts, but the manifests' n_test is {n_test}",
                        ExitCode.DATA, hint="the jobs' results were cut short or changed on the host")
    return scores


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


# --------------------------------------------------------------------------- scoring


def resolve_prior(run: RunData, classes: Sequence[str], mode: str) -> Dict[str, Any]:
    """{"mode", "applied", "counts", "log_prior"}: log prior per class (``classes`` order).

    ``train`` takes the class frequencies from the class jobs' manifest ``train_texts``
    (or a ``train_counts`` mapping in any scoring manifest). A discriminative classifier's
    scores are posteriors that already hold the training frequencies, so no prior is
    added to them.
    """
    k = len(classes)
    if mode not in ("uniform", "train"):
        raise OrchError(f"eval.prior: expected 'uniform' or 'train', got {mode!r}", ExitCode.CONFIG)
    uniform = {"mode": mode, "applied": "uniform", "counts": None, "log_prior": [-math.log(k)] * k}
    if mode == "uniform":
        return uniform
    if run.scoring_role == "classifier":
        return {**uniform, "applied": "none (classifier scores are posteriors)"}
    counts: Dict[str, int] = {}
    for job in run.scoring_jobs():
        given = (job.manifest or {}).get("train_counts")
        if isinstance(given, dict):
            counts.update({str(c): v for c, v in given.items()})
    for job in run.scoring_jobs():
        if job.role == "class" and job.label not in counts:
            counts[job.label] = (job.manifest or {}).get("train_texts")  # type: ignore[index]
    bad = [c for c in classes if isinstance(counts.get(c), bool) or not isinstance(counts.get(c), int) or counts[c] <= 0]
    if bad:
        raise OrchError(
            f"eval.prior is 'train' but the manifests give no positive train_texts for class(es) {name_examples(bad)}",
            ExitCode.DATA,
            hint="set eval.prior: uniform, or re-run the jobs with a remote side that records train_texts",
        )
    total = sum(counts[c] for c in classes)
    return {
        "mode": mode,
        "applied": "train",
        "counts": {c: counts[c] for c in classes},
        "log_prior": [math.log(counts[c] / total) for c in classes],
    }


def class_scores(scores: Scores, log_prior: Sequence[float], per_token: bool = False) -> np.ndarray:
    """(n, C) log-joint scores; ``per_token`` divides by the token counts (see module doc)."""
    lp = np.asarray(log_prior, dtype=float)[None, :]
    if not per_token:
        return -scores.nll + lp
    return -scores.nll / scores.tokens + lp / scores.tokens.mean(axis=1, keepdims=True)


def predict(score: np.ndarray) -> np.ndarray:
    return np.argmax(score, axis=1)


def margin(score: np.ndarray) -> np.ndarray:
    """Binary: score(classes[1]) - score(classes[0]). More classes: top-1 minus top-2."""
    if score.shape[1] == 2:
        return score[:, 1] - score[:, 0]
    top = np.sort(score, axis=1)
    return top[:, -1] - top[:, -2]


def confidence_margin(score: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 score (>= 0): how sure the prediction is, in score units."""
    top = np.sort(score, axis=1)
    return top[:, -1] - top[:, -2]


# --------------------------------------------------------------------------- metrics


def bootstrap_ci(
    correct: np.ndarray, resamples: int, seed: int = BOOTSTRAP_SEED, level: float = CI_LEVEL
) -> Optional[List[float]]:
    """Percentile bootstrap interval of the accuracy (scipy.stats.bootstrap, seeded)."""
    correct = np.asarray(correct, dtype=bool)  # bool resamples are twice as fast as float
    if resamples <= 0:
        return None
    if correct.size < 2 or np.all(correct == correct[0]):
        value = float(correct.mean())
        return [value, value]
    from scipy import stats

    kwargs: Dict[str, Any] = dict(
        n_resamples=resamples, batch=max(1, min(resamples, 4_000_000 // correct.size)),
        vectorized=True, confidence_level=level, method="percentile",
    )
    rng = np.random.default_rng(seed)
    try:
        res = stats.bootstrap((correct,), np.mean, rng=rng, **kwargs)
    except TypeError:  # scipy < 1.15 names it random_state
        res = stats.bootstrap((correct,), np.mean, random_state=rng, **kwargs)
    return [float(res.confidence_interval.low), float(res.confidence_interval.high)]


def bands_for(kind: str, setting: str) -> str:
    if setting == "auto":
        return "mdlm" if kind == "mdlm" else "poc"
    if setting not in BANDS:
        raise OrchError(f"eval.bands: expected auto, poc or mdlm, got {setting!r}", ExitCode.CONFIG)
    return setting


def verdict(accuracy: float, bands: str) -> str:
    """The seed plan's verdict for an accuracy in [0, 1] (bands "poc" or "mdlm")."""
    pct = round(accuracy * 100.0, 9)  # 0.85 must count as exactly 85%
    for label, bound, strict in BANDS[bands]:
        if pct > bound or (not strict and pct == bound):
            return label
    return FAILED


def describe_bands(bands: str) -> str:
    (e, eb, _), (g, gb, _), (a, ab, _) = BANDS[bands]
    return f"{e} > {eb:g}%, {g} {gb:g}-{eb:g}%, {a} {ab:g}-{gb:g}%, {FAILED} < {ab:g}%"


def _roc_auc(y: np.ndarray, score: np.ndarray) -> Optional[float]:
    from sklearn.metrics import roc_auc_score

    k = score.shape[1]
    if len(np.unique(y)) < 2:
        return None  # undefined with one class present
    if k == 2:
        return float(roc_auc_score(y == 1, margin(score)))
    # one-vs-rest on the log posterior (rank-safe where softmax would saturate), macro mean
    from scipy.special import logsumexp

    log_post = score - logsumexp(score, axis=1, keepdims=True)
    aucs = [roc_auc_score(y == c, log_post[:, c]) for c in range(k) if 0 < np.sum(y == c) < len(y)]
    return float(np.mean(aucs)) if aucs else None


def classification_metrics(
    y: np.ndarray, score: np.ndarray, classes: Sequence[str], bands: str,
    resamples: int, seed: int = BOOTSTRAP_SEED,
) -> Dict[str, Any]:
    """Accuracy (+ bootstrap CI), macro-F1, per-class P/R/F1, confusion matrix, ROC-AUC, verdict."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    labels = list(range(len(classes)))
    pred = predict(score)
    correct = pred == y
    accuracy = float(accuracy_score(y, pred))
    precision, recall, f1, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    return {
        "accuracy": accuracy,
        "accuracy_ci95": bootstrap_ci(correct, resamples, seed),
        "correct": int(correct.sum()),
        "n": int(len(y)),
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "per_class": {
            c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]), "support": int(support[i])}
            for i, c in enumerate(classes)
        },
        "confusion_matrix": confusion_matrix(y, pred, labels=labels).tolist(),
        "roc_auc": _roc_auc(y, score),
        "verdict": verdict(accuracy, bands),
    }


def quantile_bins(values: np.ndarray, n_bins: int) -> List[np.ndarray]:
    """Boolean masks of quantile bins of ``values`` (equal values share a bin; empty bins dropped)."""
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, n_bins + 1)))
    which = np.searchsorted(edges[1:-1], values, side="right") if edges.size > 1 else np.zeros(len(values), int)
    masks = [which == b for b in range(max(edges.size - 1, 1))]
    return [m for m in masks if m.any()]


def length_buckets(y: np.ndarray, preds: Dict[str, np.ndarray], length: np.ndarray, n_buckets: int = 5) -> List[Dict[str, Any]]:
    """Accuracy per text-length bucket (quantiles of the token count; equal lengths share a bucket)."""
    out = []
    for mask in quantile_bins(length, n_buckets):
        row: Dict[str, Any] = {
            "min_tokens": float(length[mask].min()),
            "max_tokens": float(length[mask].max()),
            "n": int(mask.sum()),
        }
        for name, pred in preds.items():
            row[name] = float(np.mean(pred[mask] == y[mask]))
        out.append(row)
    return out


def calibration_bins(correct: np.ndarray, conf_margin: np.ndarray, n_bins: int = 10) -> List[Dict[str, Any]]:
    """Accuracy against the top-1 margin (quantile bins). ``implied`` is the accuracy the
    margin claims if the scores were calibrated log-likelihoods: sigmoid(margin) (binary)."""
    from scipy.special import expit

    out = []
    for mask in quantile_bins(conf_margin, n_bins):
        m = conf_margin[mask]
        out.append({
            "margin_min": float(m.min()), "margin_max": float(m.max()), "n": int(mask.sum()),
            "accuracy": float(correct[mask].mean()), "implied": float(expit(m).mean()),
        })
    return out


def job_timings(run: RunData) -> Dict[str, Any]:
    """Wall time of each job (status.json started/ended), GPU time, and manifest timings."""
    jobs: Dict[str, Any] = {}
    gpu_s = wall_s = 0.0
    for job in run.jobs:
        status = job.status or {}
        manifest = job.manifest or {}
        started, ended = status.get("started"), status.get("ended")
        seconds = None
        if isinstance(started, (int, float)) and isinstance(ended, (int, float)) and ended >= started:
            seconds = float(ended - started)
            wall_s += seconds
            if job.gpu and manifest.get("device", "cuda") != "cpu":
                gpu_s += seconds
        timings = manifest.get("timings") if isinstance(manifest.get("timings"), dict) else {}
        jobs[job.name] = {
            "role": job.role, "label": job.label, "state": status.get("state", "pending"),
            "seconds": seconds, "gpu": job.gpu, "device": manifest.get("device"),
            "gpu_name": manifest.get("gpu_name"), "train_texts": manifest.get("train_texts"),
            "train_tokens": manifest.get("train_tokens"), **timings,
        }
    train_tokens = sum(
        j.manifest["train_tokens"] for j in run.jobs
        if j.manifest and isinstance(j.manifest.get("train_tokens"), int) and not isinstance(j.manifest.get("train_tokens"), bool)
    )
    return {"jobs": jobs, "gpu_seconds": gpu_s, "wall_seconds": wall_s, "train_tokens": int(train_tokens)}


def software_facts(run: RunData) -> Dict[str, Any]:
    """Host / GPU / software facts from local.json and the manifests (first value wins)."""
    facts: Dict[str, Any] = {"host": run.config.get("host") or run.local.get("host"),
                             "code_hash": run.config.get("code_hash"),
                             "created": None if run.config.get("created") is None else str(run.config["created"])}
    if run.local.get("gpus") is not None:  # written by `orch run` from the host probe
        facts["gpus"] = run.local["gpus"]
    host_facts = run.local.get("host_facts")
    if isinstance(host_facts, dict):
        facts.update(host_facts)
    for job in run.jobs:
        for key in ("device", "gpu_name", "torch", "transformers"):
            value = (job.manifest or {}).get(key)
            if value is not None:
                facts.setdefault(key, value)
    return facts


def ids_digest(ids: Iterable[str]) -> str:
    """sha256 of the sorted test ids: two runs with the same digest scored the same texts."""
    h = hashlib.sha256()
    for tid in sorted(ids):
        h.update(tid.encode("utf-8") + b"\n")
    return h.hexdigest()


@dataclass
class Evaluation:
    """Everything one evaluation computed; report.py and plots.py render it."""

    run: RunData
    scores: Scores
    prior: Dict[str, Any]
    bands: str
    score: np.ndarray  # (n, C) raw log-joint
    score_norm: np.ndarray  # (n, C) per-token
    metrics: Dict[str, Any] = field(default_factory=dict)

    @cached_property
    def pred(self) -> np.ndarray:
        return predict(self.score)

    @cached_property
    def pred_norm(self) -> np.ndarray:
        return predict(self.score_norm)


def evaluate(run: RunData, scores: Optional[Scores] = None, *, prior: Optional[str] = None,
             bands: Optional[str] = None, resamples: Optional[int] = None) -> Evaluation:
    """Compute every metric of a loaded run (pure: reads nothing but the run's score files)."""
    spec = run.experiment.eval
    scores = scores if scores is not None else load_scores(run)
    resamples = spec.bootstrap if resamples is None else resamples
    if resamples < 0:
        raise OrchError(f"eval.bootstrap: expected a count >= 0, got {resamples}", ExitCode.CONFIG)
    band_set = bands_for(run.experiment.model.kind, bands or spec.bands)
    prior_info = resolve_prior(run, scores.classes, prior or spec.prior)
    score = class_scores(scores, prior_info["log_prior"], per_token=False)
    score_norm = class_scores(scores, prior_info["log_prior"], per_token=True)
    ev = Evaluation(run, scores, prior_info, band_set, score, score_norm)

    raw = classification_metrics(scores.y, score, scores.classes, band_set, resamples)
    same = np.array_equal(ev.pred, ev.pred_norm)  # then the bootstrap would repeat itself
    norm = classification_metrics(scores.y, score_norm, scores.classes, band_set, 0 if same else resamples)
    if same:
        norm["accuracy_ci95"] = raw["accuracy_ci95"]
    length = scores.tokens.mean(axis=1)
    timings = job_timings(run)
    exp = run.experiment
    m: Dict[str, Any] = {
        "schema": 1,
        "run_id": run.run_id,
        "experiment": exp.name,
        "kind": exp.model.kind,
        "init": exp.model.init,
        "n": scores.n,
        "classes": scores.classes,
        "class_counts": {c: int(np.sum(scores.y == i)) for i, c in enumerate(scores.classes)},
        "positive_class": scores.classes[1] if len(scores.classes) == 2 else None,
        "prior": prior_info,
        **{k: v for k, v in raw.items() if k != "verdict"},
        "verdict": {"label": raw["verdict"], "bands": band_set, "title": BAND_TITLES[band_set],
                    "thresholds": describe_bands(band_set)},
        "per_token": norm,
        "bootstrap": {"resamples": resamples, "seed": BOOTSTRAP_SEED, "level": CI_LEVEL, "method": "percentile"},
        "by_length": length_buckets(scores.y, {"accuracy": ev.pred, "accuracy_per_token": ev.pred_norm}, length),
        "calibration": calibration_bins(ev.pred == scores.y, confidence_margin(score)),
        "mean_tokens": float(length.mean()),
        "scored_tokens": int(scores.tokens.sum()),
        "mean_se": None if np.all(np.isnan(scores.se)) else float(np.nanmean(scores.se)),
        "timings": timings,
        "gpu_seconds": timings["gpu_seconds"],
        "train_tokens": timings["train_tokens"],
        "facts": software_facts(run),
        "min_accuracy": spec.min_accuracy,
        "meets_min_accuracy": raw["accuracy"] >= spec.min_accuracy,
        "test_ids_sha256": ids_digest(scores.ids),
    }
    ev.metrics = m
    return ev


def check_min_accuracy(metrics: Dict[str, Any]) -> None:
    """Raise OrchError(FAILED) when the run set eval.min_accuracy and fell below it."""
    if not metrics.get("meets_min_accuracy", True):
        raise OrchError(
            f"run {metrics.get('run_id')!r}: accuracy {metrics['accuracy']:.2%} is below eval.min_accuracy "
            f"{metrics['min_accuracy']:.2%}",
            ExitCode.FAILED,
        )


def evaluate_run(run_dir: Path, console: Optional["Console"] = None, *, prior: Optional[str] = None,
                 bands: Optional[str] = None, plots: bool = True) -> Dict[str, Any]:
    """Evaluate a fetched run: write metrics.json, predictions.csv, plots/*.png and report.md
    into ``run_dir``, print a summary on ``console`` (silent when None), return the metrics.

    ``prior``/``bands`` override the run's eval.prior / eval.bands. Does not check
    eval.min_accuracy: call :func:`check_min_accuracy` for that.
    """
    from orchestrator.results import report

    ev = evaluate(load_run(Path(run_dir)), prior=prior, bands=bands)
    report.write_all(ev, plots=plots)
    if console is not None:
        report.print_summary(console, ev.metrics, Path(run_dir))
    return ev.metrics
