"""A fetched run as data: its record, its jobs' host documents, and their scores merged
into one (text x class) table, with the completeness rule of docs/CONTRACT.md.

Pure reads of the run folder (nothing is written), shared by `orch eval`, `orch compare`
and `fetch-results` (which checks its staged copy with the same code before it swaps it
in).  Everything a host wrote is untrusted: each refusal is one OrchError that names the
job, the file, the line and example ids.

Each score file is parsed a line at a time (and hashed as it is read); the rows are merged
into the table by orchestrator/results/scoretable.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from orchestrator.contract.hostdocs import BadDocument, check_manifest, check_status, read_local
from orchestrator.contract.records import load_record, load_resolved
from orchestrator.errors import ExitCode, OrchError
from orchestrator.results import scoretable
from orchestrator.results.room import MemoryBudget, memory_shortfall
from orchestrator.results.scoretable import MAX_EXAMPLES, JobColumns, ScoreMerge, Scores, name_examples
from remote.spec import Experiment, SpecError, build, training_role

# What each role produces; a class job of an adaptive-draws run only trains (its run's
# score job scores), so what a run's jobs must produce is also decided by scoring_role.
ROLE_FILES = {"class": ("scores.jsonl",), "classifier": ("scores.jsonl",), "score": ("scores.jsonl",), "pretrain": ()}
MAX_LINE = 1 << 20  # a score row is ~150 bytes plus ~20 a draw (K <= ~50,000): a longer line is not one


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
    return "score" if exp.score.is_adaptive else training_role(exp.model.kind)  # adaptive: MDLM only


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
    # The run's own record: damaged, it is the same refusal (exit 8) as for every command.
    local = load_record(run_dir, to_reach=False) if local_path.is_file() else {}

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
    # The folder's name, not the id run.yaml records: a copied run folder (cp -r runs/A runs/B)
    # is evaluated, and named, as the folder it is (metrics.json's copy_of says whose it was).
    return RunData(run_dir, run_dir.name, config, experiment, local, jobs)


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


def _read_scores(job: FetchedJob, add: Callable[[List[Dict[str, Any]]], Optional[str]]) -> Optional[str]:
    """Hand the rows of a job's scores.jsonl to ADD a chunk at a time (at most CHUNK_ROWS
    rows, or the rows of CHUNK_BYTES of the file: one row may be 1 MB), reading the file
    line by line and hashing it as it is read; the file must be a regular file of the
    manifest's size and sha256.  Each row carries its line number as ``_where`` (for
    messages).  Returns the first problem (an unparseable line, or what ADD found), once
    the hash has said the file is the one the manifest lists."""
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
    held = 0  # bytes of the lines in ROWS
    problem: Optional[str] = None  # the first one; reported unless the hash says "corrupt"
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
            except ValueError as exc:  # an integer of over 4300 digits: valid JSON, refused by int()
                problem = f"{path}:{lineno}: not a score row ({str(exc)[:80]})"
                continue
            except RecursionError:
                problem = f"{path}:{lineno}: not valid JSON (nested too deeply)"
                continue
            if not isinstance(row, dict):
                problem = f"{path}:{lineno}: expected a JSON object"
                continue
            row["_where"] = lineno
            rows.append(row)
            held += len(line)
            if len(rows) >= scoretable.CHUNK_ROWS or held >= scoretable.CHUNK_BYTES:
                problem, rows, held = add(rows), [], 0
        if problem is None:
            problem = add(rows)
    if digest.hexdigest() != expected["sha256"]:
        raise OrchError(
            f"job {job.name!r}: scores.jsonl does not match the sha256 in manifest.json",
            ExitCode.DATA,
            hint="the copy is corrupt or was changed: fetch the run again",
        )
    return problem


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


def check_memory(jobs: Sequence[FetchedJob]) -> None:
    """Refuse score files this machine has not the memory to read, by their size
    (results/room.py; what they take as they are read is counted by a MemoryBudget)."""
    short = memory_shortfall(sum(listed_file(j, "scores.jsonl")["size"] for j in jobs))
    if short:
        raise OrchError(
            f"the run's results are too big for this machine: {short}",
            ExitCode.RUN_STATE,
            hint="evaluate the run on a machine with more memory (copy its runs/ folder there)",
        )


def check_job_rows(job: FetchedJob, classes: Sequence[str], n_test: int, budget: MemoryBudget) -> List[str]:
    """One job on its own (a partial fetch cannot merge): valid rows, one per test text
    (class job) or per test text and class (classifier), none twice.  Returns the job's
    test ids."""
    job_class = job.label if job.role == "class" else None
    col = {c: i for i, c in enumerate(classes)}
    if job_class is not None and job_class not in col:
        raise OrchError(
            f"job {job.name!r} scores class {job_class!r}, which is not one of the classes {list(classes)}",
            ExitCode.DATA,
        )
    part = JobColumns(job.name, job_class, col, list(classes), budget=budget)
    problem = _read_scores(job, part.add)
    columns, problem = part.finish() if problem is None else (None, problem)
    if problem is not None:
        raise OrchError(problem, ExitCode.DATA)
    ids = columns.ids
    pairs = list(zip(ids, columns.cls.tolist()))
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
    return sorted(set(ids))


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
    check_memory(jobs)
    score = run.experiment.score
    max_draws = score.adaptive.max if score.is_adaptive else score.mdlm_draws
    merge = ScoreMerge([(j.name, j.label if j.role == "class" else None) for j in jobs], classes, max_draws)
    for j in jobs:
        part = merge.job(j.name)
        merge.done(part, _read_scores(j, part.add))
    scores = merge.result()
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
    check_memory(jobs)
    budget = MemoryBudget()  # each job's columns are let go once checked, but count them all
    ids_of = {j.name: check_job_rows(j, classes, n_test, budget) for j in jobs}
    check_same_texts(ids_of)


def scores_digest(run: RunData) -> str:
    """sha256 over the scoring jobs' scores.jsonl hashes (as their manifests list them):
    what an evaluation of this run was computed from."""
    h = hashlib.sha256()
    for job in run.scoring_jobs():
        h.update(f"{job.name}\0{listed_file(job, 'scores.jsonl')['sha256']}\n".encode())
    return h.hexdigest()
