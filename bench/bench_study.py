"""Studies (issue 14): `orch study status` of a 5-member x 3-seed study on a loopback sshd
(wall time, and SSH logins per call from the sshd log), and the bundled smoke study end to
end on this machine's CPU (host `local`): run, wait, fetch, report.

    python bench/bench_study.py [--repeats 5] [--write docs/BENCHMARKS.md]
    python bench/bench_study.py --smoke-only     # the smoke study alone (a few minutes), its line printed

The status study's runs are tiny (2 training steps) so that its 30 jobs end quickly; status
reads the same files whatever the jobs did.  A real OpenSSH sshd on 127.0.0.1 with real
tmux and rsync: the integration tests' test bed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "integration"))  # its conftest imports slurmbed
sys.path.insert(0, str(REPO / "bench"))

from bench_eval import loadavg  # noqa: E402
from bench_floor import machine  # noqa: E402
from integration.conftest import make_project, start_sshd, stop_project  # noqa: E402

SECTION = "## Studies (issue 14)"


def wait_study(p, name: str, timeout: float = 3600) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        proc = p.orch("study", "status", name, "--json")
        if proc.returncode == 0:
            runs = json.loads(proc.stdout)["runs"]
            if all(r["state"] in ("done", "failed", "cancelled", "fetched") for r in runs):
                bad = [r for r in runs if r["state"] != "done" and r["state"] != "fetched"]
                if bad:
                    raise SystemExit(f"study {name}: runs did not end done: {bad}")
                return
        time.sleep(2)
    raise SystemExit(f"study {name} did not end in {timeout} s")


def status_bench(p, repeats: int) -> dict:
    study = {
        "base": "smoke",
        "host": "testhost",
        "seeds": [0, 1, 2],
        "set": {"train.steps": 2, "score.mdlm_draws": 1, "eval.bootstrap": 10},
        "members": {
            "gpt2": {"model.kind": "ar"},
            "roberta": {"model.kind": "mlm-pll"},
            "simple": {"model.kind": "mdlm", "score.mdlm_stratify": "t"},
            "mdlm": {"model.kind": "mdlm"},
            "clf": {"model.kind": "classifier"},
        },
    }
    (p.root / "configs" / "studies" / "five.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    t = time.perf_counter()
    p.orch("study", "run", "five", check=True, timeout=1800)
    launch_s = time.perf_counter() - t
    wait_study(p, "five")
    p.orch("study", "status", "five", check=True)  # warm the page cache like a user's second look
    # Bytecode as an installed orch and a host that ran it once have it: with
    # PYTHONDONTWRITEBYTECODE=1 in the environment every call would compile its modules.
    trees = [REPO / "orchestrator", REPO / "remote", *sorted((p.remote_root / "code").glob("*"))]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *map(str, trees)], stdout=subprocess.DEVNULL, check=True)
    settle = time.time() + 120  # the study's own 30 jobs have just ended: let their load decay
    while os.getloadavg()[0] > 2.5 and time.time() < settle:
        time.sleep(5)
    one_run = json.loads((p.root / "runs" / "studies" / "five" / "study.json").read_text())["runs"][0]["run_id"]
    walls, per_call, singles = [], [], []
    load_before = loadavg()
    for i in range(repeats):
        # A (the study's 15 runs) and B (`orch status` of one of them, the floor a study
        # status cannot beat) alternate, and which goes first alternates too.
        for which in ("a", "b") if i % 2 == 0 else ("b", "a"):
            if which == "b":
                t = time.perf_counter()
                p.orch("status", one_run, check=True)
                singles.append(time.perf_counter() - t)
                continue
            before = p.sshd.logins()
            t = time.perf_counter()
            p.orch("study", "status", "five", check=True)
            walls.append(time.perf_counter() - t)
            time.sleep(0.5)  # sshd writes its log line after the session
            per_call.append(p.sshd.logins() - before)
    return {
        "single_s": singles,
        "runs": 15,
        "jobs": 30,
        "launch_s": launch_s,
        "status_s": walls,
        "logins": per_call,
        "load": (load_before, loadavg()),
    }


def smoke_study(p) -> dict:
    t0 = time.perf_counter()
    p.orch("study", "run", "smoke-study", check=True, timeout=1800)
    launched = time.perf_counter() - t0
    wait_study(p, "smoke-study")
    ended = time.perf_counter() - t0
    p.orch("study", "fetch", "smoke-study", check=True, timeout=1800)
    fetched = time.perf_counter() - t0
    p.orch("study", "report", "smoke-study", check=True, timeout=1800)
    total = time.perf_counter() - t0
    table = json.loads((p.root / "runs" / "studies" / "smoke-study" / "table.json").read_text())
    acc = {r["name"]: r["accuracy_mean"] for r in table["rows"]}
    return {
        "launched_s": launched,
        "ended_s": ended,
        "fetched_s": fetched,
        "total_s": total,
        "accuracy": acc,
        **study_shape(p.root, "smoke-study"),
    }


def study_shape(root: Path, name: str) -> dict:
    """Members, seeds, runs and jobs of the study as launched (its study.json and each run's run.yaml)."""
    record = json.loads((root / "runs" / "studies" / name / "study.json").read_text())
    roles: Counter = Counter()
    for run in record["runs"]:
        doc = yaml.safe_load((root / "runs" / run["run_id"] / "run.yaml").read_text())
        roles.update(j["role"] for j in doc["jobs"])
    return {
        "members": len(record["members"]),
        "seeds": len(record["seeds"]),
        "runs": len(record["runs"]),
        "pretrain_jobs": roles["pretrain"],
        "other_jobs": sum(n for role, n in roles.items() if role != "pretrain"),
    }


def render(status: dict, smoke: dict, repeats: int) -> str:
    med, single = statistics.median(status["status_s"]), statistics.median(status["single_s"])
    lines = [
        SECTION,
        "",
        f"Measured {time.strftime('%Y-%m-%d')} by `python bench/bench_study.py --repeats {repeats}` on {machine()}.",
        "",
        f"- `orch study status` of a 5-member x 3-seed study ({status['runs']} runs, {status['jobs']} jobs, "
        f"none fetched, so every run is read from the host) on a loopback sshd: median {med:.2f} s "
        f"(min {min(status['status_s']):.2f}, max {max(status['status_s']):.2f}) over {repeats} calls; "
        f"SSH logins per call: {sorted(set(status['logins']))} (target: one per host, <= 1 s). "
        f"Load average {status['load'][0]} before, {status['load'][1]} after. "
        f"Interleaved with it, `orch status` of one of those runs: median {single:.2f} s "
        f"(min {min(status['single_s']):.2f}, max {max(status['single_s']):.2f}); the study's 15 runs cost "
        f"{med / single:.2f}x one run's status.",
        f"- Launching that study (15 runs, one connection, one or two commands per run): {status['launch_s']:.1f} s.",
        smoke_line(smoke),
        "",
    ]
    return "\n".join(lines)


def smoke_line(smoke: dict) -> str:
    return (
        f"- The bundled smoke study ({smoke['members']} members x {smoke['seeds']} seeds, {smoke['runs']} runs, "
        f"{smoke['pretrain_jobs']} pretrain jobs (shared where members pretrain alike), {smoke['other_jobs']} "
        f"class and classifier jobs, host `local`, CPU): launched in {smoke['launched_s']:.0f} s, every run ended "
        f"at {smoke['ended_s']:.0f} s, fetched and evaluated at {smoke['fetched_s']:.0f} s, report written at "
        f"{smoke['total_s']:.0f} s (wall, from `orch study run`). Accuracy means over the {smoke['seeds']} seeds: "
        + ", ".join(f"{k} {v:.3f}" for k, v in smoke["accuracy"].items() if v is not None)
        + "."
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--write", type=Path, help="replace this section of that Markdown file")
    ap.add_argument("--smoke-only", action="store_true", help="only the smoke study: print its line (no --write)")
    args = ap.parse_args()
    if args.smoke_only and args.write:
        ap.error("--smoke-only prints one line of the section; --write needs the whole section")
    with tempfile.TemporaryDirectory() as tmp:
        server = start_sshd(Path(tmp) / "sshd")
        p = make_project(Path(tmp) / "project", Path(tmp) / "hostwork", server)
        try:
            status = None if args.smoke_only else status_bench(p, args.repeats)
            smoke = smoke_study(p)
        finally:
            stop_project(p)
            server.stop()
    if status is None:
        print(f"Measured {time.strftime('%Y-%m-%d')} by `python bench/bench_study.py --smoke-only` on {machine()}.")
        print(smoke_line(smoke))
        return 0
    text = render(status, smoke, args.repeats)
    print(text)
    if args.write:
        doc = args.write.read_text()
        if SECTION in doc:
            head, _, rest = doc.partition(SECTION)
            tail = rest[rest.find("\n## ") :] if "\n## " in rest else ""
            doc = head + text + tail.lstrip("\n")
        else:
            doc = doc.rstrip("\n") + "\n\n" + text
        args.write.write_text(doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
