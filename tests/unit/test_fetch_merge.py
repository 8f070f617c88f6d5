"""orchestrator/runs/merge.py: what a fetch keeps of the local copy (plan_merge, apply_merge,
set_aside, move_evaluation), without a host.  The same through the real CLI:
tests/integration/test_refetch.py."""

import hashlib
import json
import os

import pytest

from orchestrator.runs import fetch
from orchestrator.runs import merge as merging

JOBS = ["class-0", "class-1"]


def _job(jobs_dir, name, scores=b'{"id": "a"}\n', manifest=True, log=b"log\n"):
    d = jobs_dir / name
    d.mkdir(parents=True)
    (d / "status.json").write_text('{"state": "done"}')
    (d / "log.txt").write_bytes(log)
    if scores is not None:
        (d / "scores.jsonl").write_bytes(scores)
    if manifest:
        files = {"scores.jsonl": {"size": len(scores), "sha256": hashlib.sha256(scores).hexdigest()}}
        (d / "manifest.json").write_text(json.dumps({"files": files, "n_test": 1, "classes": ["0", "1"]}))
    return d


@pytest.fixture
def run(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "jobs").mkdir(parents=True)
    stage = run_dir / ".fetch-1" / "jobs"
    stage.mkdir(parents=True)
    return run_dir, run_dir / "jobs", stage


def test_a_job_the_host_lost_keeps_its_local_results(run):
    _, local, stage = run
    _job(local, "class-0")
    _job(local, "class-1")
    _job(stage, "class-0")  # the host lost class-1's folder
    merge = merging.plan_merge(local, stage, JOBS, done=["class-0"])
    assert merge.kept == {"class-1": True} and merge.kept_results() == ["class-1"]
    assert not merge.changed and not merge.carried
    merging.apply_merge(merge, local, stage)
    assert (stage / "class-1" / "scores.jsonl").read_bytes() == (local / "class-1" / "scores.jsonl").read_bytes()
    # hard links: no space taken, and the local copy is not touched
    assert os.stat(stage / "class-1" / "scores.jsonl").st_ino == os.stat(local / "class-1" / "scores.jsonl").st_ino


def test_a_job_unfinished_on_the_host_keeps_its_local_results_not_the_hosts_logs(run):
    _, local, stage = run
    _job(local, "class-0")
    _job(local, "class-1")
    _job(stage, "class-0")
    _job(stage, "class-1", scores=None, manifest=False, log=b"training again\n")  # resumed, running
    merge = merging.plan_merge(local, stage, JOBS, done=["class-0"])
    assert merge.kept == {"class-1": True}
    merging.apply_merge(merge, local, stage)
    assert (stage / "class-1" / "log.txt").read_bytes() == b"log\n"
    assert (stage / "class-1" / "manifest.json").is_file()


def test_equal_manifests_take_the_hosts_copy_which_mends_a_damaged_local_file(run):
    _, local, stage = run
    _job(local, "class-0")
    (local / "class-0" / "scores.jsonl").write_bytes(b"damaged\n")  # the manifest still vouches for the original
    _job(stage, "class-0")
    merge = merging.plan_merge(local, stage, JOBS, done=["class-0"])
    assert not merge.kept and not merge.changed and not merge.carried


def test_a_changed_manifest_names_what_changed(run):
    run_dir, local, stage = run
    _job(local, "class-0", scores=b"old\n")
    _job(stage, "class-0", scores=b"new\n")
    merge = merging.plan_merge(local, stage, JOBS, done=["class-0"])
    old, new = hashlib.sha256(b"old\n").hexdigest(), hashlib.sha256(b"new\n").hexdigest()
    assert merge.changed == {"class-0": f"scores.jsonl sha256 {old[:12]} -> {new[:12]}"}
    assert not merge.kept


@pytest.mark.parametrize(
    "mine, theirs, words",
    [
        ({"a": "1" * 64}, {"a": "1" * 64, "b": "2" * 64}, "b new"),
        ({"a": "1" * 64, "b": "2" * 64}, {"a": "1" * 64}, "b no longer listed"),
        ({"a": "1" * 64}, {"a": "1" * 64}, "manifest.json differs, the files it lists are the same"),
    ],
)
def test_describe_change(mine, theirs, words):
    def doc(files, n):
        return json.dumps({"files": {k: {"sha256": v, "size": 1} for k, v in files.items()}, "n_test": n}).encode()

    assert merging.describe_change(doc(mine, 1), doc(theirs, 2)) == words
    assert merging.describe_change(b"{not json", doc(theirs, 2)) == "the local manifest.json is damaged"


def test_a_new_finished_job_replaces_local_logs_and_a_folder_the_host_lacks_stays(run):
    _, local, stage = run
    _job(local, "class-0", scores=None, manifest=False)  # fetched while it ran
    _job(local, "class-1", scores=None, manifest=False)
    _job(stage, "class-0")  # finished now; the host has nothing of class-1
    merge = merging.plan_merge(local, stage, JOBS, done=["class-0"])
    assert merge.kept == {"class-1": False} and merge.kept_results() == [] and not merge.changed


def test_the_users_own_files_are_carried_over(run):
    _, local, stage = run
    _job(local, "class-0")
    (local / "class-0" / "mynotes.txt").write_text("mine\n")
    (local / "class-0" / "plots").mkdir()
    (local / "class-0" / "plots" / "a.png").write_bytes(b"png")
    (local / "README").write_text("about these jobs\n")
    (local / "link").symlink_to("/etc/passwd")
    _job(stage, "class-0", scores=b"new\n")
    merge = merging.plan_merge(local, stage, JOBS, done=["class-0"])
    assert merge.carried == ["README", "class-0/mynotes.txt", "class-0/plots", "link"]
    assert list(merge.changed) == ["class-0"]
    merging.apply_merge(merge, local, stage)
    assert (stage / "README").read_text() == "about these jobs\n"
    assert (stage / "class-0" / "mynotes.txt").read_text() == "mine\n"
    assert (stage / "class-0" / "plots" / "a.png").read_bytes() == b"png"
    assert (stage / "link").is_symlink() and os.readlink(stage / "link") == "/etc/passwd"  # a link, not its target
    assert (stage / "class-0" / "scores.jsonl").read_bytes() == b"new\n"  # the host's results win


def test_something_else_where_a_job_folder_goes_is_set_aside_or_kept(run):
    _, local, stage = run
    (local / "class-0").write_text("a file, not a folder\n")
    (local / "class-1").write_text("me too\n")
    _job(stage, "class-0")
    merge = merging.plan_merge(local, stage, JOBS, done=["class-0"])
    assert list(merge.changed) == ["class-0"] and merge.carried == ["class-1"]


def test_no_local_copy_is_no_merge(run):
    run_dir, _, stage = run
    _job(stage, "class-0")
    merge = merging.plan_merge(run_dir / "nothing", stage, JOBS, done=["class-0"])
    assert merge == merging.Merge()


def test_set_aside_links_the_changed_jobs_and_the_evaluation_moves_after(run):
    run_dir, local, stage = run
    _job(local, "class-0", scores=b"old\n")
    _job(local, "class-1")
    (run_dir / "metrics.json").write_text("{}")
    (run_dir / "report.md").write_text("# old\n")
    (run_dir / "plots").mkdir()
    (run_dir / "yardsticks.json").write_text("{}")  # a cache of the data, not of the results
    _job(stage, "class-0", scores=b"new\n")
    _job(stage, "class-1")
    merge = merging.plan_merge(local, stage, JOBS, done=JOBS)
    where = merging.set_aside(merge, run_dir)
    assert where.parent == run_dir / "previous"
    assert sorted(os.listdir(where / "jobs")) == ["class-0"]
    assert (where / "jobs" / "class-0" / "scores.jsonl").read_bytes() == b"old\n"
    assert (local / "class-0" / "scores.jsonl").read_bytes() == b"old\n"  # untouched until the swap
    assert merging.move_evaluation(run_dir, where) == ["metrics.json", "report.md", "plots"]
    assert (where / "metrics.json").is_file() and not (run_dir / "metrics.json").exists()
    assert (run_dir / "yardsticks.json").is_file()
    # a second fetch in the same second gets a folder of its own
    again = merging.set_aside(merge, run_dir)
    assert again != where and again.name.startswith(where.name)
    merging.drop_aside(again)
    assert not again.exists() and where.is_dir()


def test_set_aside_of_nothing_makes_no_folder(run):
    run_dir, local, stage = run
    assert merging.set_aside(merging.Merge(), run_dir) is None
    assert not (run_dir / "previous").exists()


def test_drop_aside_removes_an_empty_previous_folder(run):
    run_dir, local, _ = run
    _job(local, "class-0")
    where = merging.set_aside(merging.Merge(changed={"class-0": "x"}), run_dir)
    merging.drop_aside(where)
    assert not (run_dir / "previous").exists()
    assert (local / "class-0" / "scores.jsonl").is_file()


def test_fetch_notes_name_what_was_kept_and_where(tmp_path):
    from orchestrator.runs.fetch import fetch_notes

    run_dir = tmp_path / "r1"
    where = run_dir / "previous" / "20260101-000000Z"
    lines = fetch_notes(
        {
            "kept": {"class-1": "lost"},
            "changed": {"class-0": "scores.jsonl sha256 aaa -> bbb\x1b[2J"},
            "previous": where,
            "moved": ["metrics.json", "report.md"],
            "complete": True,
        },
        run_dir,
    )
    held = run_dir / "jobs" / "class-1"
    assert lines[0] == f"  class-1 is lost on the host: kept its results fetched before ({held})"
    assert "class-0's results changed on the host (scores.jsonl sha256 aaa -> bbb\\x1b[2J)" in lines[1]
    assert str(where / "jobs" / "class-0") in lines[1]
    assert lines[2] == f"  the evaluation of the previous results (metrics.json, report.md) moved to {where}"
    assert fetch_notes({"kept": {}, "changed": {}, "previous": None, "moved": []}, run_dir) == []


def test_a_fetch_that_replaced_nothing_puts_the_evaluation_back(run):
    run_dir, local, stage = run
    _job(local, "class-0", scores=b"old\n")
    (run_dir / "metrics.json").write_text('{"accuracy": 1}')
    (run_dir / "plots").mkdir()
    where = merging.set_aside(merging.Merge(changed={"class-0": "x"}), run_dir)
    moved = merging.move_evaluation(run_dir, where)
    merging.restore_evaluation(run_dir, where, moved)
    merging.drop_aside(where)
    assert (run_dir / "metrics.json").read_text() == '{"accuracy": 1}' and (run_dir / "plots").is_dir()
    assert not (run_dir / "previous").exists()


def test_a_whole_log_fetched_before_is_not_cut_back_to_its_tail(run):
    """--full-logs fetched class-0's 5 MB log whole; a plain fetch of the unchanged job cuts
    it to its tail: the whole one stays.  A log of another size (the job ran on) is the host's."""
    _, local, stage = run
    whole = b"x" * 5000
    _job(local, "class-0", log=whole)
    _job(local, "class-1", log=b"old\n")
    _job(stage, "class-0", log=b"[orch] log cut ...\n" + whole[-100:])
    _job(stage, "class-1", log=b"tail\n")
    cut = {"class-0/log.txt": len(whole), "class-1/log.txt": 9999}
    merge = merging.plan_merge(local, stage, JOBS, done=JOBS, cut=cut)
    assert merge.whole == ["class-0/log.txt"] and not merge.changed
    merging.apply_merge(merge, local, stage)
    assert (stage / "class-0" / "log.txt").read_bytes() == whole
    assert (stage / "class-1" / "log.txt").read_bytes() == b"tail\n"
    assert merging.plan_merge(local, stage, JOBS, done=JOBS).whole == []  # nothing cut: nothing to keep


def test_the_fetch_lives_in_fetch_py_not_in_launch_py():
    """fetch() moved out of launch.py: a launch module that fetches again would load the
    fetch's modules into `orch run` (tests/unit/test_quickfetch.py pins what each loads)."""
    from orchestrator.runs import launch

    assert not hasattr(launch, "fetch") and not hasattr(launch, "fetch_notes")
    assert callable(fetch.fetch) and callable(fetch.fetch_notes)
