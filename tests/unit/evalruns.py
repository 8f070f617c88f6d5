"""Synthetic run folders for the evaluation tests, written per docs/CONTRACT.md with known
scores: make_run (any texts and scores), margin_texts / draw_texts (texts with a chosen
margin or per-draw values), tiny_run (the bundled tiny data as `orch run` records it)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

import pytest
import yaml

from orchestrator.errors import OrchError
from orchestrator.results.evaluate import evaluate, evaluate_run
from orchestrator.results.scores import load_run
from remote.data import dataset_name

ROOT = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------- builder
# A text: (id, true label, {class: (nll, tokens) or (nll, tokens, per-draw estimates)}).
Text = Tuple[str, str, Dict[str, tuple]]


def margin_texts(margins: Dict[str, Sequence[float]], base: float = 100.0, tokens: int = 20) -> List[Text]:
    """Binary texts whose raw margin score("1") - score("0") is the given value."""
    out = []
    for label, values in margins.items():
        for i, d in enumerate(values):
            out.append((f"{label}/{i}", label, {"0": (base + d, tokens), "1": (base, tokens)}))
    return out


def make_run(
    root: Path,
    run_id: str = "r1",
    texts: Optional[Iterable[Text]] = None,
    *,
    classes: Sequence[str] = ("0", "1"),
    kind: str = "ar",
    init: str = "scratch",
    eval_cfg: Optional[dict] = None,
    train_texts: Optional[Dict[str, int]] = None,
    job_seconds: float = 60.0,
    rows_hook=None,
    tokenizer: Optional[str] = "ab" * 32,
    data_path: str = "/data/imdb/train.jsonl",
    local_extra: Optional[dict] = None,
    data_name: Optional[str] = "",
) -> Path:
    """Write runs/<run_id>/ with run.yaml, local.json and one folder per job.

    ``rows_hook(job, rows) -> rows`` may corrupt a job's score rows before they are written.
    ``tokenizer``: the tokenizer_sha256 every class job's manifest records (None: none, as
    in runs made before it was recorded).  ``data_path``: run.yaml's data.path (the
    data set's name comes from it, as `orch run` names it: imdb, whose bands apply);
    ``data_name`` None leaves data.name out (a run launched before it was recorded).
    """
    texts = list(texts if texts is not None else margin_texts({"0": [-5, -4, -3, -6, 2], "1": [5, 4, 3, -1, -2]}))
    run_dir = root / "runs" / run_id
    classifier = kind == "classifier"
    if classifier:
        jobs = [{"name": "classifier", "role": "classifier", "label": None, "requires": [], "after": [], "gpu": "0"}]
    else:
        jobs = [
            {"name": f"c{c}", "role": "class", "label": c, "requires": [], "after": [], "gpu": "0"} for c in classes
        ]
    doc = {
        "run_id": run_id,
        "code_hash": "abc123",
        "created": "2026-11-26T10:15:00Z",
        "host": "nigel",
        "experiment": {
            "name": "exp",
            "data": {
                "path": data_path,
                "classes": list(classes),
                **({} if data_name is None else {"name": data_name or dataset_name(data_path)}),
            },
            "model": {"kind": kind, "init": init},
            "eval": eval_cfg or {},
        },
        "jobs": jobs,
    }
    run_dir.mkdir(parents=True)
    (run_dir / "run.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (run_dir / "local.json").write_text(
        json.dumps(
            {
                "run_id": run_id,
                "host": "nigel",
                "experiment": "exp",
                "launched_at": 1764150000.0,
                "host_facts": {"gpus": ["NVIDIA H200"], "driver": "570.1", "cuda": "12.8", "torch": "2.11.0"},
                **(local_extra or {}),
            }
        )
    )
    train_texts = train_texts or {c: 100 for c in classes}
    for job in jobs:
        rows = []
        for tid, label, scores in texts:
            for c in classes if classifier else [job["label"]]:
                if c in scores:
                    nll, tokens = scores[c][:2]
                    rows.append({"id": tid, "label": label, "class": c, "nll": nll, "tokens": tokens, "se": None})
                    if len(scores[c]) > 2:
                        rows[-1]["draws"] = list(scores[c][2])
        if rows_hook is not None:
            rows = rows_hook(job["name"], rows)
        job_dir = run_dir / "jobs" / job["name"]
        job_dir.mkdir(parents=True)
        data = "".join(json.dumps(r) + "\n" for r in rows).encode()
        (job_dir / "scores.jsonl").write_bytes(data)
        (job_dir / "status.json").write_text(
            json.dumps(
                {
                    "state": "done",
                    "pid": 1,
                    "exit_code": 0,
                    "created": 1764150000.0,
                    "started": 1764150001.0,
                    "ended": 1764150001.0 + job_seconds,
                    "gpu": "0",
                    "reason": "",
                }
            )
        )
        manifest = {
            "job": job["name"],
            "role": job["role"],
            "files": {"scores.jsonl": {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}},
            "n_test": len(texts),
            "classes": list(classes),
            "timings": {"train_s": 12.5, "score_s": 4.5},
            "device": "cuda",
            "gpu_name": "NVIDIA H200",
            "torch": "2.11.0",
            "transformers": "5.17.0",
            "train_tokens": 1000,
        }
        if not classifier:
            manifest["train_texts"] = train_texts.get(job["label"])
            if tokenizer is not None:
                manifest["tokenizer_sha256"] = tokenizer
        (job_dir / "manifest.json").write_text(json.dumps(manifest))
    return run_dir


def run_eval(run_dir: Path, **kw) -> dict:
    return evaluate(load_run(run_dir), **kw).metrics


def refusal(run_dir: Path) -> OrchError:
    with pytest.raises(OrchError) as info:
        evaluate_run(run_dir)
    return info.value


def summary(metrics: dict, run_dir: Optional[Path] = None, width: int = 200) -> str:
    """What `orch eval` prints for METRICS."""
    from rich.console import Console

    from orchestrator.commands.results_view import print_summary

    console = Console(record=True, width=width)
    print_summary(console, metrics, run_dir)
    return console.export_text()


def draw_texts(diffs: Dict[str, Sequence[Sequence[float]]], base: float = 100.0) -> List[Text]:
    """Binary texts with per-draw values: class 1's draws are all ``base``, class 0's
    ``base + d_j``, so the per-draw margin is d_j (score 1 - score 0)."""
    out = []
    for label, rows in diffs.items():
        for i, d in enumerate(rows):
            zero = [base + x for x in d]
            out.append(
                (f"{label}/{i}", label, {"0": (sum(zero) / len(zero), 20, zero), "1": (base, 20, [base] * len(d))})
            )
    return out


TINY = Path(__file__).resolve().parents[2] / "configs" / "data" / "tiny_sentiment.jsonl"


def tiny_run(root: Path, wrong_every: int = 3, drop: int = 0, **kw) -> Path:
    """A run over the bundled tiny data as `orch run` records it (the staged host path in
    run.yaml, the local file in local.json), scored on the split the jobs would make: the
    model gets every WRONG_EVERY-th test text wrong."""
    from remote.data import load_splits
    from remote.files import sha256_file
    from remote.spec import DataSpec

    test = load_splits(DataSpec(path=str(TINY)), log=lambda _: None).test
    texts = [
        (e.id, e.label, {e.label: (10.0, 12), str(1 - int(e.label)): (11.0 if i % wrong_every else 9.0, 12)})
        for i, e in enumerate(test)
    ][drop:]
    host = f"/w/data/{sha256_file(str(TINY))[:16]}-{TINY.name}"
    return make_run(
        root,
        texts=texts,
        data_path=host,
        local_extra={"data_files": {"path": {"local": str(TINY), "host": host}}},
        **kw,
    )
