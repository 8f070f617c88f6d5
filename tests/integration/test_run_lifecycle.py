"""run -> status -> logs -> fetch-results, end to end through the real sshd, real tmux, real rsync."""

import json
import subprocess
import sys

import pytest

from tests.unit.test_quickstatus import NEVER, STATUS_MODULES

pytestmark = pytest.mark.integration

FAST = ["--set", "train.steps=30", "--set", "train.log_every=5"]


# Issue 15: start-up proportional to the command.  `orch status` over SSH imports exactly
# these of the project's modules (the one list, with why: tests/unit/test_quickstatus.py),
# and none of Typer, Rich or the heavy libraries evaluation uses; connected, also the
# keepalive watch (the unit test's host is unreachable: it never connects).
STATUS_IMPORTS = STATUS_MODULES | {"orchestrator.transport.liveness"}
HEAVY = NEVER + ("pandas",)


def status_imports(p, tmp_path) -> set:
    """The project modules a real `orch status` has loaded when it exits; fails if it
    loaded any of HEAVY."""
    out = tmp_path / "modules.json"
    code = (
        "import atexit, json, runpy, sys\n"
        f"atexit.register(lambda: open({str(out)!r}, 'w').write(json.dumps(sorted(sys.modules))))\n"
        "sys.argv = ['orch', 'status', 'life', '--json']\n"
        "runpy.run_module('orchestrator.cli', run_name='__main__')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=p.root, env=p.env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    names = set(json.loads(out.read_text()))
    assert not {n.split(".")[0] for n in names} & set(HEAVY), sorted(n for n in names if n.split(".")[0] in HEAVY)
    return {n for n in names if n.split(".")[0] in ("orchestrator", "remote")}


def test_run_status_logs_fetch(ssh_project, tmp_path):
    p = ssh_project
    before, commands, sftp = p.sshd.logins(), p.sshd.sessions(), p.sshd.sessions("subsystem 'sftp'")
    proc = p.orch("run", "smoke", "--host", "testhost", "--name", "life", *FAST, check=True)
    # A cold launch (code and data rsync'd) is still one login: rsync rides the verified connection.
    assert p.sshd.logins() == before + 1
    # ... and the two rsync transfers (code, data) + 2 commands: one says what is missing,
    # one publishes the code and launches (issue 15).  Nothing goes over SFTP.
    assert p.sshd.sessions() == commands + 2 + 2
    assert p.sshd.sessions("subsystem 'sftp'") == sftp
    # stdout is the run id alone, for scripts (R=$(orch run ...)); what it did is on stderr.
    assert proc.stdout == "life\n"
    assert "launched life on testhost" in proc.stderr and "orch status life --watch" in proc.stderr
    # The jobs run on the host, in detached tmux sessions, from a pinned code snapshot.
    run_yaml = p.remote_root / "runs" / "life" / "run.yaml"
    assert run_yaml.is_file()
    snapshots = list((p.remote_root / "code").iterdir())
    assert len(snapshots) == 1 and (snapshots[0] / "remote" / "run_job.py").is_file()
    assert not (snapshots[0] / "configs" / "data").exists()  # data is staged, not synced with code
    staged = list((p.remote_root / "data").iterdir())
    assert len(staged) == 1 and staged[0].name.endswith("-tiny_sentiment.jsonl")

    logins = p.sshd.logins()
    status = p.orch("status", "life", "--json", check=True)
    assert p.sshd.logins() == logins + 1, "status must use exactly one SSH login"
    doc = json.loads(status.stdout)
    assert doc["run"] == "life" and [j["name"] for j in doc["jobs"]] == ["class-0", "class-1"]
    assert status_imports(p, tmp_path) == STATUS_IMPORTS
    assert all(j["state"] in ("waiting", "running", "done") for j in doc["jobs"])

    jobs = p.wait_state("life")
    assert [j["state"] for j in jobs] == ["done", "done"], jobs
    assert all(j["step"] == j["total"] for j in jobs)

    logs = p.orch("logs", "life", "class-0", "-n", "200", check=True)
    assert "train step" in logs.stdout and "[orch]" in logs.stdout
    newest = p.orch("logs", "-n", "200", check=True)  # no RUN: the newest run, as status and fetch-results
    assert "job class-0" in newest.stdout and "job class-1" in newest.stdout

    logins = p.sshd.logins()
    fetched = p.orch("fetch-results", "life", check=True)
    assert p.sshd.logins() == logins + 1  # status + rsync pull on one connection
    assert "results verified" in fetched.stderr
    metrics = json.loads((p.run_dir("life") / "metrics.json").read_text())
    assert metrics["accuracy"] > 0.7
    assert f"accuracy {100 * metrics['accuracy']:.2f}% -> " in fetched.stderr  # a percentage, as everywhere
    # The Jeffreys interval, which keeps some width even when every text is right
    lo, hi = metrics["accuracy_ci95"]
    assert metrics["bootstrap"]["method"] == "jeffreys" and lo < hi and lo <= metrics["accuracy"] <= hi
    assert "95% CI (Jeffreys)" in (p.run_dir("life") / "report.md").read_text()
    # The yardsticks, trained here on the data file the run was launched with, on its split.
    record = json.loads((p.run_dir("life") / "local.json").read_text())
    assert record["data_files"]["path"]["host"].endswith("-tiny_sentiment.jsonl")
    y = metrics["yardsticks"]
    assert y["available"] and [r["name"] for r in y["rows"]] == ["nb", "tfidf_lr"], y
    assert metrics["verdict"]["dataset"] == "tiny_sentiment" and metrics["verdict"]["basis"] == "yardsticks"
    report = (p.run_dir("life") / "report.md").read_text()
    assert "## Yardsticks" in report and "naive Bayes" in report
    for job in ("class-0", "class-1"):
        d = p.run_dir("life") / "jobs" / job
        assert {"scores.jsonl", "manifest.json", "status.json", "log.txt"} <= {f.name for f in d.iterdir()}
        assert not (d / "ckpt").exists()  # checkpoints stay on the host
    # A damaged or cut-short local copy is caught by the manifest and mended by fetching again.
    scores = p.run_dir("life") / "jobs" / "class-0" / "scores.jsonl"
    good = scores.read_bytes()
    scores.write_bytes(good[:-1] + (b"X" if good[-1:] != b"X" else b"Y"))
    assert p.orch("fetch-results", "life", "--no-eval", check=True).returncode == 0
    assert scores.read_bytes() == good
    scores.write_bytes(good[: len(good) // 2])
    p.orch("fetch-results", "life", "--no-eval", check=True)
    assert scores.read_bytes() == good
    runs = json.loads(p.orch("runs", "--json", check=True).stdout)
    assert runs[0]["run"] == "life" and runs[0]["state"] == "fetched"
    assert p.sshd.logins() > before


def test_existing_run_id_refused_and_unchanged_code_not_resent(ssh_project):
    p = ssh_project
    p.orch("run", "smoke", "--host", "testhost", "--name", "one", *FAST, check=True)
    again = p.orch("run", "smoke", "--host", "testhost", "--name", "one", *FAST)
    assert again.returncode == 8 and "already exists" in again.stderr and "Traceback" not in again.stderr
    logins, commands, sftp = p.sshd.logins(), p.sshd.sessions(), p.sshd.sessions("subsystem 'sftp'")
    second = p.orch("run", "smoke", "--host", "testhost", "--name", "two", *FAST, check=True)
    assert ", 0 files sent" in second.stderr
    # Code unchanged and data staged: no rsync, the whole launch is one SSH login running
    # one command, which checks the host has everything and launches (issue 15).
    assert p.sshd.logins() == logins + 1
    assert p.sshd.sessions() == commands + 1 and p.sshd.sessions("subsystem 'sftp'") == sftp
    # A code change makes a new snapshot; the running run keeps its own.
    (p.root / "remote" / "extra_module.py").write_text("X = 1\n")
    third = p.orch("run", "smoke", "--host", "testhost", "--name", "three", *FAST, check=True)
    assert ", 0 files sent" not in third.stderr
    assert len(list((p.remote_root / "code").iterdir())) == 2
    for run in ("one", "two", "three"):
        assert [j["state"] for j in p.wait_state(run)] == ["done", "done"]


def test_fetch_refuses_incomplete_run_unless_partial(ssh_project):
    p = ssh_project
    p.orch("run", "smoke", "--host", "testhost", "--name", "slow", "--set", "train.steps=100000", check=True)
    refused = p.orch("fetch-results", "slow")
    assert refused.returncode == 8 and "not complete" in refused.stderr
    partial = p.orch("fetch-results", "slow", "--partial", check=True)
    assert "partial run: not evaluated" in partial.stderr
    assert not (p.run_dir("slow") / "metrics.json").exists()
    p.cancel("slow")


def test_a_run_whose_host_workdir_was_wiped_says_so_and_resumes(ssh_project):
    """The host's workdir cleaned away under a stopped run: every command says the run's
    code snapshot is gone (not a raw `cd:` error), and --resume sends the code, the data
    and the run again, so the suggested recovery works."""
    import shutil

    p = ssh_project
    p.orch("run", "smoke", "--host", "testhost", "--name", "wiped", *FAST, check=True)
    p.wait_state("wiped")
    shutil.rmtree(p.remote_root)
    for args in (["status", "wiped"], ["cancel", "wiped"], ["fetch-results", "wiped"], ["logs", "wiped", "class-0"]):
        proc = p.orch(*args)
        assert proc.returncode == 8, (args, proc.stdout + proc.stderr)
        said = "is not on testhost" if args[0] == "logs" else "the run's code snapshot is not on testhost"
        assert said in proc.stderr and "cd:" not in proc.stderr, args
        assert "--resume" in proc.stderr
    resumed = p.orch("run", "smoke", "--resume", "wiped", "--wait", timeout=240)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert (p.run_dir("wiped") / "metrics.json").is_file()
