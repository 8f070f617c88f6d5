"""Controller benchmarks on a loopback sshd (the same test bed as the integration tests).

    python bench/bench_controller.py [--out docs/BENCHMARKS-controller.md]

Measures, against a real OpenSSH sshd on 127.0.0.1 with real tmux and rsync:
  - `orch status` wall time on a warm host and the SSH logins it makes (target <= 0.5 s, 1 login)
  - `orch run` until every job is running, data already staged (target <= 3 s)
  - re-sync of unchanged code: files transferred (target 0)
  - a cold `orch run` (code and data sent) and one after a code change: time and SSH logins
    (rsync rides the one verified connection: 1 login)
  - `orch fetch-results` of a finished run: time and SSH logins (1)
Writes a markdown table with the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "integration"))  # conftest imports slurmbed, testprocs, timing

from integration.conftest import make_project, start_sshd  # noqa: E402


def machine() -> str:
    cpus = os.cpu_count()
    mem = ""
    try:
        kb = int([line for line in open("/proc/meminfo") if line.startswith("MemTotal")][0].split()[1])
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, IndexError):
        pass
    return f"{platform.platform()}, {cpus} CPUs{mem}, Python {platform.python_version()}"


def timed(p, *args):
    start = time.perf_counter()
    proc = p.orch(*args)
    return time.perf_counter() - start, proc


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(REPO / "docs" / "BENCHMARKS-controller.md"))
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="orch-bench-"))
    server = start_sshd(tmp / "sshd")
    try:
        p = make_project(tmp / "project", tmp / "hostwork", server)
        long = ["--set", "train.steps=100000"]
        # Warm-up run: stages the data and the code snapshot once; it finishes before the
        # status timings so its jobs do not compete for the CPU.
        before = server.logins()
        cold_t, _ = timed(p, "run", "smoke", "--host", "testhost", "--name", "warm", "--set", "train.steps=2")
        cold_logins = server.logins() - before
        p.wait_state("warm")

        # fetch-results of a finished run (status + rsync pull + verify + evaluate).
        fetch_times, fetch_logins = [], []
        for _ in range(args.repeats):
            before = server.logins()
            t, proc = timed(p, "fetch-results", "warm", "--no-eval")
            assert proc.returncode == 0, proc.stderr
            fetch_times.append(t)
            fetch_logins.append(server.logins() - before)

        # A launch after a code change: a new snapshot is rsync'd (hard links to the last).
        changed_times, changed_logins = [], []
        for i in range(args.repeats):
            (p.root / "remote" / "bench_touch.py").write_text(f"X = {i}\n")
            before = server.logins()
            t, proc = timed(p, "run", "smoke", "--host", "testhost", "--name", f"c{i}", *long)
            assert proc.returncode == 0, proc.stderr
            changed_times.append(t)
            changed_logins.append(server.logins() - before)
            p.orch("cancel", f"c{i}", check=True)

        # orch run until all jobs are running (data staged, code unchanged).
        run_times, resync_files = [], []
        for i in range(args.repeats):
            t, proc = timed(p, "run", "smoke", "--host", "testhost", "--name", f"r{i}", *long)
            assert proc.returncode == 0, proc.stderr
            resync_files.append(int(proc.stdout.split(" files sent")[0].rsplit("(code ", 1)[1].split(", ")[1]))
            run_times.append(t)
            # Every job's wrapper must already be up (waiting or running) when `orch run` returns.
            states = [j["state"] for j in json.loads(p.orch("status", f"r{i}", "--json", check=True).stdout)["jobs"]]
            assert all(s in ("running", "waiting", "done") for s in states), states
            p.orch("cancel", f"r{i}", check=True)

        status_times, logins = [], []
        for _ in range(args.repeats):
            before = server.logins()
            t, proc = timed(p, "status", "warm")
            assert proc.returncode == 0, proc.stderr
            status_times.append(t)
            logins.append(server.logins() - before)
    finally:
        server.stop()

    def row(name, values, target, unit="s"):
        med = statistics.median(values)
        return f"| {name} | {med:.2f} {unit} (min {min(values):.2f}, max {max(values):.2f}) | {target} |"

    text = "\n".join(
        [
            "# Controller benchmarks (loopback sshd)",
            "",
            f"Measured {time.strftime('%Y-%m-%d')} with `python bench/bench_controller.py` on: {machine()}.",
            "Real OpenSSH sshd on 127.0.0.1, real tmux and rsync; each figure is the median of "
            f"{args.repeats} runs of the real `orch` CLI (process start-up included).",
            "The test host's login shell sources a ~/.bashrc that initialises pyenv: every SSH command",
            "pays ~0.14 s for it there (`ssh host true` = 0.14 s), whatever orch does.",
            "",
            "| what | measured | target |",
            "|---|---|---|",
            row("`orch status` wall time (warm host)", status_times, "<= 0.5 s"),
            f"| `orch status` SSH logins | {sorted(set(logins))} | exactly 1 |",
            row("`orch run` until all jobs running (data staged)", run_times, "<= 3 s"),
            f"| re-sync of unchanged code: files transferred | {sorted(set(resync_files))} | 0 |",
            f"| cold `orch run` (code snapshot + data sent), one sample | {cold_t:.2f} s | <= 3 s |",
            f"| cold `orch run` SSH logins (rsync rides the one connection) | [{cold_logins}] | 1 |",
            row("`orch run` after a code change (new snapshot rsync'd)", changed_times, "<= 3 s"),
            f"| `orch run` after a code change: SSH logins | {sorted(set(changed_logins))} | 1 |",
            row("`orch fetch-results --no-eval` (finished run)", fetch_times, "<= 2 s"),
            f"| `orch fetch-results` SSH logins | {sorted(set(fetch_logins))} | 1 |",
            "",
        ]
    )
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
