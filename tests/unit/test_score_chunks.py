"""Score files read a chunk at a time (results/scoretable.JobColumns): the same table as a
whole read, the same refusals across chunk boundaries, memory that holds columns rather
than a dict per row, and a run too big for this machine's memory refused before reading."""

import os
import tracemalloc

import numpy as np
import pytest

from orchestrator.errors import ExitCode, OrchError
from orchestrator.results import room, scoretable
from orchestrator.results.scores import load_run, load_scores
from orchestrator.results.scoretable import JobColumns
from tests.unit.evalruns import draw_texts, make_run, refusal

COL = {"0": 0, "1": 1}


def texts(n: int, k: int = 4):
    rng = np.random.default_rng(0)
    return draw_texts(
        {"0": rng.normal(-1, 2, (n, k)).round(3).tolist(), "1": rng.normal(1, 2, (n, k)).round(3).tolist()}
    )


def same(a, b) -> None:
    assert a.ids == b.ids and a.classes == b.classes
    for name in ("y", "nll", "tokens", "se", "draws"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


def test_scores_read_in_chunks_are_the_scores_read_whole(tmp_path, monkeypatch):
    run = load_run(make_run(tmp_path, texts=texts(7), kind="mdlm"))
    whole = load_scores(run)
    monkeypatch.setattr(scoretable, "CHUNK_ROWS", 2)
    chunked = load_scores(run)
    same(chunked, whole)
    assert chunked.n == 14 and chunked.draws.shape == (14, 2, 4)
    monkeypatch.setattr(scoretable, "CHUNK_ROWS", 1 << 20)
    monkeypatch.setattr(scoretable, "CHUNK_BYTES", 200)  # a row or two a chunk, by bytes
    same(load_scores(run), whole)


def ragged_rows(lengths):
    rows = []
    for i, k in enumerate(lengths):
        for c in ("0", "1"):
            draws = [float(i + j) for j in range(k)]
            rows.append({"id": f"t{i}", "label": "0", "class": c, "nll": sum(draws) / k, "tokens": 3, "draws": draws})
    return rows


def test_adaptive_draws_in_chunks_pad_to_the_longest_row_of_the_job():
    rows = ragged_rows([2, 2, 6, 4])
    whole = JobColumns("score", None, COL, ["0", "1"])
    assert whole.add(rows) is None
    chunked = JobColumns("score", None, COL, ["0", "1"])
    for at in range(0, len(rows), 3):
        assert chunked.add(rows[at : at + 3]) is None
    (a, _), (b, _) = whole.finish(), chunked.finish()
    assert a.ids == b.ids and a.draws.shape == b.draws.shape == (8, 6)
    np.testing.assert_array_equal(a.draws, b.draws)
    np.testing.assert_array_equal(a.nll, b.nll)


@pytest.mark.parametrize(
    "change, words",
    [
        (lambda r: {**r, "draws": [r["nll"]] * 3}, "has 3 draws, the job's first row 2"),
        (lambda r: {k: v for k, v in r.items() if k != "draws"}, "has no draws, while other rows of the job have them"),
    ],
)
def test_a_job_must_stay_one_job_across_chunks(tmp_path, monkeypatch, change, words):
    """Rows 1-2 are one chunk, row 3 the next: what a whole read refuses, a chunked one does."""
    monkeypatch.setattr(scoretable, "CHUNK_ROWS", 2)

    def hook(job, rows):
        return [change(r) if job == "c1" and i >= 2 else r for i, r in enumerate(rows)]

    err = refusal(make_run(tmp_path, texts=texts(2, k=2), kind="mdlm", rows_hook=hook))
    assert err.code == ExitCode.DATA and "job 'c1', scores.jsonl line 3" in err.message and words in err.message


def test_draws_that_start_after_the_first_chunk_are_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(scoretable, "CHUNK_ROWS", 2)

    def hook(job, rows):
        return [
            {k: v for k, v in r.items() if k != "draws"} if job == "c1" and i < 2 else r for i, r in enumerate(rows)
        ]

    err = refusal(make_run(tmp_path, texts=texts(2, k=2), kind="mdlm", rows_hook=hook))
    assert "job 'c1', scores.jsonl line 3" in err.message and "has draws, while other rows of the job have none" in (
        err.message
    )


def test_one_draw_in_a_later_chunk_of_an_adaptive_job_is_refused():
    part = JobColumns("score", None, COL, ["0", "1"])
    rows = ragged_rows([4, 4, 1])
    for i, r in enumerate(rows):
        r["_where"] = i + 1
    assert part.add(rows[:4]) is None and part.add(rows[4:]) is None  # each chunk alone is fine
    columns, problem = part.finish()
    assert columns is None
    assert problem == (
        "job 'score', scores.jsonl line 5: text 't2': has 1 draw, while other texts have more "
        "(adaptive draws give every text at least 2)"
    )


def test_reading_scores_holds_columns_not_a_dict_per_row(tmp_path, monkeypatch):
    """Holding every row as a dict took 8-9x the file's bytes here (traced); as columns,
    a number takes 8 bytes (about what its text takes), the joined table as much again,
    and the ids what they take: ~2.4x."""
    monkeypatch.setattr(scoretable, "CHUNK_BYTES", 64 << 10)
    run_dir = make_run(tmp_path, texts=texts(3000, k=8), kind="mdlm")  # score.mdlm_draws: 8
    size = sum(p.stat().st_size for p in run_dir.glob("jobs/*/scores.jsonl"))
    run = load_run(run_dir)
    tracemalloc.start()
    try:
        scores = load_scores(run)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert scores.draws.shape == (6000, 2, 8)
    assert peak < 4 * size, (peak, size)


def test_a_run_too_big_for_this_machines_memory_is_refused_before_reading(tmp_path, monkeypatch):
    run = load_run(make_run(tmp_path))
    monkeypatch.setattr(room, "available_memory", lambda: 200 << 20)
    with pytest.raises(OrchError) as caught:
        load_scores(run)
    assert caught.value.code == ExitCode.RUN_STATE
    assert "the run's results are too big for this machine: evaluating " in caught.value.message
    assert "and this machine has 200.0 MB available" in caught.value.message and caught.value.hint
    monkeypatch.setattr(room, "available_memory", lambda: 300 << 20)  # the reserve and the files fit
    assert load_scores(run).n == 10


def test_available_memory_is_read_here():
    have = room.available_memory()
    assert have is not None and 0 < have <= os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def test_rows_that_take_more_memory_than_their_bytes_suggest_are_stopped_as_they_are_read(tmp_path, monkeypatch):
    """The files' size passes the check before reading (each byte takes at least half a
    byte), but the columns read so far, and as much again for the join, do not fit: the
    read stops at the job and line where they stopped fitting."""
    run_dir = make_run(tmp_path, texts=texts(1500, k=2), kind="mdlm")
    size = sum(p.stat().st_size for p in run_dir.glob("jobs/*/scores.jsonl"))
    monkeypatch.setattr(room, "available_memory", lambda: room.RESERVE + size * 3 // 2)  # fits job c0 alone
    with pytest.raises(OrchError) as caught:
        load_scores(load_run(run_dir))
    assert caught.value.code == ExitCode.RUN_STATE and caught.value.hint
    assert caught.value.message.startswith("the run's results are too big for this machine: its score files take ")
    assert "held at job 'c1', scores.jsonl line 3000, and as much again to join them" in caught.value.message
    monkeypatch.setattr(room, "available_memory", lambda: room.RESERVE + 4 * size)
    assert load_scores(load_run(run_dir)).n == 3000


def _cgroup(tmp_path, proc_line: str, files: dict):
    for rel, text in files.items():
        path = tmp_path / "cg" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "self-cgroup").write_text(proc_line)
    return room.cgroup_room(str(tmp_path / "cg"), str(tmp_path / "self-cgroup"))


def test_a_cgroup_memory_limit_is_the_room_this_process_has(tmp_path):
    """In a container or a login node's slice the kernel kills at the cgroup's limit,
    whatever /proc/meminfo says: the least room over the cgroup and its parents counts."""
    v2 = {
        "memory.max": "max\n",  # the root: no limit
        "user.slice/memory.max": "4294967296\n",
        "user.slice/memory.current": "1073741824\n",
        "user.slice/app/memory.max": "max\n",
        "user.slice/app/memory.current": "10\n",
    }
    assert _cgroup(tmp_path / "a", "0::/user.slice/app\n", v2) == 3 << 30
    v1 = {
        "memory/docker/abc/memory.limit_in_bytes": "2147483648\n",
        "memory/docker/abc/memory.usage_in_bytes": "536870912\n",
        "memory/memory.limit_in_bytes": "9223372036854771712\n",  # v1's "no limit"
    }
    assert _cgroup(tmp_path / "b", "4:memory:/docker/abc\n0::/\n", v1) == 3 << 29
    assert _cgroup(tmp_path / "c", "0::/\n", {"memory.max": "max\n"}) is None
    assert _cgroup(tmp_path / "d", "garbage\n", {}) is None
    assert room.cgroup_room(str(tmp_path), str(tmp_path / "no-such-file")) is None
