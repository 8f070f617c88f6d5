"""What scripts and pipes get from the real CLI: data on stdout, messages on stderr, no
hard wrapping when not a terminal, --json and --quiet (host `local`: no SSH needed)."""

import json
import os

import pytest

pytestmark = pytest.mark.integration

TINY = ["--set", "train.steps=5"]


def test_run_prints_the_run_id_alone_and_everything_else_on_stderr(ssh_project):
    p = ssh_project
    p.env["COLUMNS"] = "40"  # not a terminal: even a narrow COLUMNS must not fold lines
    proc = p.orch("run", "smoke", "--name", "scripted", *TINY, check=True)
    assert proc.stdout == "scripted\n"  # R=$(orch run smoke) is the run id
    launched = [line for line in proc.stderr.splitlines() if line.startswith("launched scripted on local:")]
    assert len(launched) == 1, proc.stderr
    assert "(code " in launched[0] and "files sent" in launched[0]  # one line, grep-able
    assert "follow: orch status scripted --watch, or orch logs scripted JOB -f" in proc.stderr

    doc = json.loads(p.orch("run", "smoke", "--name", "asjson", "--json", *TINY, check=True).stdout)
    assert doc["run"] == "asjson" and doc["host"] == "local" and doc["jobs"] == ["class-0", "class-1"]
    assert len(doc["code_hash"]) == 16

    for argv in (["--quiet", "run", "smoke", "--name", "quiet1"], ["run", "smoke", "--name", "quiet2", "-q"]):
        quiet = p.orch(*argv, *TINY, check=True)
        assert quiet.stdout == argv[argv.index("--name") + 1] + "\n" and quiet.stderr == "", quiet.stderr

    for run in ("scripted", "asjson", "quiet1", "quiet2"):
        assert [j["state"] for j in p.wait_state(run)] == ["done", "done"]
    status = p.orch("status", "scripted", check=True)
    assert "scripted on local: done" in status.stdout and status.stderr == ""
    cancel = p.orch("cancel", "scripted", check=True)
    assert cancel.stdout.splitlines() == ["class-0: already done", "class-1: already done"]
    listed = p.orch("runs", check=True)
    assert all(run in listed.stdout for run in ("scripted", "asjson", "quiet1", "quiet2")) and listed.stderr == ""
    # fetch-results' evaluation is its result: on stdout, as `orch eval` prints it, and kept by --quiet
    fetched = p.orch("-q", "fetch-results", "quiet1", check=True)
    assert "accuracy" in fetched.stdout and "confusion matrix" in fetched.stdout and fetched.stderr == ""

    missing = p.orch("status", "nosuch")
    assert missing.returncode == 8 and missing.stdout == ""
    assert missing.stderr.startswith("error: no run named 'nosuch'")
    assert p.orch("-q", "status", "nosuch").stderr == missing.stderr  # --quiet keeps errors


def test_run_wait_quiet_json_is_one_json_document_and_results_follow_the_umask(ssh_project):
    p = ssh_project
    proc = p.orch("run", "smoke", "--name", "waited", "--wait", "--quiet", "--json", timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stderr == ""
    doc = json.loads(proc.stdout)
    assert doc["run"] == "waited" and doc["accuracy"] >= 0.8 and doc["verdict"]
    # metrics.json, predictions.csv, report.md and the fetched job files get the mode the umask gives (0644) like
    # everything else in the run folder (they were 0600: mkstemp).
    run = p.run_dir("waited")
    mask = os.umask(0o022)
    os.umask(mask)
    for path in [
        run / "metrics.json",
        run / "predictions.csv",
        run / "report.md",
        run / "run.yaml",
        run / "jobs" / "class-0" / "scores.jsonl",
        run / "jobs" / "class-0" / "manifest.json",
    ]:
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, (path, oct(path.stat().st_mode))
