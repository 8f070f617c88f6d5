"""Check every document read from a host against the types in docs/CONTRACT.md.

A host is untrusted input: its status.json, progress lines, manifest.json and the host
helper's replies may hold any JSON of any size.  Each ``check_*`` returns the document
when it has the contract's types and raises :class:`BadDocument` (saying which key is
wrong and how) when it does not.  Callers turn that into a job shown as
``unknown (bad status.json: ...)`` or into one OrchError; never into a traceback.
Keys the contract does not name are allowed (a newer host side may add some).
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

from orchestrator.terminal import visible
from remote.files import too_deep
from remote.jobstate import RECORDED

MAX_REPLY_BYTES = 16 << 20  # a host helper's reply: a 1000-job status is about 1 MB
MAX_DOC_BYTES = 4 << 20  # one status.json / manifest.json of a fetched copy
MAX_TEXT = 4096  # a free-text field (a failure reason): longer is not a status

STATES = RECORDED  # what status.json may say (remote/jobstate.py)
SHA256 = re.compile(r"[0-9a-f]{64}")
# What a job folder may hold that orch fetches (docs/CONTRACT.md); nothing else is read.
RESULT_FILES = ("scores.jsonl",)
SCORING_ROLES = ("class", "classifier", "score")  # the roles of the jobs that write them


def scoring_roles(planned: Sequence[Dict[str, Any]]) -> Tuple[str, ...]:
    """The roles whose jobs score in a run of PLANNED jobs (run.yaml's ``jobs``): an
    adaptive-draws run's score job alone (its class jobs only train), else all of them."""
    return ("score",) if any(job.get("role") == "score" for job in planned) else SCORING_ROLES


class BadDocument(ValueError):
    """A host document that does not have the contract's shape."""


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# Bounds a real value never nears, so arithmetic on what passed (sums, differences,
# float(), int()) can neither overflow nor reach inf: 10**400 is valid JSON.
NUM_MAX = 1e15
INT_MAX = 2**63
TIME_MAX = 1e11  # seconds since 1970: the year 5138


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and abs(v) <= NUM_MAX  # NaN fails too


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and -INT_MAX < v < INT_MAX


def _is_time(v: Any) -> bool:
    return _is_num(v) and 0 <= v <= TIME_MAX


def number(v: Any) -> Optional[float]:
    """V as a float when it is a number a real value could be (see NUM_MAX), else None."""
    return float(v) if _is_num(v) else None


def _is_text(v: Any) -> bool:
    return isinstance(v, str) and len(v) <= MAX_TEXT


KINDS: Dict[str, Tuple[Callable[[Any], bool], str]] = {
    "num": (_is_num, f"a number (at most {NUM_MAX:g} in size)"),
    "time": (_is_time, f"a time (seconds since 1970, 0 to {TIME_MAX:g})"),
    "int": (_is_int, "an integer (64-bit)"),
    "count": (lambda v: _is_int(v) and v >= 0, "an integer >= 0 (64-bit)"),
    "bool": (lambda v: isinstance(v, bool), "true or false"),
    "text": (_is_text, f"a string (at most {MAX_TEXT} characters)"),
    "texts": (lambda v: isinstance(v, list) and all(_is_text(x) for x in v), "a list of strings"),
    "object": (lambda v: isinstance(v, dict), "an object"),
}


def _check(doc: Any, fields: Dict[str, str], required: Tuple[str, ...] = ()) -> Dict[str, Any]:
    """``fields``: key -> kind, with a trailing ``?`` when null is allowed."""
    if not isinstance(doc, dict):
        raise BadDocument(f"expected a JSON object, got {_short(doc)}")
    for key in required:
        if key not in doc:
            raise BadDocument(f"no {key!r}")
    for key, kind in fields.items():
        if key not in doc:
            continue
        nullable = kind.endswith("?")
        ok, want = KINDS[kind.rstrip("?")]
        value = doc[key]
        if value is None and nullable:
            continue
        if not ok(value):
            raise BadDocument(f"{key!r} must be {want}{' or null' if nullable else ''}, got {_short(value)}")
    return doc


def check_status(doc: Any) -> Dict[str, Any]:
    """status.json, written by remote/wrapper.py."""
    _check(
        doc,
        {
            "pid": "int?",
            "exit_code": "int?",
            "created": "time?",
            "started": "time?",
            "ended": "time?",
            "stopped": "time?",
            "earlier_s": "num?",
            "gpu": "text?",
            "reason": "text?",
            "requeues": "count?",
        },
        required=("state",),
    )
    if doc["state"] not in STATES:
        raise BadDocument(f"'state' must be one of {', '.join(STATES)}, got {_short(doc['state'])}")
    return doc


def check_progress(doc: Any) -> Dict[str, Any]:
    """One line of progress.jsonl."""
    return _check(
        doc,
        {
            "t": "time?",
            "phase": "text?",
            "step": "int?",
            "total": "int?",
            "loss": "num?",
            "tokens_per_s": "num?",
            "eta_s": "num?",
            "lr": "num?",
            "device": "text?",
        },
    )


def check_manifest(doc: Any) -> Dict[str, Any]:
    """manifest.json, written last by remote/run_job.py."""
    _check(
        doc,
        {
            "job": "text?",
            "role": "text?",
            "label": "text?",
            "files": "object",
            "n_test": "count",
            "classes": "texts",
            "train_texts": "count?",
            "train_tokens": "count?",
            "timings": "object?",
            "steps": "count?",
            "tokens_seen": "count?",
            "train_s": "num?",
            "val_loss": "num?",
            "finished": "time?",
            "tokenizer_sha256": "text?",
            "python": "text?",
            "device": "text?",
            "device_note": "text?",
            "gpu_name": "text?",
            "torch": "text?",
            "transformers": "text?",
            "kind": "text?",
            "init": "text?",
            "slurm": "object?",
            "adaptive": "object?",
            "data": "object?",  # the split's copies of one text: remote.data.duplicate_facts
            "train_class_counts": "object?",  # the classifier's training texts per class
        },
        required=("files",),
    )
    for name, meta in doc["files"].items():
        if "/" in name or name in ("", ".", "..") or name not in RESULT_FILES:
            raise BadDocument(f"'files' lists {name!r}, which is not a result file ({', '.join(RESULT_FILES)})")
        _check(meta, {"size": "count"}, required=("size", "sha256"))
        if not (isinstance(meta["sha256"], str) and SHA256.fullmatch(meta["sha256"])):
            raise BadDocument(f"'files.{name}.sha256' must be 64 hex digits, got {_short(meta['sha256'])}")
    for k, v in (doc.get("timings") or {}).items():
        if not _is_num(v):
            raise BadDocument(f"'timings.{k}' must be a number, got {_short(v)}")
    return doc


def _job_reply(raw: Any) -> Dict[str, Any]:
    """One job of a `hostctl status` reply; a bad status or progress marks the job, not the reply."""
    _check(
        raw,
        {
            "name": "text",
            "alive": "bool",
            "manifest": "bool",
            "log_bytes": "count",
            "owner": "int?",
            "backend": "object?",
            "requeues": "count?",
            "earlier_s": "num?",
            "status_error": "text?",
            "progress_error": "text?",
        },
        required=("name",),
    )
    job = dict(raw)
    # What the job backend knows (a session, a queue state and its reason): shown as text.
    backend = job.get("backend") or {}
    for key, value in backend.items():
        if not (_is_text(key) and (value is None or _is_text(value) or _is_num(value) or isinstance(value, bool))):
            raise BadDocument(f"'backend.{_short(key)}' must be a string, a number or null, got {_short(value)}")
    for key, name, check in (("status", "status.json", check_status), ("progress", "progress.jsonl", check_progress)):
        error = job.get(key + "_error")
        if error is not None:
            # The file is there but the host could not read a document from it (not JSON,
            # a fifo, too big): unknown, never "no status.json yet" - that would make a
            # finished job lost, and `--resume` would run it again.
            job[key] = None
            job.setdefault("bad", f"bad {name}: {_said(error)}")
            continue
        if job.get(key) is None:
            continue
        try:
            check(job[key])
        except BadDocument as exc:
            job[key] = None
            job.setdefault("bad", f"bad {name}: {exc}")
    return job


MAX_SAID = 160  # what a host says is wrong with a file, as a status reason


def _said(text: str) -> str:
    """A host's words on one line, control characters escaped, at most MAX_SAID long."""
    text = visible(text)
    return text if len(text) <= MAX_SAID else text[: MAX_SAID - 3] + "..."


def check_status_reply(doc: Any) -> Dict[str, Any]:
    """`python -m remote.hostctl status`."""
    _check(doc, {"run_dir": "text", "exists": "bool", "now": "time"}, required=("exists", "jobs"))
    if not isinstance(doc["jobs"], list):
        raise BadDocument(f"'jobs' must be a list, got {_short(doc['jobs'])}")
    jobs = []
    for i, raw in enumerate(doc["jobs"]):
        try:
            jobs.append(_job_reply(raw))
        except BadDocument as exc:
            raise BadDocument(f"jobs[{i}]: {exc}") from None
    return {**doc, "jobs": jobs}


def _check_list_reply(doc: Any, fields: Dict[str, str]) -> Dict[str, Any]:
    _check(doc, {}, required=("jobs",))
    if not isinstance(doc["jobs"], list):
        raise BadDocument(f"'jobs' must be a list, got {_short(doc['jobs'])}")
    for i, job in enumerate(doc["jobs"]):
        try:
            _check(job, fields, required=tuple(fields))
        except BadDocument as exc:
            raise BadDocument(f"jobs[{i}]: {exc}") from None
    return doc


def check_launch_reply(doc: Any) -> Dict[str, Any]:
    """`python -m remote.hostctl launch`."""
    return _check_list_reply(doc, {"name": "text", "started": "bool", "error": "text"})  # "handle": optional text


def check_cancel_reply(doc: Any) -> Dict[str, Any]:
    """`python -m remote.hostctl cancel`."""
    return _check_list_reply(doc, {"name": "text", "state": "text", "changed": "bool"})


def read_local(
    path: Path, check: Callable[[Any], Dict[str, Any]], limit: int = MAX_DOC_BYTES
) -> Optional[Dict[str, Any]]:
    """A fetched host document: None when absent; BadDocument when it is not a regular
    file, too big, not JSON, or not of the contract's shape."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise BadDocument("not a regular file")
    if st.st_size > limit:
        raise BadDocument(f"{st.st_size} bytes, more than the {limit >> 20} MB a {path.name} may have")
    try:
        with open(path, "rb") as fh:
            doc = loads(fh.read(limit + 1))
    except OSError as exc:
        raise BadDocument(f"unreadable ({exc.strerror})") from None
    except (ValueError, RecursionError) as exc:
        raise BadDocument(f"not valid JSON ({exc})") from None
    return check(doc)


MAX_DEPTH = 32  # nesting a fact document has (it has 3); deeper fails later encoders and dataclasses


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400: valid JSON, read as inf
        raise ValueError(f"{text} is not a finite number")
    return value


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def loads(text: Union[str, bytes]) -> Any:
    """JSON from a host, strict: NaN, Infinity and numbers too big for a float (1e400) are
    refused (ValueError), as JSON itself refuses them.  Every host document and reply orch
    reads as JSON comes through here (read_local, parse_json_object, hostctl's status,
    status-all, launch and cancel replies, the launch check's reply, a host lock's owner;
    score lines alone are parsed for speed, and their numbers checked one by one), so
    nothing orch writes from a host's document (facts.json, --json output) is invalid
    JSON for other readers."""
    return json.loads(text, parse_constant=_no_constant, parse_float=_finite)


def parse_json_object(text: str) -> Optional[Dict[str, Any]]:
    """A JSON object from a host's text, nested at most MAX_DEPTH deep, or None (anything
    else, not JSON, or with a number that is not finite)."""
    try:
        data = loads(text)
    except (ValueError, TypeError, RecursionError):  # RecursionError: '[' * 10**5
        return None
    return data if isinstance(data, dict) and not too_deep(data, MAX_DEPTH) else None
