"""A run folder that is not what it was, through the real CLI on the sshd test host: results
removed here by hand, a copy of another run's folder (`cp -r runs/A runs/B`), and the earlier
copies of results that fetches keep in runs/RUN/previous/ (counted, listed, dropped on request,
never while a fetch of the run is at work).

One finished run per module (`base`, the bundled smoke experiment), cloned and fetched per
test, as test_refetch.py does.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

import pytest
import timing

from tests.integration.test_hostile_host import (
    base_run_fixture,
    clone_fixture,
    no_traceback,
    rewrite_scores,
)

pytestmark = pytest.mark.integration

JOBS = ("class-0", "class-1")


base = base_run_fixture("runfolders")
fetched = clone_fixture("fetched", "f", fetch=True)


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


# --------------------------------------------------------------------------- earlier copies


def _worse(factor):
    def transform(lines):
        out = []
        for line in lines:
            row = json.loads(line)
            row["nll"] = row["nll"] * factor + 1000
            out.append((json.dumps(row) + "\n").encode())
        return out

    return transform


def test_earlier_copies_are_counted_listed_and_dropped_only_inside_previous(fetched, tmp_path):
    h = fetched
    previous = h.local() / "previous"
    rewrite_scores(h.job("class-0"), _worse(10))
    first = _said(h.orch("fetch-results", h.run, "--no-eval", check=True))  # worse: below eval.min_accuracy
    assert f"{previous} keeps 1 earlier copy of the run's results (" in first
    assert f"of its own): `orch runs --drop-previous {h.run}` removes it" in first
    rewrite_scores(h.job("class-1"), _worse(20))
    second = _said(h.orch("fetch-results", h.run, "--no-eval", check=True))
    assert f"{previous} keeps 2 earlier copies of the run's results (" in second and "removes them" in second

    item = _listed(h)[h.run]
    assert item["state"] == "fetched" and item["previous"]["copies"] == 2, item
    # what dropping them frees: their own files (the old scores, logs, evaluation), not less
    old = sum(f.stat().st_size for f in previous.rglob("scores.jsonl"))
    assert item["previous"]["bytes"] >= old > 0
    listing = _said(h.orch("runs", check=True))
    assert f"{h.run}: {previous} keeps 2 earlier copies" in listing
    assert f"--drop-previous {h.run}` removes them" in listing

    # Things in previous/ that are not its copies stay: a link (never followed) and a file.
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me\n")
    (previous / "a-link").symlink_to(outside, target_is_directory=True)
    (previous / "notes.txt").write_text("mine\n")
    jobs_before = {f: f.read_bytes() for f in sorted((h.local() / "jobs").rglob("*")) if f.is_file()}

    dropped = h.orch("runs", "--drop-previous", h.run, check=True)
    no_traceback(dropped)
    assert f"{h.run}: removed 2 earlier copies of its results from {previous} (" in _said(dropped)
    assert "still holds a-link, notes.txt" in _said(dropped)
    assert sorted(os.listdir(previous)) == ["a-link", "notes.txt"]
    assert (outside / "precious.txt").read_text() == "keep me\n"
    assert {f: f.read_bytes() for f in sorted((h.local() / "jobs").rglob("*")) if f.is_file()} == jobs_before
    assert _listed(h)[h.run]["previous"] == {"copies": 0, "bytes": 0}
    again = h.orch("runs", "--drop-previous", h.run, "--json", check=True)
    left = ["a-link", "notes.txt"]
    assert json.loads(again.stdout) == [{"run": h.run, "removed": [], "freed_bytes": 0, "left": left}]

    # previous/ itself a link: not orch's folder, nothing removed through it
    shutil.rmtree(previous)
    (outside / "20990101-000000Z").mkdir()
    previous.symlink_to(outside, target_is_directory=True)
    refused = h.orch("runs", "--drop-previous", h.run)
    assert refused.returncode == 8 and "is not a folder (a link or a file)" in _said(refused)
    assert sorted(os.listdir(outside)) == ["20990101-000000Z", "precious.txt"]


STALLING_PYTHON = """#!/bin/sh
# The host's python, held up while {stall} exists: a fetch waits in its first host command.
if [ -e {stall} ]; then
  : > {stalled}
  while [ -e {stall} ]; do sleep 0.1; done
fi
exec {python} "$@"
"""


def test_dropping_earlier_copies_is_refused_while_a_fetch_of_the_run_is_at_work(fetched, tmp_path):
    h = fetched
    rewrite_scores(h.job("class-0"), _worse(10))
    h.orch("fetch-results", h.run, check=True)
    assert len(os.listdir(h.local() / "previous")) == 1

    stall, stalled = tmp_path / "stall", tmp_path / "stalled"
    wrapper = tmp_path / "python"
    wrapper.write_text(STALLING_PYTHON.format(stall=stall, stalled=stalled, python=sys.executable))
    wrapper.chmod(0o755)
    h.p.write_host(python=str(wrapper))
    stall.touch()
    fetching = h.p.start("fetch-results", h.run)
    try:
        deadline = time.time() + timing.scaled(60)
        while not stalled.exists() and time.time() < deadline:
            time.sleep(0.1)
        assert stalled.exists(), "the fetch never reached the host"
        refused = h.orch("runs", "--drop-previous", h.run)
        assert refused.returncode == 8, refused.stderr
        no_traceback(refused)
        said = _said(refused)
        assert f"a fetch of {h.run} is at work" in said and f"`orch runs --drop-previous {h.run}` again" in said
        assert len(os.listdir(h.local() / "previous")) == 1  # nothing removed
    finally:
        stall.unlink()
    assert fetching.finish(timeout=120) == 0, fetching.stderr
    dropped = h.orch("runs", "--drop-previous", h.run, check=True)
    assert "removed 1 earlier copy" in _said(dropped) and not (h.local() / "previous").exists()
