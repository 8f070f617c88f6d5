"""Score files that cannot be trusted are refused, with the job, line and text named:
missing, duplicate or malformed rows, incomplete or corrupt jobs, inconsistent draws, and
the merge of the jobs' rows (results/scoretable.py ScoreMerge)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import List

import numpy as np
import pytest

from orchestrator.errors import ExitCode, OrchError
from orchestrator.results.scores import load_run
from orchestrator.results.scoretable import ScoreMerge, Scores
from tests.unit.evalruns import (
    draw_texts,
    make_run,
    refusal,
    run_eval,
)

# --------------------------------------------------------------------------- refusals


def test_refuses_a_text_missing_from_one_class_model(tmp_path):
    run_dir = make_run(
        tmp_path, rows_hook=lambda job, rows: [r for r in rows if not (job == "c1" and r["id"] == "0/3")]
    )
    err = refusal(run_dir)
    assert err.code == ExitCode.DATA
    assert "'c1'" in err.message and "0/3" in err.message and "1 of 10" in err.message


def test_refuses_duplicates(tmp_path):
    run_dir = make_run(tmp_path, rows_hook=lambda job, rows: rows + [rows[2]] if job == "c0" else rows)
    err = refusal(run_dir)
    assert "'c0'" in err.message and "more than once" in err.message and "0/2" in err.message


def test_refuses_label_disagreement(tmp_path):
    def flip(job, rows):
        if job == "c1":
            rows = [dict(r, label="1") if r["id"] == "0/4" else r for r in rows]
        return rows

    err = refusal(make_run(tmp_path, rows_hook=flip))
    assert "'c1'" in err.message and "0/4" in err.message and "different label" in err.message


def test_refuses_a_row_for_another_class(tmp_path):
    err = refusal(
        make_run(
            tmp_path, rows_hook=lambda job, rows: [dict(r, **{"class": "1"}) for r in rows] if job == "c0" else rows
        )
    )
    assert "this job's class is '0'" in err.message


@pytest.mark.parametrize(
    "field,value,words",
    [
        ("nll", float("nan"), "nll must be a finite number"),
        # The contract's bound on every number (1e15): 1.7e308 is finite, but its sums are not.
        ("nll", 1.7e308, "nll must be a finite number at most 1e+15 in size, got 1.7e+308"),
        ("nll", -1e16, "nll must be a finite number at most 1e+15 in size"),
        ("se", float("inf"), "se must be a finite number from 0 to 1e+15, or null, got inf"),
        ("se", float("nan"), "se must be a finite number from 0 to 1e+15, or null"),
        ("se", -0.5, "se must be a finite number from 0 to 1e+15, or null, got -0.5"),
        ("se", 1e16, "se must be a finite number from 0 to 1e+15, or null"),
        ("tokens", 0, "tokens must be a positive integer"),
        ("label", "7", "label '7'"),
        ("id", None, "needs string fields"),
    ],
)
def test_refuses_malformed_rows(tmp_path, field, value, words):
    hook = lambda job, rows: [dict(rows[0], **{field: value}), *rows[1:]] if job == "c0" else rows  # noqa: E731
    err = refusal(make_run(tmp_path, rows_hook=hook))
    assert words in err.message and "'c0'" in err.message and "line 1" in err.message
    assert err.code == ExitCode.DATA


def test_refuses_incomplete_and_corrupt_jobs(tmp_path):
    run_dir = make_run(tmp_path / "a")
    (run_dir / "jobs" / "c1" / "manifest.json").unlink()
    err = refusal(run_dir)
    assert err.code == ExitCode.RUN_STATE and "'c1'" in err.message and "fetch-results" in err.hint

    run_dir = make_run(tmp_path / "b")
    path = run_dir / "jobs" / "c0" / "scores.jsonl"
    path.write_bytes(path.read_bytes().replace(b"105.0", b"106.0"))
    err = refusal(run_dir)
    assert "sha256" in err.message and "'c0'" in err.message

    run_dir = make_run(tmp_path / "c")
    _rewrite(run_dir, "c0", b"{not json\n")
    err = refusal(run_dir)
    assert "scores.jsonl:1" in err.message and "not valid JSON" in err.message

    # Valid JSON that int() refuses (over 4300 digits) is a bad row too, not a traceback.
    run_dir = make_run(tmp_path / "c2")
    _rewrite(run_dir, "c0", b'{"id": "a", "nll": ' + b"9" * 5000 + b"}\n")
    err = refusal(run_dir)
    assert "scores.jsonl:1: not a score row" in err.message and err.code == ExitCode.DATA

    # A manifest that leaves scores.jsonl out, or has no file list at all, vouches for nothing.
    run_dir = make_run(tmp_path / "d")
    _edit_manifest(run_dir, "c0", lambda m: m.update(files={}))
    err = refusal(run_dir)
    assert "'c0'" in err.message and "does not list scores.jsonl" in err.message
    run_dir = make_run(tmp_path / "e")
    _edit_manifest(run_dir, "c0", lambda m: m.pop("files"))
    assert "bad manifest.json: no 'files'" in refusal(run_dir).message


def _edit_manifest(run_dir: Path, job: str, change) -> None:
    path = run_dir / "jobs" / job / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def _rewrite(run_dir: Path, job: str, data: bytes, **manifest) -> None:
    """What a host can do: new scores and a manifest that vouches for them."""
    (run_dir / "jobs" / job / "scores.jsonl").write_bytes(data)
    _edit_manifest(
        run_dir,
        job,
        lambda m: m.update(
            files={"scores.jsonl": {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}}, **manifest
        ),
    )


def _lines(run_dir: Path, job: str) -> List[bytes]:
    return (run_dir / "jobs" / job / "scores.jsonl").read_bytes().splitlines(keepends=True)


def test_merge_refuses_class_jobs_that_tokenized_differently(tmp_path):
    # A tampered (or nondeterministic) tokenizer fingerprint: refused, naming both jobs.
    run_dir = make_run(tmp_path / "a")
    _edit_manifest(run_dir, "c1", lambda m: m.update(tokenizer_sha256="cd" * 32))
    err = refusal(run_dir)
    assert err.code == ExitCode.DATA and "same tokenizer" in err.message
    assert "'c0'" in err.message and "'c1'" in err.message and "cdcdcdcd" in err.message
    assert not (run_dir / "metrics.json").exists()
    # One job that records none while the other does is a disagreement too.
    run_dir = make_run(tmp_path / "b")
    _edit_manifest(run_dir, "c0", lambda m: m.pop("tokenizer_sha256"))
    assert "none recorded in job(s) 'c0'" in refusal(run_dir).message
    # Same fingerprint, other token counts for a text: refused with the ids and both counts.
    run_dir = make_run(
        tmp_path / "c",
        rows_hook=lambda job, rows: [
            {**r, "tokens": 21} if job == "c1" and r["id"] in ("0/1", "1/2") else r for r in rows
        ],
    )
    err = refusal(run_dir)
    assert "'c1'" in err.message and "2 text(s)" in err.message and "'c0'" in err.message
    assert "0/1 (21 tokens here, 20 in job 'c0')" in err.message
    # A fingerprint that is not text is a bad manifest (hostdocs checks its type).
    run_dir = make_run(tmp_path / "f")
    _edit_manifest(run_dir, "c0", lambda m: m.update(tokenizer_sha256=5))
    assert "bad manifest.json" in refusal(run_dir).message
    # The shared fingerprint is in metrics.json; a run that records none is not checked.
    assert run_eval(make_run(tmp_path / "d"))["tokenizer_sha256"] == "ab" * 32
    assert run_eval(make_run(tmp_path / "e", tokenizer=None))["tokenizer_sha256"] is None


def test_merge_refuses_inconsistent_draws(tmp_path):
    texts = draw_texts({"0": [[-2, -4], [1, -3]], "1": [[4, 4], [1, 0]]})

    def hook(change):
        return lambda job, rows: [change(r) if job == "c1" and r["id"] == "1/0" else r for r in rows]

    cases = [
        (lambda r: {**r, "draws": [r["nll"], r["nll"] + 1]}, "is not the mean of its draws"),
        (lambda r: {**r, "draws": [r["nll"]] * 3}, "has 3 draws, the job's first row 2"),
        (lambda r: {k: v for k, v in r.items() if k != "draws"}, "has no draws, while other rows"),
        (lambda r: {**r, "draws": ["100", "100"]}, "draws must be a non-empty list of finite numbers"),
        (lambda r: {**r, "draws": []}, "draws must be a non-empty list"),
    ]
    for i, (change, words) in enumerate(cases):
        err = refusal(make_run(tmp_path / str(i), texts=texts, kind="mdlm", rows_hook=hook(change)))
        assert err.code == ExitCode.DATA and words in err.message and "'c1'" in err.message, (words, err.message)

    # One job with draws and one without cannot be paired.
    def drop(job, rows):
        return [{k: v for k, v in r.items() if k != "draws"} for r in rows] if job == "c0" else rows

    err = refusal(make_run(tmp_path / "mix", texts=texts, kind="mdlm", rows_hook=drop))
    assert "different numbers of draws" in err.message and "'c0': none" in err.message


def test_completeness_is_the_runs_own_expectation_not_the_manifests(tmp_path):
    """docs/CONTRACT.md "Completeness": a cut-short score file with a manifest to match fails."""
    # One job cut short, its manifest rewritten to match: the other job names the missing text.
    run_dir = make_run(tmp_path / "a")
    _rewrite(run_dir, "c0", b"".join(_lines(run_dir, "c0")[:-1]))
    assert "no class-'0' score for 1 of 10" in refusal(run_dir).message
    # ... and its n_test too: the manifests disagree.
    run_dir = make_run(tmp_path / "b")
    _rewrite(run_dir, "c0", b"".join(_lines(run_dir, "c0")[:-1]), n_test=9)
    err = refusal(run_dir)
    assert "disagree on n_test" in err.message and "9 in 'c0'" in err.message
    # Every job cut the same way but n_test left alone: fewer texts than the run expects.
    run_dir = make_run(tmp_path / "c")
    for job in ("c0", "c1"):
        _rewrite(run_dir, job, b"".join(_lines(run_dir, job)[:-1]))
    assert "hold 9 test texts, but the manifests' n_test is 10" in refusal(run_dir).message
    # No n_test at all.
    run_dir = make_run(tmp_path / "d")
    _edit_manifest(run_dir, "c1", lambda m: m.pop("n_test"))
    assert "'c1': manifest.json gives no n_test" in refusal(run_dir).message
    # Classes other than run.yaml's.
    run_dir = make_run(tmp_path / "e")
    for job in ("c0", "c1"):
        _edit_manifest(run_dir, job, lambda m: m.update(classes=["0", "1", "2"]))
    assert "but run.yaml says ['0', '1']" in refusal(run_dir).message


def test_a_classifier_job_must_score_every_text_for_every_class(tmp_path):
    run_dir = make_run(tmp_path / "a", kind="classifier")
    assert run_eval(run_dir)["n"] == 10
    run_dir = make_run(tmp_path / "b", kind="classifier")
    _rewrite(run_dir, "classifier", b"".join(_lines(run_dir, "classifier")[:-1]))
    assert "no class-'1' score for 1 of 10" in refusal(run_dir).message


def test_partial_check_of_finished_jobs(tmp_path):
    """`fetch-results --partial`: each finished job on its own, and the same texts in each."""
    from orchestrator.results.scores import check_partial

    run_dir = make_run(tmp_path / "a")
    check_partial(load_run(run_dir), ["c0", "c1"])
    check_partial(load_run(run_dir), ["c0"])
    _rewrite(run_dir, "c0", b"".join(_lines(run_dir, "c0")[:-1]))
    with pytest.raises(OrchError, match="'c0': scores.jsonl has 9 rows, but n_test 10 needs 10"):
        check_partial(load_run(run_dir), ["c0"])
    run_dir = make_run(tmp_path / "b")
    row = json.loads(_lines(run_dir, "c1")[-1])
    row["id"] = "other"
    _rewrite(run_dir, "c1", b"".join(_lines(run_dir, "c1")[:-1]) + (json.dumps(row) + "\n").encode())
    with pytest.raises(OrchError, match="1 only in 'c1': 'other'"):
        check_partial(load_run(run_dir), ["c0", "c1"])
    run_dir = make_run(tmp_path / "c", kind="classifier")
    _rewrite(run_dir, "classifier", b"".join(_lines(run_dir, "classifier")[:-1]))
    with pytest.raises(OrchError, match="has 19 rows, but n_test 10 needs 20"):
        check_partial(load_run(run_dir), ["classifier"])


def test_scores_are_streamed_line_by_line(tmp_path):
    """A score file is read a line at a time (and hashed as it is read): a 32 MB line costs
    no 32 MB of memory, and is refused as not a score row."""
    import tracemalloc

    run_dir = make_run(tmp_path)
    _rewrite(run_dir, "c0", b'{"id": "' + b"x" * (32 << 20) + b'"}\n')
    tracemalloc.start()
    try:
        err = refusal(run_dir)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert "longer than 1024 KB, not a score row" in err.message and "scores.jsonl:1" in err.message
    assert peak < 8 << 20, peak


def merge_rows(job_rows, classes, max_draws=None) -> Scores:
    """Score rows merged as results/scores.py merges a run's files: (job, its class or None, rows)."""
    merge = ScoreMerge([(job, job_class) for job, job_class, _ in job_rows], classes, max_draws)
    for job, _, rows in job_rows:
        part = merge.job(job)
        merge.done(part, part.add(rows))
    return merge.result()


def test_merge_names_examples_and_counts():
    rows0 = [{"id": f"t{i}", "label": "0", "class": "0", "nll": 1.0, "tokens": 1} for i in range(9)]
    rows1 = [dict(r, **{"class": "1"}) for r in rows0[:2]]
    with pytest.raises(OrchError) as info:
        merge_rows([("neg", "0", rows0), ("pos", "1", rows1)], ["0", "1"])
    msg = info.value.message
    assert "'pos' has no class-'1' score for 7 of 9" in msg and "t2 (scored in job 'neg')" in msg
    assert "(and 2 more)" in msg
    with pytest.raises(OrchError, match="scored by two jobs"):
        merge_rows([("a", "0", rows0), ("b", "0", rows0)], ["0", "1"])
    with pytest.raises(OrchError, match="no job scores class"):
        merge_rows([("a", "0", rows0)], ["0", "1"])


def test_a_row_with_more_draws_than_the_run_allows_is_refused_before_any_padding():
    """Adaptive draws are NaN-padded to the longest row: one row a host made 400,000 draws
    long would have asked for rows x 400,000 floats."""
    rows = []
    for i in range(3):
        for c in ("0", "1"):
            draws = [1.0] * (400_000 if (i, c) == (2, "1") else 2)
            rows.append({"id": f"t{i}", "label": "0", "class": c, "nll": 1.0, "tokens": 1, "draws": draws})
    with pytest.raises(OrchError, match="has 400000 draws, more than the run's 64 a text can get") as info:
        merge_rows([("score", None, rows)], ["0", "1"], max_draws=64)
    assert "text 't2'" in info.value.message
    assert merge_rows([("score", None, rows[:4])], ["0", "1"], max_draws=64).n == 2


def test_merge_takes_integer_ids_and_labels_as_text():
    rows0 = [{"id": i, "label": i % 2, "class": 0, "nll": 1.0 + i, "tokens": 3} for i in range(4)]
    rows1 = [dict(r, **{"class": "1", "nll": 2.0, "se": 0.5}) for r in reversed(rows0)]
    s = merge_rows([("neg", "0", rows0), ("pos", "1", rows1)], ["0", "1"])
    assert s.ids == ["0", "1", "2", "3"] and s.labels == ["0", "1", "0", "1"]
    assert s.nll.tolist() == [[1.0, 2.0], [2.0, 2.0], [3.0, 2.0], [4.0, 2.0]]
    assert np.isnan(s.se[:, 0]).all() and (s.se[:, 1] == 0.5).all()


def test_merge_names_the_first_job_with_a_problem():
    """Jobs are judged in order, as a reader would: a duplicate in the first job is named
    before a malformed row in the second; inside one job a malformed row comes first."""
    good = [{"id": f"t{i}", "label": "0", "class": "0", "nll": 1.0, "tokens": 1} for i in range(3)]
    bad = [dict(r, **{"class": "1"}) for r in good]
    bad[2] = dict(bad[2], tokens=True)
    with pytest.raises(OrchError, match="job 'neg': 1 text\\(s\\) scored more than once"):
        merge_rows([("neg", "0", good + good[:1]), ("pos", "1", bad)], ["0", "1"])
    with pytest.raises(OrchError, match="job 'pos', scores.jsonl line \\?: text 't2': tokens must be"):
        merge_rows([("neg", "0", good), ("pos", "1", bad + bad[:1])], ["0", "1"])
    odd = [dict(r, label="1") if r["id"] == "t1" else r for r in bad[:2]] + [dict(good[2], **{"class": "1"})]
    with pytest.raises(OrchError) as info:
        merge_rows([("neg", "0", good), ("pos", "1", odd)], ["0", "1"])
    assert info.value.message == (
        "job 'pos': 1 text(s) carry a different label than in another job: \"t1 ('1' here, '0' in job 'neg')\""
    )


@pytest.mark.parametrize(
    "field,value,words",
    [
        ("tokens", 10**30, "tokens must be a positive integer"),
        ("nll", 10**400, "nll must be a finite number"),
        ("se", 10**400, "se must be a finite number from 0 to 1e\\+15, or null"),
        ("nll", "1.5", "nll must be a finite number"),
    ],
)
def test_numbers_beyond_any_float_are_refused_not_a_traceback(field, value, words):
    rows = [{"id": f"t{i}", "label": "0", "class": "0", "nll": 1.0, "tokens": 1} for i in range(3)]
    rows[1] = dict(rows[1], **{field: value}, _where=2)
    with pytest.raises(OrchError, match=f"job 'neg', scores.jsonl line 2: text 't1': {words}"):
        merge_rows([("neg", "0", rows), ("pos", "1", [dict(r, **{"class": "1"}) for r in rows])], ["0", "1"])
