"""The built-in `local` host: the README's first command, without SSH."""

import json
import re
from pathlib import Path

import pytest
import timing
from contractdoc import documented

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_readme_commands_are_the_ones_ci_runs():
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"^    (python3 -m pip install .*)$", readme, flags=re.M)
    assert len(commands) == 2, commands
    run_cmd, test_cmd = commands
    assert run_cmd.endswith("orch run smoke --wait")
    assert test_cmd in (REPO / ".ci" / "run").read_text()


def test_run_smoke_wait_on_local_host(ssh_project):
    p = ssh_project  # a fresh project; the sshd is not used by `local`
    proc = p.orch("run", "smoke", "--wait", "--name", "loc", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    metrics = json.loads((p.run_dir("loc") / "metrics.json").read_text())
    assert metrics["accuracy"] >= 0.8
    assert (p.run_dir("loc") / "report.md").is_file()
    # plots are drawn on request (a fetch does not wait for matplotlib)
    assert not any((p.run_dir("loc") / "plots").glob("*.png"))
    plots = p.orch("eval", "loc", "--plots", timeout=300)
    assert plots.returncode == 0, plots.stdout + plots.stderr
    assert any((p.run_dir("loc") / "plots").glob("*.png"))
    # local keeps its host files inside the project, under .orch/local
    job = p.root / ".orch" / "local" / "runs" / "loc" / "jobs" / "class-0"
    assert (job / "status.json").is_file()
    # What the payload wrote has exactly the keys docs/CONTRACT.md lists (hostctl's and the
    # wrapper's documents: tests/unit/test_contract_keys.py).
    docs = documented()
    # (no GPU given here: no `device_note`, which only a job given a GPU that ran on the CPU has;
    # `train_class_counts` is the classifier job's, and this is a class job)
    only_some = {"slurm", "adaptive", "device_note", "train_class_counts"}
    assert set(json.loads((job / "manifest.json").read_text())) == docs["manifest.json/keys"] - only_some
    for name in ("scores.jsonl", "progress.jsonl"):
        seen = set()
        for line in (job / name).read_text().splitlines():
            seen |= set(json.loads(line))
        # the smoke run is an AR model: exact scores carry no MDLM `draws`
        assert seen == docs[f"{name}/keys"] - {"draws"}, name


def test_malformed_data_is_refused_before_launch_with_line_number(ssh_project):
    p = ssh_project
    logins = p.sshd.logins()
    bad = p.root / "bad.jsonl"
    bad.write_text('{"text": "fine", "label": 0}\n{"text": "also fine", "label": 1}\n{"text": "broken", "label": \n')
    proc = p.orch("run", "smoke", "--name", "bad", "--set", "data.path=bad.jsonl")
    assert proc.returncode == 9, proc.stderr
    assert "bad.jsonl" in proc.stderr and ":3" in proc.stderr and "Traceback" not in proc.stderr
    assert not p.run_dir("bad").exists()
    missing = p.orch("run", "smoke", "--name", "bad", "--set", "data.path=nowhere.jsonl")
    assert missing.returncode == 3 and "data.path: nowhere.jsonl does not exist" in missing.stderr
    # well-formed, but the jobs' own split leaves no test texts: every job would fail on the host
    bad.write_text("".join(f'{{"text": "text {i}", "label": {i % 2}}}\n' for i in range(3)))
    empty = p.orch("run", "smoke", "--name", "bad", "--set", "data.path=bad.jsonl")
    assert empty.returncode == 9 and "no test texts" in empty.stderr and "data.test_fraction" in empty.stderr
    assert not p.run_dir("bad").exists() and p.sshd.logins() == logins  # refused before any login


def test_same_name_launched_twice_at_once_starts_once(ssh_project):
    p = ssh_project
    procs = [p.popen("run", "smoke", "--name", "race", "--set", "train.steps=5") for _ in range(2)]
    results = [proc.communicate(timeout=timing.scaled(120)) for proc in procs]
    codes = sorted(proc.returncode for proc in procs)
    assert codes == [0, 8], results
    # the loser says why, and prints no run id: the run is not one it made
    (lost,) = [(out, err) for proc, (out, err) in zip(procs, results) if proc.returncode == 8]
    assert "already exists" in lost[1] and lost[0] == "", lost
    jobs = p.wait_state("race")
    assert [j["state"] for j in jobs] == ["done", "done"]
    again = p.orch("run", "smoke", "--name", "race", "--json")
    assert again.returncode == 8 and again.stdout == "", again.stdout


def test_failed_job_reason_reaches_status_and_resume_refuses_changes(ssh_project):
    p = ssh_project
    # A tokenizer smaller than its special tokens + bytes makes the job fail on the host.
    proc = p.orch(
        "run",
        "smoke",
        "--name",
        "bad",
        "--wait",
        "--set",
        "model.kind=classifier",
        "--set",
        "model.init=/nonexistent/checkpoint",
        timeout=120,
    )
    assert proc.returncode == 8, proc.stdout + proc.stderr
    assert "ended failed" in proc.stderr and "exit code 2: error:" in proc.stderr
    # a config error fails the same way again: the hint says so instead of offering --resume
    assert "a resume would fail the same way" in proc.stderr and "--resume bad` retries" not in proc.stderr
    status = json.loads(p.orch("status", "bad", "--json").stdout)
    assert all(j["state"] == "failed" and j["reason"].startswith("exit code 2: error:") for j in status["jobs"])
    watch = p.orch("status", "bad", "--watch")
    assert watch.returncode == 8
    for extra in (["--set", "train.steps=3"], ["--name", "other"], ["--host", "elsewhere"]):
        refused = p.orch("run", "smoke", "--resume", "bad", *extra)
        assert refused.returncode == 2 and "cannot change it" in refused.stderr
    wrong = p.orch("run", "classifier", "--resume", "bad")
    assert wrong.returncode == 2 and "is of experiment 'smoke'" in wrong.stderr
    runs = {r["run"]: r for r in json.loads(p.orch("runs", "--json", check=True).stdout)}
    assert runs["bad"]["state"] == "failed"
    # run.yaml edited here: the relaunched jobs would run another config than the run records
    run_yaml = p.run_dir("bad") / "run.yaml"
    launched = run_yaml.read_text()
    run_yaml.write_text(launched.replace("init: /nonexistent/checkpoint", "init: scratch"))
    edited = p.orch("run", "smoke", "--resume", "bad")
    assert edited.returncode == 8 and "run.yaml was changed after the run was launched" in edited.stderr
    assert "/runs/bad/run.yaml" in edited.stderr and "Traceback" not in edited.stderr


def test_ctrl_c_mid_launch_keeps_a_resumable_record(ssh_project, monkeypatch):
    """Interrupted after the local record is written but before the host has the run:
    the user gets one message saying how to go on, and --resume launches it."""
    from orchestrator.config import experiments
    from orchestrator.config.project import Project
    from orchestrator.errors import ExitCode, OrchError
    from orchestrator.runs import launch as runner
    from orchestrator.transport.connect import open_transport

    p = ssh_project
    monkeypatch.chdir(p.root)
    project = Project(p.root)
    exp, _ = experiments.load(project, "smoke", ["train.steps=10"])
    real = runner.hostlaunch.check_and_launch

    def interrupted(transport, backend, request):
        if "plan" in request:  # the command that would launch: the local record is written
            raise KeyboardInterrupt
        return real(transport, backend, request)

    monkeypatch.setattr(runner.hostlaunch, "check_and_launch", interrupted)
    with open_transport(project, "local", False) as transport:
        with pytest.raises(OrchError) as err:
            runner.launch(project, transport, exp, "cut")
    monkeypatch.setattr(runner.hostlaunch, "check_and_launch", real)
    assert err.value.code == ExitCode.INTERRUPTED
    assert "some of its jobs may not have started" in err.value.message
    assert "orch run smoke --resume cut" in err.value.hint
    assert (p.run_dir("cut") / "run.yaml").is_file()
    resumed = p.orch("run", "smoke", "--resume", "cut", timeout=120)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert [j["state"] for j in p.wait_state("cut")] == ["done", "done"]


def test_an_experiment_is_a_name_or_a_path_and_messages_name_it_as_given(ssh_project):
    p = ssh_project
    missing = p.orch("run", "configs/experiments/nosuch.yaml")
    assert missing.returncode == 3 and missing.stdout == ""
    assert "experiment file configs/experiments/nosuch.yaml does not exist" in missing.stderr
    assert "configs/experiments/configs" not in missing.stderr and ".yaml.yaml" not in missing.stderr
    named = p.orch("run", "nosuch")
    assert named.returncode == 3 and "no experiment 'nosuch'" in named.stderr and "smoke" in named.stderr
    (p.root / "mine.yaml").write_text((p.root / "configs" / "experiments" / "smoke.yaml").read_text())
    by_path = p.orch("run", "mine.yaml", "--name", "bypath", "--set", "train.steps=5", check=True)
    assert by_path.stdout == "bypath\n"
    assert [j["state"] for j in p.wait_state("bypath")] == ["done", "done"]
    assert json.loads(p.orch("runs", "--json", check=True).stdout)[0]["experiment"] == "smoke"


def test_an_empty_data_file_says_so(ssh_project):
    p = ssh_project
    (p.root / "empty.jsonl").write_text("\n\n")
    proc = p.orch("run", "smoke", "--name", "empty", "--set", "data.path=empty.jsonl")
    assert proc.returncode == 9, proc.stderr
    assert "empty.jsonl: no texts in the file" in proc.stderr
    assert "fix that line" not in proc.stderr and "one labelled text per line" in proc.stderr


def test_hosts_check_local_claims_no_host_key(ssh_project):
    p = ssh_project
    proc = p.orch("hosts", "check", "local", check=True)
    assert "local: local (this machine, no SSH)" in proc.stdout and "host key" not in proc.stdout
