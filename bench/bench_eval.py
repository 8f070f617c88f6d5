"""Evaluation cost: `orch eval` against a numpy reference on the same score files.

    python bench/bench_eval.py [--repeats 5] [--before REV] [--write docs/BENCHMARKS-controller.md]
    python bench/bench_eval.py --reference RUN_DIR      (the reference, as a process of its own)

Synthetic runs of 120 and 25,000 test texts (two class jobs, files as docs/CONTRACT.md
says) are evaluated by
  A  orch: in-process `evaluate_run()` (load + merge + metrics + metrics.json,
     predictions.csv, report.md; no plots), and the real CLI `python -m orchestrator.cli
     eval RUN` in a process of its own;
  B  the numpy reference: read each scores.jsonl a line at a time (json.loads), build the
     (text x class) array, accuracy of the argmin NLL, and a 1,000-resample percentile
     bootstrap by index resampling (numpy's seeded generator); in-process and as a
     `python bench/bench_eval.py --reference RUN_DIR` process.
A and B alternate within each repeat (which goes first alternates too), so a change in
the machine's load hits both; the report gives min/median/max, the ratio of medians, and
the load average before and after.  CPU is user+sys of the process (for subprocesses,
from wait4), wall is elapsed time.  `orch eval --plots` is timed on its own (drawing
the four PNGs from scratch, then the cached case); with --before REV, also against REV's
controller (`git archive`), the two interleaved.  The controller's modules are
byte-compiled first, as an installed orch's are.

With --write, the "## Evaluation" section of the given markdown file is replaced (or
appended); the rest of the file is left as it is.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

from docsection import replace_section

REPO = Path(__file__).resolve().parents[1]
RESAMPLES = 1000
SECTION = "## Evaluation"


# --------------------------------------------------------------------------- the reference


def reference(run_dir: Path) -> Tuple[float, float, float]:
    """Accuracy and its 95% percentile bootstrap interval, the plainest numpy way."""
    import numpy as np

    nll: Dict[str, Dict[str, float]] = {}
    label: Dict[str, str] = {}
    for job in sorted((Path(run_dir) / "jobs").iterdir()):
        with open(job / "scores.jsonl", "rb") as fh:
            for line in fh:
                row = json.loads(line)
                nll.setdefault(row["id"], {})[row["class"]] = row["nll"]
                label[row["id"]] = row["label"]
    classes = sorted({c for scores in nll.values() for c in scores})
    ids = list(label)
    table = np.array([[nll[i][c] for c in classes] for i in ids])
    y = np.array([classes.index(label[i]) for i in ids])
    correct = table.argmin(axis=1) == y
    n = correct.size
    rng = np.random.default_rng(0)
    boot = np.empty(RESAMPLES)
    step = max(1, min(RESAMPLES, 4_000_000 // n))  # at most 4M indices at a time
    for start in range(0, RESAMPLES, step):
        idx = rng.integers(0, n, (min(step, RESAMPLES - start), n))
        boot[start : start + idx.shape[0]] = correct[idx].mean(axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return float(correct.mean()), float(low), float(high)


# --------------------------------------------------------------------------- synthetic runs


def make_run(project: Path, run_id: str, n: int, seed: int = 0, draws: int = 0) -> Path:
    """runs/RUN_ID with two finished class jobs scoring N texts (IMDB-like lengths); with
    DRAWS, an MDLM run whose rows carry that many per-draw estimates (nll their mean)."""
    import numpy as np
    import yaml

    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    tokens = rng.integers(20, 513, n)
    nll = np.round(rng.normal(3.0, 0.2, (n, 2)) * tokens[:, None], 4)
    nll[np.arange(n), labels] -= np.round(rng.normal(0.12, 0.2, n) * tokens, 4)
    per_draw = None
    if draws:
        per_draw = np.round(nll[:, :, None] + rng.normal(0, 5.0, (n, 2, draws)), 4)
        nll = per_draw.mean(axis=2)
    run_dir = project / "runs" / run_id
    jobs = [
        {"name": f"class-{c}", "role": "class", "label": str(c), "requires": [], "after": [], "gpu": "0"}
        for c in (0, 1)
    ]
    doc = {
        "run_id": run_id,
        "code_hash": "0" * 12,
        "created": "2026-11-26T10:15:00Z",
        "host": "bench",
        "experiment": {
            "name": "bench",
            "data": {"path": "/data/x.jsonl", "classes": ["0", "1"]},
            "model": {"kind": "mdlm" if draws else "ar", "init": "scratch"},
            **({"score": {"mdlm_draws": draws}} if draws else {}),
            "eval": {"bootstrap": RESAMPLES},
        },
        "jobs": jobs,
    }
    run_dir.mkdir(parents=True)
    (run_dir / "run.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (run_dir / "local.json").write_text(
        json.dumps(
            {"run_id": run_id, "host": "bench", "experiment": "bench", "launched_at": 1764150000.0, "state": "fetched"}
        )
    )
    for c, job in enumerate(jobs):
        lines = [
            json.dumps(
                {
                    "id": f"test/{i}",
                    "label": str(labels[i]),
                    "class": str(c),
                    "nll": float(nll[i, c]),
                    "tokens": int(tokens[i]),
                    "se": None,
                    **({"draws": per_draw[i, c].tolist()} if draws else {}),
                }
            )
            for i in range(n)
        ]
        data = ("\n".join(lines) + "\n").encode()
        job_dir = run_dir / "jobs" / job["name"]
        job_dir.mkdir(parents=True)
        (job_dir / "scores.jsonl").write_bytes(data)
        (job_dir / "status.json").write_text(
            json.dumps(
                {
                    "state": "done",
                    "pid": 1,
                    "exit_code": 0,
                    "created": 1.0,
                    "started": 2.0,
                    "ended": 62.0,
                    "gpu": "0",
                    "reason": "",
                }
            )
        )
        (job_dir / "manifest.json").write_text(
            json.dumps(
                {
                    "job": job["name"],
                    "role": "class",
                    "label": str(c),
                    "n_test": n,
                    "classes": ["0", "1"],
                    "files": {"scores.jsonl": {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}},
                    "train_texts": 1000,
                    "train_tokens": 100000,
                    "timings": {"train_s": 50.0, "score_s": 10.0},
                    "device": "cuda",
                    "gpu_name": "bench",
                }
            )
        )
    return run_dir


def make_project(root: Path) -> Path:
    (root / "configs").mkdir(parents=True)
    (root / "remote").mkdir()
    return root


# --------------------------------------------------------------------------- timing


def in_process(fn: Callable[[], object]) -> Tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def subprocess_cost(argv: List[str], env: Dict[str, str], cwd: Path) -> Tuple[float, float]:
    """(CPU user+sys, wall) of one child process, from wait4's rusage."""
    wall = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - wall
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{err}")
    return usage.ru_utime + usage.ru_stime, wall


def interleave(a: Callable[[], Tuple[float, float]], b: Callable[[], Tuple[float, float]], repeats: int):
    """[(cpu, wall)] for A and for B, alternating which goes first."""
    out_a, out_b = [], []
    for i in range(repeats):
        if i % 2 == 0:
            out_a.append(a())
            out_b.append(b())
        else:
            out_b.append(b())
            out_a.append(a())
    return out_a, out_b


def spread(values: List[float]) -> str:
    return f"{statistics.median(values):.3f} s (min {min(values):.3f}, max {max(values):.3f})"


def ratio(a: List[float], b: List[float]) -> str:
    return f"{statistics.median(a) / statistics.median(b):.2f}×"


# --------------------------------------------------------------------------- machine


def machine() -> str:
    model = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        model = fields.get("Model name", "").strip()
        model += f", {fields.get('CPU(s)', '?').strip()} CPUs"
    except (OSError, subprocess.CalledProcessError):
        model = f"{os.cpu_count()} CPUs"
    try:
        kb = int([line for line in open("/proc/meminfo") if line.startswith("MemTotal")][0].split()[1])
        model += f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, IndexError):
        pass
    import numpy

    return f"{model}; {platform.platform()}, Python {platform.python_version()}, numpy {numpy.__version__}"


def revision_tree(rev: str, dest: Path) -> Path:
    """Git revision REV's orchestrator/ and remote/ in DEST, byte-compiled (as an installed
    orch's are), to time that revision's controller beside this one."""
    dest.mkdir(parents=True)
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", rev, "orchestrator", "remote"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "x", "-C", str(dest)], input=archive, check=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(dest)], stdout=subprocess.DEVNULL, check=True)
    return dest


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# --------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", metavar="RUN_DIR", help="run the numpy reference on RUN_DIR and exit")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--sizes", default="120,25000")
    ap.add_argument("--orch-root", default=str(REPO), help="the checkout whose `orch eval` the CLI rows time")
    ap.add_argument("--write", metavar="MARKDOWN", help="replace the '## Evaluation' section of this file")
    ap.add_argument("--before", metavar="REV", help="also time `orch eval --plots` of git revision REV, interleaved")
    args = ap.parse_args()
    if args.reference:
        acc, low, high = reference(Path(args.reference))
        print(json.dumps({"accuracy": acc, "ci95": [low, high]}))
        return 0

    sys.path.insert(0, args.orch_root)
    from orchestrator.results.evaluate import evaluate_run

    # Bytecode as an installed orch has it (pip compiles on install): the CLI rows run with
    # PYTHONDONTWRITEBYTECODE=1, so without it every `orch eval` would compile its modules.
    trees = [str(Path(args.orch_root) / d) for d in ("orchestrator", "remote")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *trees], stdout=subprocess.DEVNULL, check=True)
    tmp = Path(tempfile.mkdtemp(prefix="orch-bench-eval-"))
    old_tree = revision_tree(args.before, tmp / "before") if args.before else None
    load_before = loadavg()
    rows: List[str] = []
    notes: List[str] = []
    try:
        project = make_project(tmp / "project")
        env = {**os.environ, "ORCH_PROJECT": str(project), "COLUMNS": "120", "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("PYTHONPATH", None)
        for n in [int(x) for x in args.sizes.split(",")]:
            run_id = f"bench-{n}"
            run_dir = make_run(project, run_id, n)
            m = evaluate_run(run_dir, plots=False)  # warm-up, and the numbers to check against
            acc, low, high = reference(run_dir)
            assert abs(m["accuracy"] - acc) < 1e-12, (m["accuracy"], acc)
            notes.append(
                f"{n} texts: accuracy {acc:.4f}; 95% CI orch {m['accuracy_ci95'][0]:.4f}–"
                f"{m['accuracy_ci95'][1]:.4f}, reference {low:.4f}–{high:.4f}"
            )

            a, b = interleave(
                lambda run_dir=run_dir: in_process(lambda: evaluate_run(run_dir, plots=False)),
                lambda run_dir=run_dir: in_process(lambda: reference(run_dir)),
                args.repeats,
            )
            cpu_a, cpu_b = [x[0] for x in a], [x[0] for x in b]
            rows.append(
                f"| {n:,} | in-process: `evaluate_run()` vs `reference()` | {spread(cpu_a)} | "
                f"{spread(cpu_b)} | **{ratio(cpu_a, cpu_b)}** |"
            )

            orch = [sys.executable, "-m", "orchestrator.cli", "eval", run_id, "--no-plots"]
            ref = [sys.executable, str(Path(__file__).resolve()), "--reference", str(run_dir)]
            a, b = interleave(
                lambda orch=orch: subprocess_cost(orch, env, Path(args.orch_root)),
                lambda ref=ref: subprocess_cost(ref, env, REPO),
                args.repeats,
            )
            cpu_a, cpu_b = [x[0] for x in a], [x[0] for x in b]
            wall_a, wall_b = [x[1] for x in a], [x[1] for x in b]
            rows.append(
                f"| {n:,} | CLI process, CPU: `orch eval` vs reference | {spread(cpu_a)} | {spread(cpu_b)} | "
                f"**{ratio(cpu_a, cpu_b)}** |"
            )
            rows.append(
                f"| {n:,} | CLI process, wall | {spread(wall_a)} | {spread(wall_b)} | {ratio(wall_a, wall_b)} |"
            )

            plots = [sys.executable, "-m", "orchestrator.cli", "eval", run_id, "--plots"]
            fresh, cached = [], []
            for _ in range(args.repeats):
                shutil.rmtree(run_dir / "plots", ignore_errors=True)
                fresh.append(subprocess_cost(plots, env, Path(args.orch_root))[0])
                cached.append(subprocess_cost(plots, env, Path(args.orch_root))[0])
            rows.append(
                f"| {n:,} | `orch eval --plots`, CPU: 4 PNGs drawn / already drawn (cached) | {spread(fresh)} | "
                f"{spread(cached)} | |"
            )
            if old_tree is not None:

                def drawn(root: Path, run_dir=run_dir, plots=plots) -> Tuple[float, float]:
                    shutil.rmtree(run_dir / "plots", ignore_errors=True)
                    return subprocess_cost(plots, env, root)

                a, b = interleave(lambda: drawn(Path(args.orch_root)), lambda: drawn(old_tree), args.repeats)
                cpu_a, cpu_b = [x[0] for x in a], [x[0] for x in b]
                rows.append(
                    f"| {n:,} | `orch eval --plots`, CPU, 4 PNGs drawn: this checkout (A) vs `{args.before}` (B) | "
                    f"{spread(cpu_a)} | {spread(cpu_b)} | **{ratio(cpu_a, cpu_b)}** |"
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    load_after = loadavg()
    text = "\n".join(
        [
            SECTION,
            "",
            f"Measured {time.strftime('%Y-%m-%d %H:%M')} with "
            f"`python bench/bench_eval.py --repeats {args.repeats}"
            + (f" --before {args.before}" if args.before else "")
            + "` on: "
            f"{machine()}. Load average (1/5/15 min) before {load_before}, after {load_after}.",
            "",
            "A = orch, B = the numpy reference (read the score files with `json.loads` per line, accuracy, "
            f"{RESAMPLES:,}-resample percentile bootstrap by index resampling). A and B interleaved, "
            f"{args.repeats} repeats each; median (min, max) CPU seconds (user+sys), ratio of medians first.",
            "",
            "| texts | what | A (orch) | B (reference) | A / B |",
            "|---|---|---|---|---|",
            *rows,
            "",
            "Targets (issue 15): `orch eval` on 25,000 texts ≤ 2× the numpy reference without plots; the 25k report "
            "with plots ≤ 3 s CPU. Both sides agree on the numbers: " + "; ".join(notes) + ".",
            "",
        ]
    )
    print(text)
    if args.write:
        replace_section(Path(args.write), SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
