"""A study with a failed member, on the real loopback sshd: the rest is fetched and
reported, the report says what is missing, and `orch study resume` relaunches it."""

import json
import re
import time

import pytest
import timing
from studycases import wait_ended, write_study


@pytest.mark.slow
def test_a_failed_member_is_reported_missing_and_resumed(ssh_project):
    p = ssh_project
    # No GPU here: a member that insists on CUDA fails on the host, after launch.
    write_study(
        p,
        "br",
        {"ok": {"model.kind": "ar"}, "broken": {"model.kind": "ar", "train.device": "cuda"}},
        [0],
        {"train.steps": 5, "eval.bootstrap": 100},
    )
    p.orch("study", "run", "br", check=True)
    runs = wait_ended(p, "br")
    assert runs["br-ok-s0"]["state"] == "done" and runs["br-broken-s0"]["state"] == "failed"
    assert "no CUDA GPU" in runs["br-broken-s0"]["reason"]

    fetched = p.orch("study", "fetch", "br", check=True, timeout=600)
    assert "1 of 2 runs of br fetched" in fetched.stderr and "br-broken-s0: failed" in fetched.stderr
    p.orch("study", "report", "br", check=True, timeout=600)
    out_dir = p.root / "runs" / "studies" / "br"
    table = json.loads((out_dir / "table.json").read_text())
    assert [m["run_id"] for m in table["missing"]] == ["br-broken-s0"]
    assert "failed" in table["missing"][0]["why"]
    report = (out_dir / "report.md").read_text()
    assert "br-broken-s0" in report.split("## What is missing")[1]  # the section, not a mention of it

    resumed = p.orch("study", "resume", "br", check=True)
    assert "relaunched class-0, class-1 of br-broken-s0" in resumed.stderr
    deadline = time.time() + timing.scaled(300)
    log = p.remote_job("br-broken-s0", "class-0") / "log.txt"
    while len(re.findall(r"^\[orch\] \S+ \S+ exit ", log.read_text(), re.M)) < 2 and time.time() < deadline:
        time.sleep(0.5)
    runs = wait_ended(p, "br")
    assert runs["br-broken-s0"]["state"] == "failed" and runs["br-ok-s0"]["state"] == "fetched"
    assert log.read_text().count(" start: ") == 2
