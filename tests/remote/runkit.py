"""Helpers for the remote/ tests: build a run folder the way the controller would.

The run.yaml follows docs/CONTRACT.md: the resolved experiment (every key filled in,
absolute data paths) plus the job list.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import yaml

from remote.spec import load_experiment, set_dotted, to_dict

# tests/timing.py, also when a test's subprocess imports this module with only tests/remote
# on sys.path (test_tokenizer does).
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import timing  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "configs" / "data" / "tiny_sentiment.jsonl"
SMOKE = ROOT / "configs" / "experiments" / "smoke.yaml"


def experiment(**overrides) -> Dict:
    """smoke.yaml, validated, with ``a__b=value`` overrides (``model__kind="classifier"``)."""
    raw = yaml.safe_load(SMOKE.read_text())
    for key, value in overrides.items():
        set_dotted(raw, key.replace("__", "."), value)
    exp = to_dict(load_experiment(raw, str(SMOKE)))
    data = exp["data"]
    for key in ("path", "test_path", "unlabelled_path"):
        if data[key] and not os.path.isabs(data[key]):
            data[key] = str(ROOT / data[key])
    return exp


def job(name: str, role: str = "class", label: Optional[str] = None, requires: Iterable[str] = ()) -> Dict:
    return {"name": name, "role": role, "label": label, "requires": list(requires), "after": [], "gpu": ""}


def class_jobs(requires: Iterable[str] = ()) -> List[Dict]:
    return [job("neg", "class", "0", requires), job("pos", "class", "1", requires)]


def write_run(run_dir: Path, exp: Dict, jobs: List[Dict]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "run_id": run_dir.name,
        "code_hash": "test",
        "created": "2026-01-01T00:00:00Z",
        "host": "local",
        "experiment": exp,
        "jobs": jobs,
    }
    (run_dir / "run.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return run_dir


def read_jsonl(path: Path) -> List[Dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def accuracy(run_dir: Path, jobs: Iterable[str]) -> float:
    """argmin over classes of the NLL (uniform prior), as the controller evaluates it."""
    scores: Dict[str, Dict[str, float]] = collections.defaultdict(dict)
    labels = {}
    for name in jobs:
        for row in read_jsonl(run_dir / "jobs" / name / "scores.jsonl"):
            scores[row["id"]][row["class"]] = row["nll"]
            labels[row["id"]] = row["label"]
    return sum(min(s, key=s.get) == labels[i] for i, s in scores.items()) / len(scores)


def run_job_cmd(run_dir: Path, name: str) -> List[str]:
    return [sys.executable, "-m", "remote.run_job", "--run-dir", str(run_dir), "--job", name]


def run_job_process(run_dir: Path, name: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kwargs.setdefault("timeout", timing.scaled(300))  # a guard against a hang, stretched on a busy machine
    return subprocess.run(run_job_cmd(run_dir, name), cwd=ROOT, env=env, capture_output=True, text=True, **kwargs)


# ---------------------------------------------------------------- small models in-process

REVIEWS = ["The movie was wonderful and moving.", "Awful.", "The plot felt predictable, the acting flat and dull."]


def python_output(code: str) -> str:
    """The last line a fresh ``python -c code`` prints, run from the repository root."""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout.strip().splitlines()[-1]
