"""What the study test files share: a study config written into the test project, a wait
for every run of a study to end, and both with a launch between (a study whose runs all
ended done)."""

import json
import time

import timing
import yaml


def write_study(p, name, members, seeds, shared=None, ensembles=None, compare=None):
    doc = {"base": "smoke", "host": "testhost", "seeds": seeds, "set": shared or {}, "members": members}
    if ensembles:
        doc["ensembles"] = ensembles
    if compare:
        doc["compare"] = compare
    path = p.root / "configs" / "studies" / f"{name}.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def wait_ended(p, study, timeout=600):
    deadline = time.time() + timing.scaled(timeout)
    last = None
    while time.time() < deadline:
        proc = p.orch("study", "status", study, "--json")
        if proc.returncode == 0:
            last = json.loads(proc.stdout)["runs"]
            if all(r["state"] in ("done", "failed", "cancelled", "fetched") for r in last):
                return {r["run_id"]: r for r in last}
        time.sleep(1.0)
    raise AssertionError(f"study {study} did not end in {timeout} s; last status: {last}")


def run_done(p, name, members, seeds, shared=None, **more):
    """Writes study NAME, launches it with `orch study run` and waits until every run ended
    done; returns `study status --json`'s runs by id."""
    write_study(p, name, members, seeds, shared, **more)
    p.orch("study", "run", name, check=True)
    runs = wait_ended(p, name)
    assert {r["state"] for r in runs.values()} == {"done"}, runs
    return runs
