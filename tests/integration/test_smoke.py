"""`orch smoke` against the real sshd test host: a passing host and a broken one."""

import json
import subprocess
import sys
from xml.etree import ElementTree as ET

import pytest

pytestmark = pytest.mark.integration


def test_smoke_passes_on_loopback_host(ssh_project, tmp_path):
    p = ssh_project
    junit = tmp_path / "smoke.xml"
    proc = p.orch("smoke", "testhost", "--junit", str(junit), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] and report["host"] == "testhost"
    by_name = {s["name"]: s for s in report["steps"]}
    assert by_name["connect"]["status"] == "passed" and "host key verified" in by_name["connect"]["detail"]
    assert by_name["GPU kernels (bf16 matmul, SDPA, flash-attn)"]["status"] == "skipped"  # no GPU here
    assert by_name["fetch + evaluate"]["status"] == "passed"
    assert by_name["cleanup"]["status"] == "passed"
    assert list((p.remote_root / "runs").iterdir()) == []  # remote files cleaned up
    (listed,) = json.loads(p.orch("runs", "--json").stdout)
    assert listed["run"].startswith("smoke-check-") and listed["state"] == "fetched"
    status = p.orch("status", listed["run"])
    assert status.returncode == 8 and "orch smoke removed it after its check passed" in status.stderr
    suite = ET.parse(junit).getroot()
    assert suite.get("tests") == str(len(report["steps"])) and suite.get("failures") == "0"
    assert len(suite.findall("testcase")) == len(report["steps"])


def test_smoke_fails_on_host_whose_python_lacks_torch(ssh_project, tmp_path):
    p = ssh_project
    venv = tmp_path / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    p.write_host(python=str(venv / "bin" / "python"))
    junit = tmp_path / "smoke.xml"
    proc = p.orch("smoke", "testhost", "--junit", str(junit))
    assert proc.returncode == 1
    assert "FAIL env imports torch+transformers" in proc.stdout
    assert "smoke FAILED at step 'env imports torch+transformers'" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    suite = ET.parse(junit).getroot()
    assert suite.get("failures") == "1"
    failed = [c.get("name") for c in suite.findall("testcase") if c.find("failure") is not None]
    assert failed == ["env imports torch+transformers"]
    # `orch run` refuses such a host before launching, instead of jobs failing on it.
    run = p.orch("run", "smoke", "--host", "testhost", "--name", "nolibs")
    assert run.returncode == 6, run.stdout + run.stderr
    assert "cannot import torch, transformers, tokenizers" in run.stderr and "orch bootstrap testhost" in run.stderr
    assert not (p.remote_root / "runs" / "nolibs").exists() and not p.run_dir("nolibs").exists()


def test_smoke_says_so_when_the_hosts_python_prints_noise_after_its_report(ssh_project, tmp_path):
    """A host's python that prints more after what orch asked (a sitecustomize, a shell rc,
    or a hostile host: deeply nested brackets) fails a step with a message, no traceback."""
    p = ssh_project
    noisy = tmp_path / "noisy-python"
    noisy.write_text(f'#!/bin/sh\n"{sys.executable}" "$@"\nrc=$?\nprintf "%0100000d\\n" 0 | tr 0 [\nexit $rc\n')
    noisy.chmod(0o755)
    p.write_host(python=str(noisy))
    proc = p.orch("smoke", "testhost", "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    steps = {s["name"]: s for s in json.loads(proc.stdout)["steps"]}
    failed = [s for s in steps.values() if s["status"] == "failed"]
    assert [s["name"] for s in failed] == ["env imports torch+transformers"], failed
    assert "printed no report: " in failed[0]["detail"] and "[[[[" in failed[0]["detail"]


def test_a_check_that_times_out_keeps_its_logs_and_says_its_jobs_were_stopped(ssh_project):
    """The run step's failure points at `orch logs`: cleanup stops the jobs but keeps the
    run on the host for it, and `orch runs` no longer shows the check as launched."""
    p = ssh_project
    proc = p.orch("smoke", "testhost", "--timeout", "1", "--json")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    steps = {s["name"]: s for s in json.loads(proc.stdout)["steps"]}
    run_step = steps["smoke run (through the host's job backend)"]
    assert run_step["status"] == "failed" and "did not finish in 1 s" in run_step["detail"]
    assert steps["cleanup"]["status"] == "passed" and "for `orch logs smoke-check-" in steps["cleanup"]["detail"]
    (listed,) = json.loads(p.orch("runs", "--json").stdout)
    assert listed["state"] == "cancelled" and set(listed["jobs"].values()) <= {"cancelled", "done", "failed"}
    assert (p.remote_root / "runs" / listed["run"]).is_dir()
    logs = p.orch("logs", listed["run"])
    assert logs.returncode == 0, logs.stdout + logs.stderr
