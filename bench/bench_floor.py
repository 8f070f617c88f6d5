"""The controller against the floor (issue 15): each `orch` command next to the least
that could do its job, measured side by side on a loopback sshd.

    python bench/bench_floor.py [--repeats 7] [--write docs/BENCHMARKS-controller.md]

Pairs (A = orch, B = the floor), A and B alternating within each repeat (which goes first
alternates too, so a change in the machine's load hits both):

  `orch --help`                 vs `python -c pass`                                 (CPU)
  `orch status RUN`             vs a minimal Paramiko client running the identical
                                   `remote.hostctl status` command                   (CPU, wall)
  `orch status RUN`             vs OpenSSH `ssh host true`                          (CPU)
  warm `orch run smoke`         vs `ssh host 'tmux new-session -d true'`            (wall)
  cold `orch run smoke`         vs the same (code changed, host's data removed)     (wall)
  `orch fetch-results --no-eval` vs `rsync -e ssh` of the run's job folders          (CPU, wall)
  `orch fetch-results` (evaluated) vs the same rsync                                (CPU, wall)
  `orch eval RUN` (the evaluation alone) vs bench_eval.py's numpy reference process  (CPU)

and, without a pair, a smoke class job's start-up on the host: the time from its start
to its first progress line against its wall time (status.json, progress.jsonl and the
manifest's timings of --startup-runs rounds of shipped `orch run smoke` runs: started
cold, with the warm worker starting, with it waiting, and with it waiting after a code
change; remote/warm.py).

CPU is user+sys of the process and its children (wait4), wall is elapsed time; every
figure is min/median/max over the repeats, ratios are of medians, and the load average
is read before and after each pair.  The sshd log (LogLevel VERBOSE) gives the remote
commands (exec channels) of each launch.  A real OpenSSH sshd on 127.0.0.1 with real
tmux and rsync: the integration tests' test bed.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "tests" / "integration"))  # conftest imports slurmbed, testprocs, timing
sys.path.insert(0, str(REPO / "bench"))

from bench_eval import interleave, loadavg, revision_tree  # noqa: E402
from docsection import replace_section  # noqa: E402
from integration.conftest import make_project, start_sshd, stop_project  # noqa: E402

SECTION = "## The controller at the floor (issue 15)"
SECTION_STARTUP = "## A smoke job's start-up on the host (issue 15 item 4)"
LONG = ["--set", "train.steps=100000"]

# B for `orch status`: the least a Python client can do to run the same host command.  It
# hides Invoke from Paramiko's import as orch does (orchestrator/config/sshconfig.py): a
# floor that paid for Invoke would flatter orch by ~0.13 s.
PARAMIKO_CLIENT = r"""
import sys
sys.modules["invoke"] = None
import paramiko
host, port, user, key, known, command = sys.argv[1:7]
client = paramiko.SSHClient()
client.load_host_keys(known)
client.connect(host, int(port), username=user, key_filename=key, allow_agent=False, look_for_keys=False)
_, out, _ = client.exec_command(command)
data = out.read()
client.close()
assert data.strip().endswith(b"}"), data[-200:]
"""


def cost(argv: List[str], env: Dict[str, str], cwd: Path, check: bool = True) -> Tuple[float, float]:
    """(CPU user+sys of the process and its waited-for children, wall) of one command."""
    wall = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - wall
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if check and os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{err}")
    return usage.ru_utime + usage.ru_stime, wall


def spread(values: List[float]) -> str:
    return f"{statistics.median(values):.3f} (min {min(values):.3f}, max {max(values):.3f})"


def ratio(a: List[float], b: List[float]) -> str:
    return f"{statistics.median(a) / statistics.median(b):.2f}×"


def machine() -> str:
    model = f"{os.cpu_count()} CPUs"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
        model = f"{fields.get('Model name', '').strip()}, {fields.get('CPU(s)', '?').strip()} CPUs"
    except (OSError, subprocess.CalledProcessError):
        pass
    import platform

    return f"{model}; {platform.platform()}, Python {platform.python_version()}"


STARTUP_FLOOR = "import torch"  # what every job must import (a scratch job imports no transformers)


def job_startup(run_dir: Path) -> List[Dict[str, float]]:
    """For each scoring job of a fetched run: seconds from its start (status.json
    ``started``, written by the wrapper as it starts the job) to its first progress line,
    its wall time (``ended`` - ``started``), and the manifest's timings (import_s, ...)."""
    out = []
    for job in sorted((run_dir / "jobs").iterdir()):
        status = json.loads((job / "status.json").read_text())
        manifest = json.loads((job / "manifest.json").read_text())
        with open(job / "progress.jsonl") as fh:
            first = json.loads(fh.readline())["t"]
        wall = status["ended"] - status["started"]
        before = first - status["started"]
        out.append({"before": before, "wall": wall, "share": before / wall, **manifest.get("timings", {})})
    return out


class Bench:
    def __init__(self, repeats: int):
        self.repeats = repeats
        self.rows: List[str] = []
        self.notes: List[str] = []
        self.startup: List[str] = []
        self.startup_notes: List[str] = []

    def pair(
        self,
        what: str,
        floor: str,
        a: Callable[[], Tuple[float, float]],
        b: Callable[[], Tuple[float, float]],
        measure: Tuple[str, ...] = ("CPU", "wall"),
    ) -> Tuple[List[Tuple[float, float]], List[Tuple[float, float]]]:
        before = loadavg()
        out_a, out_b = interleave(a, b, self.repeats)
        after = loadavg()
        for i, name in ((0, "CPU"), (1, "wall")):
            if name not in measure:
                continue
            va, vb = [x[i] for x in out_a], [x[i] for x in out_b]
            self.rows.append(
                f"| {what} | {floor} | {name} | **{ratio(va, vb)}** | {spread(va)} | {spread(vb)} | "
                f"{before} → {after} |"
            )
        print(self.rows[-1], flush=True)
        return out_a, out_b


@dataclass
class Bed:
    """The test bed every measurement runs against: a loopback sshd and a project whose
    finished run `base` is fetched, and the commands that reach them."""

    server: Any
    p: Any  # integration.conftest's OrchProject
    tmp: Path
    py: str
    orch: List[str]
    ssh: List[str]  # OpenSSH to the same host, the floor's client
    wd: str  # the run's workdir on the host
    status_cmd: str  # the host command `orch status base` runs


def command_pairs(bench: Bench, bed: Bed) -> None:
    """Items 1-2: `--help` and `status` against the least that does the same."""
    p = bed.p
    bench.pair(
        "`orch --help`",
        "`python -c pass`",
        lambda: cost([*bed.orch, "--help"], p.env, p.root),
        lambda: cost([bed.py, "-c", "pass"], p.env, p.root),
    )
    server = bed.server
    client = [bed.py, "-c", PARAMIKO_CLIENT, "127.0.0.1", str(server.port), getpass.getuser()]
    client += [str(server.client_key), str(server.known_hosts), bed.status_cmd]
    bench.pair(
        "`orch status RUN`",
        "minimal Paramiko client, same `hostctl status` command",
        lambda: cost([*bed.orch, "status", "base"], p.env, p.root),
        lambda: cost(client, p.env, p.root),
    )
    bench.pair(
        "`orch status RUN`",
        "`ssh host true` (OpenSSH)",
        lambda: cost([*bed.orch, "status", "base"], p.env, p.root),
        lambda: cost([*bed.ssh, "true"], p.env, p.root),
        measure=("CPU",),
    )


def launch_pairs(bench: Bench, bed: Bed, before: Optional[str], old_tree: Optional[Path]) -> None:
    """Item 1: warm and cold launches (wall) and their remote commands from the sshd log;
    with --before, this controller's launch against that revision's."""
    p, server = bed.p, bed.server
    tmux_floor = [*bed.ssh, "tmux -L orch-floor new-session -d true"]
    count = {"n": 0}
    commands: Dict[str, List[int]] = {"warm": [], "cold": [], "old": []}

    def launch(kind: str, env: Dict[str, str]) -> Callable[[], Tuple[float, float]]:
        def go() -> Tuple[float, float]:
            count["n"] += 1
            name = f"{kind}{count['n']}"
            if kind == "cold":  # new code and no data on the host: both are sent
                (p.root / "remote" / "bench_touch.py").write_text(f"X = {count['n']}\n")
                shutil.rmtree(p.remote_root / "data", ignore_errors=True)
            opened = server.sessions() + server.sessions("subsystem 'sftp'")
            result = cost([*bed.orch, "run", "smoke", "--host", "testhost", "--name", name, *LONG], env, p.root)
            commands[kind].append(server.sessions() + server.sessions("subsystem 'sftp'") - opened)
            p.orch("cancel", name, check=True)  # untimed: the next launch finds an idle host
            return result

        return go

    for kind, what in (("warm", "code and data on the host"), ("cold", "code changed, data sent")):
        bench.pair(
            f"{kind} `orch run smoke` ({what})",
            "`ssh host 'tmux new-session -d true'`",
            launch(kind, p.env),
            lambda: cost(tmux_floor, p.env, p.root),
            measure=("wall",),
        )
    bench.notes.append(
        f"exec channels + SFTP sessions per warm launch (sshd log): {sorted(set(commands['warm']))}; "
        f"per cold launch: {sorted(set(commands['cold']))} (2 of them rsync: code, data)"
    )
    if old_tree is None:
        return
    old_env = dict(p.env, PYTHONPATH=str(old_tree))
    rev = f"`{before}`"
    bench.pair(
        "`orch --help`",
        rev + " `orch --help`",
        lambda: cost([*bed.orch, "--help"], p.env, p.root),
        lambda: cost([*bed.orch, "--help"], old_env, p.root),
    )
    bench.pair(
        "`orch status RUN`",
        rev + " `orch status RUN`",
        lambda: cost([*bed.orch, "status", "base"], p.env, p.root),
        lambda: cost([*bed.orch, "status", "base"], old_env, p.root),
    )
    bench.pair("warm `orch run smoke`", rev + " warm `orch run smoke`", launch("warm", p.env), launch("old", old_env))
    bench.notes.append(f"exec channels + SFTP sessions per warm launch of {rev}: {sorted(set(commands['old']))}")


def fetch_pairs(bench: Bench, bed: Bed) -> None:
    """Item 3: fetch against rsync of the same files, evaluation against the numpy
    reference, and the fetch target (<= 3 x rsync CPU + the evaluation of its texts)."""
    p = bed.p
    dest = bed.tmp / "rsync-copy"

    def plain_rsync() -> Tuple[float, float]:
        shutil.rmtree(dest, ignore_errors=True)
        rsh = " ".join(bed.ssh[:-1])
        return cost(
            ["rsync", "-r", "-t", "-e", rsh, f"{bed.ssh[-1]}:{bed.wd}/runs/base/jobs/", f"{dest}/"], p.env, p.root
        )

    floor = "`rsync -r -t -e ssh` of the job folders"
    bench.pair(
        "`orch fetch-results RUN --no-eval` (unchanged run)",
        floor,
        lambda: cost([*bed.orch, "fetch-results", "base", "--no-eval"], p.env, p.root),
        plain_rsync,
    )
    # With evaluation (the default): the first evaluation of the run (its yardsticks
    # trained) is untimed, as the fetch above made it; what is timed is every later one.
    p.orch("eval", "base", check=True)
    n_texts = json.loads((p.run_dir("base") / "metrics.json").read_text())["n"]
    fetch, rsync = bench.pair(
        "`orch fetch-results RUN` (unchanged run, evaluated)",
        floor,
        lambda: cost([*bed.orch, "fetch-results", "base"], p.env, p.root),
        plain_rsync,
    )
    reference = [bed.py, str(REPO / "bench" / "bench_eval.py"), "--reference", str(p.run_dir("base"))]
    evaluation, _ = bench.pair(
        f"`orch eval RUN` alone ({n_texts} texts, no plots)",
        "numpy reference process (bench_eval.py --reference)",
        lambda: cost([*bed.orch, "eval", "base", "--no-plots"], p.env, p.root),
        lambda: cost(reference, p.env, p.root),
        measure=("CPU",),
    )
    med = {k: statistics.median(x[0] for x in v) for k, v in (("f", fetch), ("r", rsync), ("e", evaluation))}
    bench.notes.append(
        f"target `orch fetch-results` (evaluated) <= 3 x rsync CPU + the evaluation of its texts: "
        f"{med['f']:.3f} s against 3 x {med['r']:.3f} + {med['e']:.3f} = {3 * med['r'] + med['e']:.3f} s "
        f"(`orch eval` alone as the evaluation): "
        f"**{med['f'] / (3 * med['r'] + med['e']):.2f}x** of the allowance"
    )


# How a class job can start on a tmux host (remote/warm.py), in the order each round runs them.
STARTS = (
    ("cold", "cold start (`warm_worker: 0`)"),
    ("first", "first run (the warm worker starts with it)"),
    ("warm", "later runs (warm worker waiting)"),
    ("edited", "after a code change (warm worker waiting)"),
)


def stop_warm_workers(bed: Bed) -> None:
    """End the host's warm workers (their tmux sessions) and wait until they have gone."""
    import testprocs
    from timing import wait_for

    sock = Path(bed.wd) / "tmux.sock"
    sessions = subprocess.run(
        ["tmux", "-S", str(sock), "list-sessions", "-F", "#{session_name}"], capture_output=True, text=True
    ).stdout.split()
    for session in sessions:
        if session.startswith("orch-warm-"):
            subprocess.run(["tmux", "-S", str(sock), "kill-session", "-t", "=" + session], capture_output=True)
    wait_for(
        lambda: not [c for c in testprocs.processes_under([bed.wd]).values() if "remote.warm" in c],
        30,
        "the warm workers to leave",
        poll=0.1,
    )


def startup_jobs(bench: Bench, bed: Bed, runs: int) -> None:
    """Item 4: a smoke class job's start-up on the host against its wall time; the shipped
    smoke run (two class jobs side by side on this machine), run to the end.  Each round
    runs it cold (`warm_worker: 0`), then with no warm worker on the host (the first run
    starts one and its jobs wait while it imports torch), then again with that worker, then
    once more after a code edit (a new snapshot, sent by that launch)."""
    p = bed.p
    startup: Dict[str, List[Dict[str, float]]] = {kind: [] for kind, _ in STARTS}
    load_before = loadavg()
    for i in range(runs):
        for kind, _ in STARTS:
            if kind == "cold":
                p.write_host(warm_worker=0)
            else:
                p.write_host()
            if kind == "first":
                stop_warm_workers(bed)
            if kind == "edited":
                with (p.root / "remote" / "train.py").open("a") as fh:
                    fh.write(f"# bench_floor: a code edit, round {i}\n")
            name = f"startup-{kind}{i}"
            p.orch("run", "smoke", "--host", "testhost", "--name", name, check=True)
            p.wait_state(name, timeout=900)
            p.orch("fetch-results", name, "--no-eval", check=True)
            startup[kind] += job_startup(p.run_dir(name))
    p.write_host()
    if not runs:
        return
    floor = [cost([bed.py, "-c", STARTUP_FLOOR], p.env, p.root) for _ in range(runs)]

    def row(what: str, key: str, target: str = "") -> str:
        cells = []
        for kind, _ in STARTS:
            values = [j[key] for j in startup[kind] if key in j]
            if key == "share":
                cells.append(f"**{statistics.median(values):.0%}** (min {min(values):.0%}, max {max(values):.0%})")
            else:
                cells.append(spread(values))
        return f"| {what} | {' | '.join(cells)} | {target} |"

    bench.startup = [
        f"| a smoke class job | {' | '.join(label for _, label in STARTS)} | target |",
        "|---|" + "---|" * len(STARTS) + "---|",
        row("share of the wall time before the first progress line", "share", "< 25%"),
        row("start → first progress line, s", "before"),
        row("job wall time (status.json started → ended), s", "wall"),
        row("of which imports (manifest `import_s`, counted in the job's process), s", "import_s"),
        row("training (`train_s`), s", "train_s"),
        row("scoring (`score_s`), s", "score_s"),
    ]
    bench.startup_notes.append(
        f"floor: `python -c '{STARTUP_FLOOR}'` alone: CPU {spread([f[0] for f in floor])} s, "
        f"wall {spread([f[1] for f in floor])} s"
    )
    bench.startup_notes.append(
        f"start-up: {runs} rounds of {len(STARTS)} `orch run smoke` runs ({', '.join(k for k, _ in STARTS)}; "
        "two class jobs side by "
        f"side each, {2 * runs} jobs per column); load {load_before} → {loadavg()}"
    )


def open_bed(tmp: Path) -> Bed:
    server = start_sshd(tmp / "sshd")
    p = make_project(tmp / "project", tmp / "hostwork", server)
    bed = Bed(server, p, tmp, sys.executable, [sys.executable, "-m", "orchestrator.cli"], [], "", "")
    bed.ssh = ["ssh", "-q", "-i", str(server.client_key), "-p", str(server.port)]
    bed.ssh += ["-o", f"UserKnownHostsFile={server.known_hosts}", "-o", "StrictHostKeyChecking=yes"]
    bed.ssh += ["-o", "BatchMode=yes", "-F", "/dev/null", f"{getpass.getuser()}@127.0.0.1"]
    try:
        # A finished run to ask about and fetch; it stages the code and the data once.
        p.orch("run", "smoke", "--host", "testhost", "--name", "base", "--set", "train.steps=2", check=True)
        p.wait_state("base")
        p.orch("fetch-results", "base", "--no-eval", check=True)
    except BaseException:
        close_bed(bed)
        raise
    from orchestrator.runs.hostops import hostctl

    record = json.loads((p.run_dir("base") / "local.json").read_text())
    bed.wd = record["workdir"]
    code = f"{bed.wd}/code/{record['code_hash']}"
    bed.status_cmd = hostctl(bed.py, code, "status", "--run-dir", f"{bed.wd}/runs/base", "--workdir", bed.wd)
    return bed


def close_bed(bed: Bed) -> None:
    stop_project(bed.p)
    bed.server.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--write", metavar="MARKDOWN", help="replace (or append) this file's section with the results")
    ap.add_argument("--before", metavar="REV", help="also time the controller of git revision REV against this one")
    ap.add_argument(
        "--startup-runs", type=int, default=3, help="smoke runs whose class jobs' start-up is measured (0: none)"
    )
    ap.add_argument("--startup-only", action="store_true", help="measure only the smoke jobs' start-up (no pairs)")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="orch-floor-"))
    old_tree = revision_tree(args.before, tmp / "before") if args.before else None
    bed = open_bed(tmp)
    # Bytecode as an installed orch has it (pip compiles on install; a first import writes
    # it): with PYTHONDONTWRITEBYTECODE=1 in the environment and no __pycache__, every `orch`
    # command would compile its modules from source, ~0.1-0.2 s that no user pays twice.
    trees = [REPO / "orchestrator", REPO / "remote", bed.p.root / "remote"]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *map(str, trees)], stdout=subprocess.DEVNULL, check=True)
    bench = Bench(args.repeats)
    try:
        if not args.startup_only:
            command_pairs(bench, bed)
            launch_pairs(bench, bed, args.before, old_tree)
            fetch_pairs(bench, bed)
        startup_jobs(bench, bed, args.startup_runs)
    finally:
        close_bed(bed)
        shutil.rmtree(tmp, ignore_errors=True)
    write_sections(bench, args)
    return 0


def write_sections(bench: Bench, args: argparse.Namespace) -> None:
    pairs = [
        SECTION,
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} with "
        f"`python bench/bench_floor.py --repeats {args.repeats}` "
        f"on: {machine()}.",
        "A and B interleaved, each figure min/median/max of the repeats in seconds; the ratio is of the medians;",
        "load average (1, 5, 15 min) before → after each pair.  The machine was shared with other work while",
        "this ran: the load column says how much.  The controller's modules are byte-compiled first (as an",
        "installed orch's are), so no command pays for compiling them.",
        "",
        "| A (orch) | B (the floor) | measure | A/B | A, s | B, s | load |",
        "|---|---|---|---|---|---|---|",
        *bench.rows,
        "",
        *[f"- {n}" for n in bench.notes],
        "",
    ]
    startup = [
        SECTION_STARTUP,
        "",
        f"Measured {time.strftime('%Y-%m-%d %H:%M %Z')} with `python bench/bench_floor.py"
        f"{' --startup-only' if args.startup_only else ''} --startup-runs {args.startup_runs}` on: {machine()}.",
        "A smoke class job on the host: its start-up against its wall time, min/median/max over the jobs.",
        "",
        *bench.startup,
        "",
        *[f"- {n}" for n in bench.startup_notes],
        "",
    ]
    sections = ([] if args.startup_only else [(SECTION, pairs)]) + (
        [(SECTION_STARTUP, startup)] if bench.startup else []
    )
    for section, text_lines in sections:
        text = "\n".join(text_lines)
        print(text)
        if args.write:
            replace_section(Path(args.write), section, text)


if __name__ == "__main__":
    sys.exit(main())
