"""A study run whose local folder was deleted (`rm -rf runs/RUN`), on the real loopback sshd:
status and the report say it was launched and where, `fetch-results` and `study fetch`
restore the folder from the host's run.yaml (checked against what study.json recorded at
launch) and fetch it, a run gone on the host too is launched again by `study resume`, and
a record too old to restore from says how to recover in one message."""

import json
import shutil

import pytest
from studycases import run_done, wait_ended

SHARED = {"train.steps": 5, "eval.bootstrap": 100}


def _flat(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.slow
def test_a_deleted_run_folder_is_named_and_restored_from_the_host(ssh_project):
    p = ssh_project
    run_done(p, "lf", {"a": {"model.kind": "ar"}}, [0, 1], SHARED)
    p.orch("fetch-results", "lf-a-s0", check=True, timeout=600)
    shutil.rmtree(p.run_dir("lf-a-s1"))

    # Status asks the host all the same, and says the folder here is gone and how to get it back.
    (_, s1) = json.loads(p.orch("study", "status", "lf", "--json", check=True).stdout)["runs"]
    assert s1["state"] == "done", s1
    assert s1["reason"] == (
        "no local record; launched on testhost: `orch study fetch lf` restores its folder from testhost"
    )
    p.orch("study", "report", "lf", check=True, timeout=600)
    table = json.loads((p.root / "runs" / "studies" / "lf" / "table.json").read_text())
    assert [(m["run_id"], m["why"]) for m in table["missing"]] == [("lf-a-s1", s1["reason"])]
    plain = p.orch("status", "lf-a-s1")
    assert plain.returncode == 8 and "study lf launched it on testhost" in plain.stderr
    assert "`orch fetch-results lf-a-s1` restores it" in plain.stderr

    # fetch-results restores the folder from the host, then fetches and evaluates as ever.
    fetched = p.orch("fetch-results", "lf-a-s1", check=True, timeout=600)
    assert f"restored {p.run_dir('lf-a-s1')} from testhost" in fetched.stderr
    local = json.loads((p.run_dir("lf-a-s1") / "local.json").read_text())
    assert local["study"] == {"name": "lf", "member": "a", "seed": 1} and local["state"] == "fetched"
    assert (p.run_dir("lf-a-s1") / "metrics.json").is_file()

    # The host is untrusted: a run.yaml that is not the one launched is refused, and nothing is written.
    shutil.rmtree(p.run_dir("lf-a-s1"))
    host_yaml = p.remote_root / "runs" / "lf-a-s1" / "run.yaml"
    launched_text = host_yaml.read_text()
    host_yaml.write_text(launched_text.replace("code_hash:", "# edited\ncode_hash:", 1))
    refused = p.orch("study", "fetch", "lf", timeout=600)
    assert refused.returncode == 8, refused.stderr
    assert "is not the run.yaml launched (its sha256 is not the one study.json recorded)" in _flat(refused.stderr)
    assert not (p.run_dir("lf-a-s1") / "local.json").exists() and not (p.run_dir("lf-a-s1") / "run.yaml").exists()
    host_yaml.write_text(launched_text)
    again = p.orch("study", "fetch", "lf", check=True, timeout=600)
    assert "restored" in again.stderr and "2 of 2 runs of lf fetched" in again.stderr

    # Gone here and on the host: status says so, and `study resume` launches it again.
    shutil.rmtree(p.run_dir("lf-a-s1"))
    shutil.rmtree(p.remote_root / "runs" / "lf-a-s1")
    (_, s1) = json.loads(p.orch("study", "status", "lf", "--json", check=True).stdout)["runs"]
    assert s1["state"] == "lost" and s1["reason"].startswith("no local record, and not on testhost either"), s1
    resumed = p.orch("study", "resume", "lf", check=True)
    assert "launched lf-a-s1 (a, seed 1)" in resumed.stderr
    assert wait_ended(p, "lf")["lf-a-s1"]["state"] == "done"

    # A record written before orch kept launch facts cannot restore: one message, how to recover.
    path = p.root / "runs" / "studies" / "lf" / "study.json"
    doc = json.loads(path.read_text())
    for entry in doc["runs"]:
        entry.pop("launched")
    path.write_text(json.dumps(doc))
    shutil.rmtree(p.run_dir("lf-a-s1"))
    old = p.orch("study", "resume", "lf")
    said = _flat(old.stderr)
    assert old.returncode == 8, old.stderr
    where = p.remote_root / "runs" / "lf-a-s1"
    assert f"error: 1 of 1 runs of study lf was not resumed: lf-a-s1: already on testhost ({where})" in said, said
    assert "did not launch" not in said and said.count("lf-a-s1: ") == 2  # its line as it happened, and the error
    assert f"`rm -rf {where}` there), then `orch study resume lf`" in said
