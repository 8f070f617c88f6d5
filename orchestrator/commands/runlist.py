"""`orch runs`: each run folder as the listing shows it (no SSH), and --drop-previous.
Apart from commands/runs.py, which `orch run` and `orch status` load: these read records,
results and earlier copies that a launch never needs."""

from __future__ import annotations

import json
import time
from typing import List

from orchestrator import backends, output, terminal
from orchestrator.config.project import Project, copy_of, not_a_run
from orchestrator.contract import records
from orchestrator.errors import OrchError
from orchestrator.results.room import size_words
from orchestrator.runs import previous
from orchestrator.runs.state import listed_state, results_missing, rows_from_local
from remote.jobstate import UNKNOWN


def _number(value: object) -> float:
    """A time kept in local.json, or 0 when it is not a number (an old or hand-edited record)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _scores_damaged(run_dir, planned, copy_of_run) -> List[str]:
    """What is wrong with the fetched score files here, found cheaply (a listing must not
    hash every file of every run: `orch eval` does that): a manifest.json that does not
    parse, a scores.jsonl whose size is not the manifest's, or one whose content is not the
    manifest's although its size is.  Only a file changed after metrics.json was written (by
    its mtime) is hashed: a copy (`cp -r`) or a restored backup has new times and its
    files their fetched content, which is not damage.  COPY_OF_RUN: the run this folder is a
    copy of (fetch-results refuses a copy), or None."""
    from orchestrator.contract.hostdocs import scoring_roles
    from remote.files import sha256_file

    roles = scoring_roles(planned)
    try:
        evaluated = (run_dir / "metrics.json").stat().st_mtime
    except OSError:
        evaluated = None
    if copy_of_run is None:
        again = f"`orch fetch-results {run_dir.name}` fetches a verified copy again"
    else:
        again = f"copy it again from run {copy_of_run}'s folder, or fetch that run again"
    found = []
    for job in planned:
        job_dir = run_dir / "jobs" / job["name"]
        if job.get("role", "class") not in roles or not (job_dir / "manifest.json").exists():
            continue  # not fetched, or removed by hand (results_missing says so)
        try:
            entry = json.loads((job_dir / "manifest.json").read_text())["files"]["scores.jsonl"]
            size, digest = entry["size"], entry["sha256"]
        except (OSError, ValueError, KeyError, TypeError):
            found.append(f"{job_dir / 'manifest.json'} is damaged: {again}")
            continue
        scores = job_dir / "scores.jsonl"
        try:
            st = scores.stat()
        except OSError:
            found.append(f"{scores} is missing: {again}")
            continue
        if st.st_size != size:
            found.append(f"{scores} has {st.st_size} bytes, its manifest says {size}: {again}")
        elif evaluated is not None and st.st_mtime > evaluated and sha256_file(str(scores)) != digest:
            found.append(f"{scores} is not what its manifest's sha256 says (changed after metrics.json): {again}")
    return found


def listed(run_dir) -> dict:
    """One run folder as `orch runs` lists it (no SSH): its record, the job states last
    seen, and what is really here (results removed by hand, a copy of another run's folder,
    earlier copies kept by fetches), with what to do about each in ``notes``."""
    try:
        if not (run_dir / "run.yaml").is_file():
            raise not_a_run(run_dir)
        record, doc = records.load_record(run_dir, to_reach=False), records.load_resolved(run_dir)
        backend = backends.for_record(record)  # an unknown one (a hand-edited record) is this folder's error
    except OrchError as exc:
        # One damaged folder must not hide the others.
        return {
            "run": run_dir.name,
            "experiment": None,
            "host": None,
            "kind": "?",
            "state": "unreadable",
            "launched": "-",
            "jobs": {},
            "accuracy": None,
            "error": exc.message,
        }
    rows = rows_from_local(run_dir, doc["jobs"], backend)
    seen = record.get("job_states") or {}
    # The states `orch status` or `orch cancel` last saw: for jobs not fetched yet, and
    # for all when seen after the last fetch (a partial fetch's copy says "running").
    newer = _number(record.get("job_states_at")) > _number(record.get("fetched_at"))
    for r in rows:
        if r.name in seen and (r.state == UNKNOWN or newer):
            r.state = seen[r.name]
    acc, damaged = None, []
    metrics_path = run_dir / "metrics.json"
    if metrics_path.exists():
        try:
            acc = json.loads(metrics_path.read_text()).get("accuracy")
        except (OSError, ValueError, AttributeError):
            damaged.append(f"{metrics_path} is damaged: `orch eval {run_dir.name}` writes it again")
    state = listed_state(record.get("state"), rows)
    notes = []
    # A fetched run whose results were removed here by hand (`orch eval` refuses it): not "fetched".
    missing = []
    if state == "fetched":
        missing = results_missing(run_dir, doc["jobs"])
    elif state == "partial" and not (run_dir / "jobs").is_dir():
        missing = [j["name"] for j in doc["jobs"]]
    if missing:
        state = f"{state}, results missing here"
        gone = (
            f"{run_dir / 'jobs'} is gone"
            if not (run_dir / "jobs").is_dir()
            else f"the results of {', '.join(missing)} are not in {run_dir / 'jobs'}"
        )
        notes.append(f"{gone}: `orch fetch-results {run_dir.name}` fetches them again")
    other = copy_of(run_dir)
    if (run_dir / "jobs").is_dir():
        damaged += _scores_damaged(run_dir, doc["jobs"], other)
    if damaged:
        state = f"{state}, damaged here"
        acc = None  # not the accuracy of what is here
        notes += damaged
    if other is not None:
        state = f"{state} (a copy of run {other})"
        notes.append(
            f"a copy of run {other}'s folder (its local.json names {other}): status, logs, cancel, fetch-results "
            f"and --resume refuse it; `orch eval {run_dir.name}` evaluates it here"
        )
    earlier = previous.earlier(run_dir)
    if earlier.count:
        notes.append(previous.earlier_line(run_dir, earlier))
    return {
        "run": run_dir.name,
        "experiment": record.get("experiment"),
        "host": record.get("host"),
        "kind": doc["experiment"]["model"]["kind"],
        "state": state,
        "launched": time.strftime("%Y-%m-%d %H:%M", time.localtime(record.get("launched_at", 0))),
        "jobs": {r.name: r.state for r in rows},
        "accuracy": acc,
        "study": (record.get("study") or {}).get("name") if isinstance(record.get("study"), dict) else None,
        "copy_of": other,
        "results_missing": missing,
        "damaged": damaged,
        "previous": {"copies": earlier.count, "bytes": earlier.bytes},
        "notes": notes,
    }


def drop_previous(project: Project, names: List[str], as_json: bool) -> None:
    """`orch runs --drop-previous RUN...`: remove each run's earlier copies (runs/previous.py),
    saying what was removed (stdout) and what was left there.  A run refused (a fetch at
    work, no such run) does not stop the others: every run's outcome is said (with --json,
    as one list, a refused run as its ``error``), then the command fails with the refusals."""
    done, refused = [], []
    for name in names:
        try:
            run_dir = project.existing_run(name, copy_ok=True)  # local only: a copy's own previous/ is its own
            removed, left = previous.drop(run_dir)
        except OrchError as exc:
            refused.append(exc)
            done.append({"run": name, "error": exc.message})
            continue
        base = run_dir / previous.PREVIOUS
        done.append(
            {
                "run": run_dir.name,
                "removed": [f.name for f in removed.folders],
                "freed_bytes": removed.bytes,
                "left": left,
            }
        )
        if as_json:
            continue
        if removed.count:
            words = f"{removed.count} earlier cop{'y' if removed.count == 1 else 'ies'}"
            output.out.print(
                f"{run_dir.name}: removed {words} of its results from {base} ({size_words(removed.bytes)} freed)",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        else:
            output.out.print(f"{run_dir.name}: no earlier copies in {base}", markup=False, highlight=False)
        if left:
            output.warn(
                f"{base} still holds {', '.join(terminal.visible(n) for n in left)}: not folders of earlier "
                "copies (a link or a file), so orch left them; remove them yourself if they are not needed"
            )
    if as_json:
        print(json.dumps(done))
    if len(refused) == 1:
        raise refused[0]
    if refused:
        raise OrchError(
            "\n".join(exc.message for exc in refused),
            refused[0].code,
            hint="; ".join(dict.fromkeys(exc.hint for exc in refused if exc.hint)),
        )
