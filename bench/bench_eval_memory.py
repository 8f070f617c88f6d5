"""Evaluation memory: the peak resident memory `orch eval` adds while it reads a run's
score files, against the size of those files.

    python bench/bench_eval_memory.py [--texts 25000] [--draws 0,64] [--before REV] [--write MARKDOWN]

For each case a synthetic run (bench_eval.make_run: two class jobs, N texts, K per-draw
estimates a row) is evaluated in a fresh process, once by this checkout and (--before)
once by REV's controller (`git archive`): `load_scores` alone, then the whole
`evaluate_run` (metrics, predictions, report; no plots).  Each process reports its peak
RSS (VmHWM, Linux) less its RSS right before the work (after its imports), so
the figure is what the work added.  A host decides how big a valid score file is (the
fetch takes it if the disk has room), so what matters is memory per byte of file.

With --write, the "## Evaluation memory" section of the given markdown file is replaced
(or appended).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SECTION = "## Evaluation memory"


def status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(field + ":"))


def child(tree: str, run_dir: str, what: str) -> None:
    """In a process of its own: the work on RUN_DIR with TREE's controller; prints JSON."""
    sys.path.insert(0, tree)
    from orchestrator.results.evaluate import evaluate_run
    from orchestrator.results.scores import load_run, load_scores

    before = status_kb("VmRSS")
    t0 = time.process_time()
    if what == "load":
        load_scores(load_run(Path(run_dir)))
    else:
        evaluate_run(Path(run_dir), plots=False)
    cpu = time.process_time() - t0
    # VmHWM, not getrusage's ru_maxrss: that one keeps the peak of the process this one
    # was forked from (the bench, holding the run it made), VmHWM starts afresh at exec.
    peak = status_kb("VmHWM")
    print(json.dumps({"added_mb": (peak - before) / 1024, "cpu_s": cpu}))


def measure(tree: Path, run_dir: Path, what: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", str(tree), str(run_dir), what],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"{tree}: {what} failed:\n{out.stderr}")
    return json.loads(out.stdout.splitlines()[-1])


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:5])
        return 0
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=25000)
    ap.add_argument("--draws", default="0,64")
    ap.add_argument("--before", metavar="REV")
    ap.add_argument("--write", metavar="MARKDOWN")
    args = ap.parse_args()
    sys.path.insert(0, str(HERE))
    from bench_eval import loadavg, machine, make_project, make_run, revision_tree
    from docsection import replace_section

    tmp = Path(tempfile.mkdtemp(prefix="orch-bench-mem-"))
    trees = [("this checkout", REPO)]
    if args.before:
        trees.append((f"`{args.before}`", revision_tree(args.before, tmp / "before")))
    load_before = loadavg()
    rows = []
    project = make_project(tmp / "project")
    for k in [int(x) for x in args.draws.split(",")]:
        run_dir = make_run(project, f"mem-{k}", args.texts, draws=k)
        size_mb = sum(f.stat().st_size for f in run_dir.glob("jobs/*/scores.jsonl")) / (1 << 20)
        for what in ("load", "evaluate"):
            cells = []
            for _, tree in trees:
                got = measure(tree, run_dir, what)
                cells.append(f"{got['added_mb']:,.0f} MB ({got['added_mb'] / size_mb:.2f}x), {got['cpu_s']:.2f} s")
            label = "`load_scores`" if what == "load" else "`evaluate_run` (no plots)"
            rows.append(f"| {args.texts:,} x 2 | {k} | {size_mb:,.0f} MB | {label} | " + " | ".join(cells) + " |")
            print(rows[-1], flush=True)
    head = "| texts x classes | draws a row | score files | work | " + " | ".join(
        f"{name}: memory added (per file byte), CPU" for name, _ in trees
    )
    text = "\n".join(
        [
            SECTION,
            "",
            f"Measured {time.strftime('%Y-%m-%d %H:%M')} with `python bench/bench_eval_memory.py --texts {args.texts} "
            f"--draws {args.draws}" + (f" --before {args.before}" if args.before else "") + f"` on: {machine()}. "
            f"Load average before {load_before}, after {loadavg()}.",
            "",
            "Peak RSS (VmHWM) of a fresh process less its RSS before the work (after its imports); "
            "one process per cell.",
            "",
            head + " |",
            "|" + "---|" * (4 + len(trees)),
            *rows,
            "",
        ]
    )
    print(text)
    if args.write:
        replace_section(Path(args.write), SECTION, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
