"""The full-size IMDB experiment on this machine's CPU (issue 13 item 6), and its figures.

    python bench/imdb_cpu.py run ar mdlm [--data ../shared/data/imdb]   # ~1 h each on 2 cores
    python bench/imdb_cpu.py table RUN [RUN ...]                        # the table of fetched runs

``run`` launches `orch run imdb-cpu-KIND --host local --wait` with the data set's
train.jsonl.gz (25k labelled) and unsup.jsonl.gz (50k unlabelled), one after the other,
recording the controller's wall time and peak memory, then prints ``table`` for them.
``table`` reads what `orch fetch-results` brought back (metrics.json, each job's
manifest.json, status.json and log.txt): accuracy with its CI next to the yardsticks on
the same split, and per stage its wall time, tokens/s and peak memory.
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import List

REPO = Path(__file__).resolve().parents[1]


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def ci(pair) -> str:
    return f"{100 * pair[0]:.2f}–{100 * pair[1]:.2f}%"


def minutes(s: float) -> str:
    return f"{s / 60:.1f} min"


def stage_of(log: str, pattern: str) -> float:
    """Seconds between the job's first log line and the first line matching ``pattern``."""
    stamps = re.findall(r"^\[(\d\d):(\d\d):(\d\d)\] (.*)$", log, re.M)
    secs = [(int(h) * 3600 + int(m) * 60 + int(s), text) for h, m, s, text in stamps]
    start = secs[0][0]
    for t, text in secs:
        if re.search(pattern, text):
            return (t - start) % 86400
    return float("nan")


def scored_tokens(job: Path) -> int:
    """Text tokens scored by the job (one model's pass over each text; MDLM draws not counted)."""
    path = job / "scores.jsonl"
    if not path.is_file():
        return 0
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return sum(int(r.get("tokens") or 0) for r in rows)


def table(run_ids: List[str]) -> str:
    out = []
    for run_id in run_ids:
        run = REPO / "runs" / run_id
        m = json.loads((run / "metrics.json").read_text())
        out += [f"### `{run_id}` ({m['kind']})", ""]
        out += ["| system (same 20,000 train / 5,000 test reviews) | accuracy | 95% CI | McNemar p vs the run |"]
        out += ["|---|---|---|---|", f"| this run | **{pct(m['accuracy'])}** | {ci(m['accuracy_ci95'])} | |"]
        for row in m["yardsticks"].get("rows") or []:
            out.append(
                f"| {row['title']} | {pct(row['accuracy'])} | {ci(row['accuracy_ci95'])} | {row['p_value']:.3g} |"
            )
        if m.get("mc_noise"):
            out.append(f"\nMonte Carlo noise: {json.dumps(m['mc_noise'])}")
        out += ["", "| job | stage | wall | tokens/s | peak memory |", "|---|---|---|---|---|"]
        order = {"pretrain": 0, "score": 2}
        for job in sorted((run / "jobs").iterdir(), key=lambda j: (order.get(j.name, 1), j.name)):
            manifest = json.loads((job / "manifest.json").read_text())
            status = json.loads((job / "status.json").read_text())
            log = (job / "log.txt").read_text(errors="replace")
            t = manifest.get("timings", {})
            mem = f"{t['peak_rss_mib'] / 1024:.2f} GiB" if "peak_rss_mib" in t else "n/a"
            rate = f"{manifest['tokens_seen'] / manifest['train_s']:,.0f}" if manifest.get("train_s") else ""
            rows = [("whole job", status["ended"] - status["started"], "", mem), ("imports", t.get("import_s"), "", "")]
            if "tokenizer_s" in t:
                rows.append(("BPE on the pretrain texts", t["tokenizer_s"], "", ""))
                rows.append(
                    ("data + BPE + encoding, to the first step", stage_of(log, r": \d+ texts, \d+ tokens"), "", "")
                )
            if manifest.get("train_s"):
                rows.append((f"training ({manifest['steps']} steps)", manifest["train_s"], rate, ""))
            if t.get("score_s"):
                scored = scored_tokens(job)
                rate = f"{scored / t['score_s']:,.0f} (text tokens)" if scored else ""
                rows.append((f"scoring {manifest.get('n_test')} texts", t["score_s"], rate, ""))
            for stage, secs, r, mm in rows:
                if secs is not None:
                    out.append(f"| {job.name} | {stage} | {secs:.0f} s | {r} | {mm} |")
        out.append("")
    return "\n".join(out)


def run(kinds: List[str], data: Path) -> List[str]:
    ids = []
    for kind in kinds:
        run_id = f"imdb-cpu-{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
        argv = [sys.executable, "-m", "orchestrator.cli", "run", f"imdb-cpu-{kind}", "--host", "local", "--wait"]
        argv += ["--name", run_id, "--set", f"data.path={data / 'train.jsonl.gz'}"]
        argv += ["--set", f"data.unlabelled_path={data / 'unsup.jsonl.gz'}"]
        load = Path("/proc/loadavg").read_text().split()[:3]
        t0 = time.time()
        subprocess.run(argv, cwd=REPO, check=True)
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(
            f"{run_id}: {minutes(time.time() - t0)} from launch to evaluated results; controller peak "
            f"{peak:.0f} MiB; load {' '.join(load)} -> {' '.join(Path('/proc/loadavg').read_text().split()[:3])}"
        )
        ids.append(run_id)
    return ids


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run")
    r.add_argument("kinds", nargs="+", choices=["ar", "mdlm"])
    r.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "imdb")
    t = sub.add_parser("table")
    t.add_argument("runs", nargs="+")
    args = ap.parse_args()
    ids = run(args.kinds, args.data.resolve()) if args.what == "run" else args.runs
    print(table(ids))
    return 0


if __name__ == "__main__":
    sys.exit(main())
