"""A run folder that is not what it was, through the real CLI on the sshd test host: results
removed here by hand, and a copy of another run's folder (`cp -r runs/A runs/B`).

One finished run per module (`base`, the bundled smoke experiment), cloned and fetched per
test, as test_refetch.py does.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest

from tests.integration.test_hostile_host import Host, clone_run, finished_base_run, no_traceback

pytestmark = pytest.mark.integration

JOBS = ("class-0", "class-1")


@pytest.fixture(scope="module")
def base(sshd, tmp_path_factory):
    with finished_base_run(sshd, tmp_path_factory.mktemp("runfolders")) as made:
        yield made


@pytest.fixture
def fetched(base, request):
    """A fresh clone of `base` for this test, fetched and evaluated once; the host config put back after."""
    p, pristine = base
    run_id = "f" + hashlib.sha256(request.node.name.encode()).hexdigest()[:10]
    clone_run(p, pristine, "base", run_id)
    h = Host(p, run_id)
    assert "results verified" in h.orch("fetch-results", run_id, check=True).stderr
    yield h
    p.write_host()


def _listed(h) -> dict:
    return {item["run"]: item for item in json.loads(h.orch("runs", "--json", check=True).stdout)}


def _said(proc) -> str:
    return " ".join((proc.stdout + proc.stderr).split())


# --------------------------------------------------------------------------- results removed here


def test_a_fetched_run_whose_results_were_removed_here_is_not_listed_as_fetched(fetched):
    """`orch eval` refuses a run whose jobs/ the user deleted; `orch runs` says what is really
    there, and how to get it back."""
    h = fetched
    shutil.rmtree(h.local("class-1"))
    item = _listed(h)[h.run]
    assert item["state"] == "fetched, results missing here" and item["results_missing"] == ["class-1"], item
    table = _said(h.orch("runs", check=True))
    assert f"the results of class-1 are not in {h.local() / 'jobs'}: `orch fetch-results {h.run}` fetches" in table

    shutil.rmtree(h.local() / "jobs")
    assert h.orch("eval", h.run).returncode != 0  # as before: nothing to evaluate
    item = _listed(h)[h.run]
    assert item["state"] == "fetched, results missing here" and item["results_missing"] == list(JOBS), item
    table = _said(h.orch("runs", check=True))
    assert "fetched, results missing here" in table
    assert f"{h.local() / 'jobs'} is gone: `orch fetch-results {h.run}` fetches them again" in table

    h.orch("fetch-results", h.run, check=True)  # the fix the listing gives
    assert _listed(h)[h.run]["state"] == "fetched"


# --------------------------------------------------------------------------- a copied run folder


def test_a_copied_run_folder_is_named_as_itself_or_refused(fetched):
    """`cp -r runs/A runs/B`: B's record is A's.  What reaches the host refuses B (saying
    what it is and what to do) and changes nothing there; `orch eval B` evaluates the copy
    and names it B; `orch runs` says it is a copy."""
    h = fetched
    copy = h.run + "-copy"
    shutil.copytree(h.local(), h.p.run_dir(copy), symlinks=True)
    host_runs = sorted(os.listdir(h.p.remote_root / "runs"))
    original_jobs = {f: f.read_bytes() for f in sorted((h.p.remote_root / "runs" / h.run).rglob("*")) if f.is_file()}

    for args in (
        ("status", copy),
        ("status", copy, "--json"),
        ("logs", copy),
        ("cancel", copy),
        ("fetch-results", copy),
        ("run", "smoke", "--resume", copy),
    ):
        proc = h.orch(*args)
        assert proc.returncode == 8, (args, proc.stdout, proc.stderr)
        no_traceback(proc)
        said = _said(proc)
        assert f"{h.p.run_dir(copy)} is a copy of run {h.run}'s folder" in said, (args, said)
        assert "not a run of its own" in said and f"`orch status {h.run}`" in said and f"`orch eval {copy}`" in said
    assert sorted(os.listdir(h.p.remote_root / "runs")) == host_runs  # nothing launched under the copy's name
    assert {
        f: f.read_bytes() for f in sorted((h.p.remote_root / "runs" / h.run).rglob("*")) if f.is_file()
    } == original_jobs  # ... nor anything done to the run it copies

    metrics_before = (h.local() / "metrics.json").read_bytes()
    evaluated = h.orch("eval", copy, check=True)
    assert f"run {copy} " in evaluated.stdout and f"run {h.run} " not in evaluated.stdout
    assert f"a copy of run {h.run}'s (its local.json names that run): evaluated as {copy}" in _said(evaluated)
    metrics = json.loads((h.p.run_dir(copy) / "metrics.json").read_text())
    assert metrics["run_id"] == copy and metrics["copy_of"] == h.run
    assert (h.p.run_dir(copy) / "report.md").read_text().startswith(f"# Run `{copy}`")
    assert (h.local() / "metrics.json").read_bytes() == metrics_before  # the original's evaluation untouched
    assert h.orch("compare", h.run, copy, check=True).returncode == 0

    item = _listed(h)[copy]
    assert item["copy_of"] == h.run and item["state"] == f"fetched (a copy of run {h.run})", item
    assert _listed(h)[h.run]["copy_of"] is None
    assert f"{copy}: a copy of run {h.run}'s folder" in _said(h.orch("runs", check=True))

    # The fix the message gives when the original is gone: the copy becomes that run again.
    shutil.rmtree(h.local())
    refused = _said(h.orch("status", copy))
    assert f"is gone: `mv {h.p.run_dir(copy)} {h.local()}` makes this folder run {h.run} again" in refused
    os.rename(h.p.run_dir(copy), h.local())
    assert h.run in h.orch("status", h.run, check=True).stdout
