"""A study whose jobs are given a GPU that torch cannot use, on the real loopback sshd: each
job runs on the CPU and says so (remote/train.py cpu_fallback_note), and the study's views say
so for each run it concerns, as `orch status` and a run's report.md do, without hiding the
runs' results."""

import json
import re

import pytest
from studycases import run_done

RUNS = ("cf-a-s0", "cf-a-s1")
JOBS = ["class-0", "class-1"]


def _line(table: str, run: str) -> str:
    return next(line for line in table.splitlines() if line.startswith(run + " "))


@pytest.mark.slow
def test_study_views_say_which_runs_ran_on_the_cpu(ssh_project):
    p = ssh_project
    p.write_host(gpus=["0"])  # CUDA_VISIBLE_DEVICES=0 on this machine, whose torch has no CUDA
    runs = run_done(p, "cf", {"a": {"model.kind": "ar"}}, [0, 1], {"train.steps": 5, "eval.bootstrap": 100})
    assert all(runs[run]["ran_on_cpu"] == JOBS for run in RUNS), runs

    def shown(state: str) -> str:
        table = p.orch("study", "status", "cf", check=True).stdout
        for run in RUNS:
            assert re.search(rf"\b{state} \(class-0, class-1 ran on CPU\)", _line(table, run)), table
            assert (
                f"{run}: class-0, class-1 given a GPU but ran on the CPU; unless the run asks for the CPU "
                f"(train.device: cpu), torch on testhost cannot use the GPU (`orch logs {run} class-0` says why): "
                "`orch bootstrap testhost` installs a CUDA build of torch"
            ) in table, table
        return table

    shown("done")  # from the host (the jobs' progress lines)
    p.orch("study", "fetch", "cf", check=True, timeout=600)
    shown("fetched")  # from the fetched manifests
    listed = json.loads(p.orch("study", "status", "cf", "--json", check=True).stdout)["runs"]
    assert [(r["run_id"], r["state"], r["ran_on_cpu"]) for r in listed] == [(run, "fetched", JOBS) for run in RUNS]

    reported = p.orch("study", "report", "cf", check=True, timeout=600)
    said = " ".join(reported.stderr.split())
    assert re.search(r"a: \d+\.\d\d% ± \d+\.\d\d, 95% CI", said), said  # the results, as ever
    for seed, run in enumerate(RUNS):
        assert f"note: {run} (a, seed {seed}): class-0, class-1 given a GPU but ran on the CPU" in said, said
    out_dir = p.root / "runs" / "studies" / "cf"
    table = json.loads((out_dir / "table.json").read_text())
    (row,) = table["rows"]
    assert row["n_done"] == 2 and row["accuracy_mean"] is not None and not table["missing"]
    for seed in row["seeds"]:
        assert sorted(seed["ran_on_cpu"]) == JOBS
        assert all(note.startswith("this job was given GPU ") for note in seed["ran_on_cpu"].values())
    report = (out_dir / "report.md").read_text()
    assert "s0 " in report and "ran on CPU †" in report
    assert "† **Given a GPU but ran on the CPU:** `cf-a-s0` (class-0, class-1); `cf-a-s1` (class-0, class-1)." in report
    assert "their compute times are CPU times" in report and "this job was given GPU 0" in report
    csv = (out_dir / "table.csv").read_text()
    assert csv.count("given a GPU, ran on the CPU: class-0, class-1") == 2
