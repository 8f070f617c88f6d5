"""A fetch of a run fetched before never loses what the local copy holds, through the real CLI.

One finished run (`base`, the bundled `smoke` experiment, 10 steps, on the sshd test host)
is made per module and cloned under a fresh id for each test (tests/integration/
test_hostile_host.py does the same); a test then plays the host by editing its files:
a job folder the host lost, results the host rewrote.  The pure logic is
tests/unit/test_fetch_merge.py.
"""

from __future__ import annotations

import json
import shutil

import pytest

from tests.integration.test_hostile_host import (
    Host,
    _drop_last,
    base_run_fixture,
    clone_fixture,
    clone_run,
    no_traceback,
    rewrite_scores,
)

pytestmark = pytest.mark.integration

JOBS = ("class-0", "class-1")


base = base_run_fixture("refetch")
fetched = clone_fixture("fetched", "r", fetch=True)


def _on_local_host(p, pristine, run_id: str) -> Host:
    """A clone of `base` on host `local` (its workdir .orch/local in the project), fetched once."""
    local_root = p.root / ".orch" / "local"
    record = json.loads((pristine / "local.json").read_text())
    if not (local_root / "code" / record["code_hash"]).exists():
        shutil.copytree(p.remote_root / "code" / record["code_hash"], local_root / "code" / record["code_hash"])
    clone_run(p, pristine, "base", run_id, host_root=local_root, host="local")
    h = Host(p, run_id)
    h.job = lambda name: local_root / "runs" / run_id / "jobs" / name
    assert "results verified" in h.orch("fetch-results", run_id, check=True).stderr
    return h


def _tree(folder):
    return {str(f.relative_to(folder)): f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file()}


def _worse(lines):
    """class-0's model says every text is very unlikely: the accuracy changes."""
    out = []
    for line in lines:
        row = json.loads(line)
        row["nll"] = row["nll"] * 10 + 1000
        out.append((json.dumps(row) + "\n").encode())
    return out


def test_a_partial_fetch_keeps_the_results_of_a_job_the_host_lost(base):
    """The reviewer's case on host `local`: the host loses class-1's folder; a plain fetch
    refuses and says --partial keeps class-1's results; --partial keeps them (and the
    evaluation, which still describes what jobs/ holds)."""
    p, pristine = base
    h = _on_local_host(p, pristine, "lostone")
    jobs_before = _tree(h.local() / "jobs")
    metrics = (h.local() / "metrics.json").read_bytes()
    shutil.rmtree(h.job("class-1"))

    refused = h.orch("fetch-results", h.run)
    assert refused.returncode == 8, refused.stderr
    no_traceback(refused)
    said = " ".join(refused.stderr.split())
    assert "class-1 is lost" in said and "keeps the results of class-1 fetched before" in said

    partial = h.orch("fetch-results", h.run, "--partial")
    assert partial.returncode == 0, partial.stderr
    no_traceback(partial)
    said = " ".join(partial.stderr.split())
    assert "results verified" in said and "class-1 is lost on the host: kept its results fetched before" in said
    after = _tree(h.local() / "jobs")
    assert after == jobs_before
    assert json.loads((h.local() / "metrics.json").read_bytes())["accuracy"] == json.loads(metrics)["accuracy"]
    assert not (h.local() / "previous").exists()  # nothing was replaced
    runs = {r["run"]: r for r in json.loads(h.orch("runs", "--json", check=True).stdout)}
    assert runs[h.run]["state"] == "fetched"  # the local copy is complete
    assert "accuracy" in h.orch("eval", h.run, check=True).stdout.lower()


def test_results_kept_that_do_not_match_the_hosts_new_ones_refuse_the_fetch(fetched):
    """class-1 is lost on the host and class-0 now has another test set size: the two do
    not make one run, so nothing is replaced, and the message says how to go on."""
    h = fetched
    before = _tree(h.local())
    shutil.rmtree(h.job("class-1"))
    rewrite_scores(h.job("class-0"), _drop_last, n_test=119)
    proc = h.orch("fetch-results", h.run, "--partial")
    assert proc.returncode == 8, proc.stderr
    no_traceback(proc)
    said = " ".join(proc.stderr.split())
    assert "the results of class-1 here" in said and "do not make one run" in said and "n_test" in said
    assert "untouched" in said and "move" in said and "fetch again" in said
    assert _tree(h.local()) == before
    assert not list(h.local().glob(".fetch-*"))


def test_changed_results_keep_the_previous_copy_and_evaluation_aside(fetched):
    """The host rewrote class-0's results (a rerun, or a host that rewrites files): the
    fetch says so, keeps the previous copy and its evaluation in previous/<time>/, and
    evaluates the new results."""
    h = fetched
    run_dir = h.local()
    old_job = _tree(h.local("class-0"))
    old_metrics = json.loads((run_dir / "metrics.json").read_text())
    old_report = (run_dir / "report.md").read_bytes()
    rewrite_scores(h.job("class-0"), _worse)

    proc = h.orch("fetch-results", h.run)
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    said = " ".join(proc.stderr.split())
    assert "class-0's results changed on the host (scores.jsonl sha256" in said
    (where,) = list((run_dir / "previous").iterdir())
    assert f"the previous copy is in {where / 'jobs' / 'class-0'}" in said
    assert "the evaluation of the previous results (metrics.json, predictions.csv, report.md) moved to" in said
    assert _tree(where / "jobs" / "class-0") == old_job
    assert sorted(p.name for p in (where / "jobs").iterdir()) == ["class-0"]  # class-1 did not change
    assert json.loads((where / "metrics.json").read_text()) == old_metrics
    assert (where / "report.md").read_bytes() == old_report
    new_metrics = json.loads((run_dir / "metrics.json").read_text())
    assert new_metrics["accuracy"] != old_metrics["accuracy"]  # evaluated from the new results
    assert (h.local("class-0") / "scores.jsonl").read_bytes() == (h.job("class-0") / "scores.jsonl").read_bytes()

    # The same results fetched again: nothing more is set aside.
    again = h.orch("fetch-results", h.run, check=True)
    assert "changed" not in again.stderr
    assert len(list((run_dir / "previous").iterdir())) == 1


def test_changed_results_without_evaluation_say_how_to_evaluate(fetched):
    h = fetched
    run_dir = h.local()
    rewrite_scores(h.job("class-1"), _worse)
    proc = h.orch("fetch-results", h.run, "--no-eval", check=True)
    said = " ".join(proc.stderr.split())
    assert "class-1's results changed" in said and f"`orch eval {h.run}` evaluates the new results" in said
    assert not (run_dir / "metrics.json").exists()  # no stale evaluation beside new results
    (where,) = list((run_dir / "previous").iterdir())
    assert (where / "metrics.json").is_file()


def test_the_users_own_files_under_jobs_are_kept(fetched):
    h = fetched
    (h.local() / "jobs" / "README").write_text("what these jobs were\n")
    (h.local("class-0") / "mynotes.txt").write_text("class-0 looks odd\n")
    h.orch("fetch-results", h.run, "--no-eval", check=True)
    assert (h.local() / "jobs" / "README").read_text() == "what these jobs were\n"
    assert (h.local("class-0") / "mynotes.txt").read_text() == "class-0 looks odd\n"
    # ... and when that job's results are replaced, too (kept in place, and in the copy set aside)
    rewrite_scores(h.job("class-0"), _worse)
    h.orch("fetch-results", h.run, "--no-eval", check=True)
    assert (h.local("class-0") / "mynotes.txt").read_text() == "class-0 looks odd\n"
    assert (h.local() / "jobs" / "README").read_text() == "what these jobs were\n"
    (where,) = list((h.local() / "previous").iterdir())
    assert (where / "jobs" / "class-0" / "mynotes.txt").read_text() == "class-0 looks odd\n"


def test_a_resumed_job_that_rewrote_its_results_keeps_the_old_ones(fetched):
    """The host loses class-1; `orch run --resume --wait` trains it again and fetches: the
    results fetched before are set aside, not overwritten."""
    h = fetched
    old = _tree(h.local("class-1"))
    shutil.rmtree(h.job("class-1"))
    proc = h.orch("run", "smoke", "--resume", h.run, "--wait", timeout=600)
    assert proc.returncode == 0, proc.stderr
    no_traceback(proc)
    said = " ".join(proc.stderr.split())
    assert "class-1's results changed on the host" in said, said
    (where,) = list((h.local() / "previous").iterdir())
    assert _tree(where / "jobs" / "class-1") == old
    assert (h.local() / "metrics.json").is_file()


def test_a_whole_log_fetched_before_stays_whole_on_a_plain_fetch(fetched):
    """--full-logs fetched class-0's 3 MB log whole; a plain fetch of the unchanged run cuts
    logs to their last 1 MB, but keeps the whole one here and does not call it cut."""
    h = fetched
    with open(h.job("class-0") / "log.txt", "ab") as f:
        f.write(b"a long training log line\n" * 120_000)  # about 3 MB
    size = (h.job("class-0") / "log.txt").stat().st_size
    h.orch("fetch-results", h.run, "--full-logs", check=True)
    assert (h.local("class-0") / "log.txt").stat().st_size == size
    plain = h.orch("fetch-results", h.run, check=True)
    no_traceback(plain)
    assert (h.local("class-0") / "log.txt").read_bytes() == (h.job("class-0") / "log.txt").read_bytes()
    assert "class-0/log.txt is" not in plain.stderr  # not reported as cut


def test_a_rerun_jobs_log_of_the_same_length_is_fetched_not_kept_from_the_earlier_attempt(fetched):
    """--full-logs fetched class-0's 3 MB log whole; the host then reruns class-0: new scores,
    a new status.json and a log of exactly the same length.  The next --full-logs fetch brings
    the new attempt's log beside its scores, not the earlier attempt's one kept here."""
    h = fetched
    with open(h.job("class-0") / "log.txt", "ab") as f:
        f.write(b"the first attempt trains\n" * 120_000)  # about 3 MB: cut by the first pass
    h.orch("fetch-results", h.run, "--no-eval", "--full-logs", check=True)
    first = (h.local("class-0") / "log.txt").read_bytes()
    assert first == (h.job("class-0") / "log.txt").read_bytes()
    rerun = first.replace(b"the first attempt trains", b"the rerun trains anew!!!")
    assert len(rerun) == len(first) and rerun != first
    (h.job("class-0") / "log.txt").write_bytes(rerun)
    status = json.loads((h.job("class-0") / "status.json").read_text())
    status["started"] = status["started"] + 60  # the rerun's own status.json
    (h.job("class-0") / "status.json").write_text(json.dumps(status))
    rewrite_scores(h.job("class-0"), _worse)
    proc = h.orch("fetch-results", h.run, "--no-eval", "--full-logs", check=True)
    no_traceback(proc)
    assert "class-0's results changed on the host" in " ".join(proc.stderr.split()), proc.stderr
    assert (h.local("class-0") / "scores.jsonl").read_bytes() == (h.job("class-0") / "scores.jsonl").read_bytes()
    assert (h.local("class-0") / "log.txt").read_bytes() == rerun
    (where,) = list((h.local() / "previous").iterdir())
    assert (where / "jobs" / "class-0" / "log.txt").read_bytes() == first  # the earlier attempt's, set aside
