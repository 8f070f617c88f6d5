"""Golden files for every command orch generates for a host: a change shows up as a diff."""

import json
import os
from pathlib import Path

import pytest

from orchestrator.backends.tmux import TmuxBackend
from orchestrator.runs.codesync import check_command
from orchestrator.runs.hostops import _PREPARE, hostctl, tools_to_find
from orchestrator.runs.plan import launch_plan, plan_jobs
from orchestrator.transport import shell
from remote.spec import Experiment, load_experiment

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("ORCH_UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.is_file(), f"missing golden file {path}; run with ORCH_UPDATE_GOLDEN=1 once and review it"
    assert text == path.read_text()


def experiment(**data) -> Experiment:
    raw = {"name": "exp", "data": {"path": "d.jsonl", "class_names": {"0": "neg", "1": "pos"}, **data}}
    return load_experiment(raw, "test")


def test_launch_plan_two_classes_one_gpu():
    exp = experiment()
    jobs = plan_jobs(exp, ["0", "1"])
    TmuxBackend().place(jobs, ["0"])
    assert [j.after for j in jobs] == [[], ["neg"]]  # one GPU: pos waits its turn
    plan = launch_plan("exp-1", "/opt/env/bin/python", "/w/runs/exp-1", "/w/code/abc", jobs, TmuxBackend())
    check_golden("launch_two_classes_one_gpu.json", json.dumps(plan, indent=1) + "\n")


def test_launch_plan_pretrain_two_gpus():
    raw = {"name": "exp", "data": {"path": "d.jsonl", "unlabelled_path": "u.jsonl"}, "pretrain": {"enabled": True}}
    exp = load_experiment(raw, "test")
    jobs = plan_jobs(exp, ["0", "1", "2"])
    TmuxBackend().place(jobs, ["0", "1"])
    assert [(j.name, j.gpu, j.requires, j.after) for j in jobs] == [
        ("pretrain", "0", [], []),
        ("class-0", "0", ["pretrain"], []),
        ("class-1", "1", ["pretrain"], []),
        ("class-2", "0", ["pretrain"], ["class-0"]),
    ]
    plan = launch_plan("r", "python3", "/w/runs/r", "/w/code/h", jobs, TmuxBackend())
    check_golden("launch_pretrain_two_gpus.json", json.dumps(plan, indent=1) + "\n")


def test_hostctl_and_prepare_commands():
    text = (
        "\n".join(
            [
                hostctl("python3", "/w/code/h", "status", "--run-dir", "/w/runs/r", "--workdir", "/w"),
                hostctl(
                    "/home/a b/py", "/w/code/h", "cancel", "--run-dir", "/w/runs/r", "--workdir", "/w", "--job", "neg"
                ),
                shell.join(["sh", "-c", _PREPARE, "sh", "orch", "python3", *tools_to_find(TmuxBackend())]),
                hostctl(
                    "python3",
                    "/w/code/h",
                    "follow",
                    "--lines",
                    "40",
                    "--job-dir",
                    "/w/runs/r/jobs/neg",
                    "--workdir",
                    "/w",
                ),
                shell.with_path(["/opt/cuda/bin", "/x y"], shell.join(["nvidia-smi", "-L"])),
                check_command("/w", "h"),
            ]
        )
        + "\n"
    )
    check_golden("host_commands.txt", text)


@pytest.mark.parametrize("hostile", ["a b", "x'y", 'q"q', "a;rm -rf /", "$(touch pwned)", "`id`", "l\nm", "-rf"])
def test_join_is_literal(hostile, tmp_path):
    """Whatever goes in comes out as one literal word when a real shell parses it."""
    import subprocess

    line = shell.join(["printf", "%s\\0", hostile, "tail"])
    out = subprocess.run(["sh", "-c", line], capture_output=True, cwd=tmp_path).stdout
    assert out.split(b"\0")[:2] == [hostile.encode(), b"tail"]
    assert list(tmp_path.iterdir()) == []


def test_env_names_are_checked():
    with pytest.raises(ValueError):
        shell.with_env(["true"], {"A;B": "1"})
