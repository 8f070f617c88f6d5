"""`orch compare`: the table across runs and McNemar's exact test on a hand-computed case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from orchestrator.errors import ExitCode, OrchError
from orchestrator.results.compare import compare_runs, holm, mcnemar_exact, mcnemar_pair
from tests.unit.evalruns import make_run, margin_texts


def test_mcnemar_exact_hand_computed():
    # b = 1, c = 5: P(X <= 1) for X ~ Bin(6, 1/2) is (1 + 6) / 64; two-sided doubles it
    assert mcnemar_exact(1, 5) == pytest.approx(14 / 64)
    assert mcnemar_exact(5, 1) == pytest.approx(14 / 64)
    assert mcnemar_exact(0, 4) == pytest.approx(2 / 16)
    assert mcnemar_exact(3, 3) == pytest.approx(1.0)
    assert mcnemar_exact(0, 0) == 1.0


def test_mcnemar_pair_counts():
    a = np.array([1, 1, 1, 0, 0, 1, 0, 1], dtype=bool)
    b = np.array([1, 0, 1, 1, 1, 1, 1, 1], dtype=bool)
    r = mcnemar_pair(a, b)
    assert (r["both_correct"], r["a_only"], r["b_only"], r["both_wrong"]) == (4, 1, 3, 0)
    assert r["accuracy_diff"] == pytest.approx(5 / 8 - 7 / 8)
    assert r["p_value"] == pytest.approx(mcnemar_exact(1, 3)) and r["n"] == 8


def _runs(tmp_path: Path):
    # 12 texts; run A right on 10 (wrong on 0/0 and 1/0), run B right on 6 (wrong on 0/0 and 1/1-1/5)
    a = margin_texts({"0": [1, -1, -1, -1, -1, -1], "1": [-1, 1, 1, 1, 1, 1]})
    b = margin_texts({"0": [1, -1, -1, -1, -1, -1], "1": [1, -1, -1, -1, -1, -1]})
    ra = make_run(tmp_path, "a", a, kind="ar", init="scratch", job_seconds=30)
    rb = make_run(tmp_path, "b", b, kind="mdlm", init="gpt2", job_seconds=90)
    return ra, rb


def test_compare_two_runs_on_the_same_texts(tmp_path):
    ra, rb = _runs(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    result = compare_runs([("a", ra), ("b", rb)])
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # writes nothing
    ra_row, rb_row = result["runs"]
    assert (ra_row["kind"], ra_row["init"], rb_row["kind"], rb_row["init"]) == ("ar", "scratch", "mdlm", "gpt2")
    assert ra_row["accuracy"] == pytest.approx(10 / 12) and rb_row["accuracy"] == pytest.approx(6 / 12)
    assert ra_row["gpu_seconds"] == 60 and rb_row["gpu_seconds"] == 180
    assert rb_row["verdict"] == "Failed" and rb_row["bands"] == "mdlm" and ra_row["verdict"] == "Good"
    (pair,) = result["pairs"]
    # A alone right on 1/1..1/5 (5 texts), B alone right on 1/0 (1 text)
    assert (pair["a"], pair["b"], pair["a_only"], pair["b_only"], pair["n"]) == ("a", "b", 5, 1, 12)
    assert pair["p_value"] == pytest.approx(14 / 64)
    assert result["n_common"] == 12 and result["test_sets_differ"] is False


def test_compare_refuses_different_test_sets_unless_forced(tmp_path):
    ra, _ = _runs(tmp_path)
    short = margin_texts({"0": [1, -1, -1, -1, -1], "1": [-1, 1, 1, 1, 1]})  # 0/5 and 1/5 missing
    rc = make_run(tmp_path, "c", short)
    with pytest.raises(OrchError) as info:
        compare_runs([("a", ra), ("c", rc)])
    err = info.value
    assert err.code == ExitCode.DATA and "different test sets" in err.message
    assert "'a' has 12" in err.message and "0/5" in err.message and "--force" in err.hint
    result = compare_runs([("a", ra), ("c", rc)], force=True)
    assert result["n_common"] == 10 and result["test_sets_differ"] is True
    assert [r["n"] for r in result["runs"]] == [10, 10]
    assert result["pairs"][0]["a_only"] == 0 and result["pairs"][0]["b_only"] == 0


def test_compare_refuses_same_ids_with_other_labels(tmp_path):
    ra, _ = _runs(tmp_path)
    flipped = [
        (tid, "1" if label == "0" else "0", s)
        for tid, label, s in margin_texts({"0": [1, -1, -1, -1, -1, -1], "1": [-1, 1, 1, 1, 1, 1]})
    ]
    rd = make_run(tmp_path, "d", flipped)
    with pytest.raises(OrchError, match="different labels to 12 test id"):
        compare_runs([("a", ra), ("d", rd)])


def test_compare_names_the_broken_run(tmp_path):
    ra, rb = _runs(tmp_path)
    (rb / "jobs" / "c0" / "manifest.json").unlink()
    with pytest.raises(OrchError) as info:
        compare_runs([("a", ra), ("b", rb)])
    assert info.value.message.startswith("run 'b':") and info.value.code == ExitCode.RUN_STATE
    assert info.value.message.count("run 'b'") == 1  # named once, not "run 'b': run 'b': ..."
    with pytest.raises(OrchError, match="more than once"):
        compare_runs([("a", ra), ("a", ra)])


def test_compare_prefixes_errors_that_do_not_name_the_run(tmp_path):
    ra, rb = _runs(tmp_path)
    (rb / "run.yaml").unlink()
    with pytest.raises(OrchError) as info:
        compare_runs([("a", ra), ("b", rb)])
    assert info.value.message.startswith("run 'b': ") and "no run.yaml" in info.value.message


def test_compare_per_token(tmp_path):
    texts = [("x", "0", {"0": (100.0, 50), "1": (90.0, 30)}), ("y", "1", {"0": (80.0, 20), "1": (85.0, 40)})]
    r = make_run(tmp_path, "n", texts, tokenizer=None)  # per-class token counts: runs recording no tokenizer
    other = make_run(tmp_path, "m", texts, tokenizer=None)
    raw = compare_runs([("n", r), ("m", other)])
    norm = compare_runs([("n", r), ("m", other)], per_token=True)
    assert raw["runs"][0]["accuracy"] == 0.0 and norm["runs"][0]["accuracy"] == 1.0
    assert norm["pairs"][0]["p_value"] == 1.0


def test_holm_adjustment_hand_computed():
    # ascending 0.01, 0.03, 0.04 with m = 3: 3*0.01 = 0.03, 2*0.03 = 0.06, 1*0.04 -> max(0.06, 0.04)
    assert holm([0.04, 0.01, 0.03]) == pytest.approx([0.06, 0.03, 0.06])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.02]) == pytest.approx([0.02])  # one comparison: unchanged
    assert holm([]) == []


def test_three_runs_get_holm_adjusted_pairs(tmp_path):
    ra, rb = _runs(tmp_path)
    c = margin_texts({"0": [1, 1, -1, -1, -1, -1], "1": [-1, 1, 1, 1, 1, 1]})
    rc = make_run(tmp_path, "c", c, kind="ar", init="scratch", job_seconds=30)
    result = compare_runs([("a", ra), ("b", rb), ("c", rc)])
    pairs = {(p["a"], p["b"]): p for p in result["pairs"]}
    assert set(pairs) == {("a", "b"), ("a", "c"), ("b", "c")}
    raw = [p["p_value"] for p in result["pairs"]]
    assert [p["p_holm"] for p in result["pairs"]] == pytest.approx(holm(raw))
    assert all(p["p_holm"] >= p["p_value"] for p in result["pairs"])


def _on_cpu(run_dir: Path) -> Path:
    """The run's jobs had no GPU (host `local`, or a CPU-only host)."""
    import yaml

    doc = yaml.safe_load((run_dir / "run.yaml").read_text())
    for job in doc["jobs"]:
        job["gpu"] = ""
    (run_dir / "run.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return run_dir


def test_the_table_says_what_it_measured(tmp_path):
    """The interval as computed (asymmetric near 100%), which bands judged each verdict,
    and whether a time was spent on a GPU or a CPU."""
    from rich.console import Console

    from orchestrator.commands.results_view import print_comparison

    ra, rb = _runs(tmp_path)  # a: poc bands, GPU; b: mdlm bands, GPU
    perfect = margin_texts({"0": [-1] * 6, "1": [1] * 6})
    rc = _on_cpu(make_run(tmp_path, "c", perfect, kind="ar", job_seconds=12))
    result = compare_runs([("a", ra), ("b", rb), ("c", rc)])
    row_c = result["runs"][2]
    assert row_c["compute"] == "cpu" and row_c["gpu_seconds"] == 0 and result["runs"][0]["compute"] == "gpu"
    low, high = row_c["accuracy_ci95"]
    assert high == 1.0 and row_c["accuracy"] == 1.0  # the interval cannot reach past 100%
    console = Console(record=True, width=250)
    print_comparison(console, result)
    text = console.export_text()
    line_c = next(line for line in text.splitlines() if line.startswith("│ c "))
    assert f"100.00% ({100 * low:.2f}–100.00%)" in line_c and "±" not in text
    assert "Excellent (poc)" in line_c and "24s CPU" in line_c  # two jobs of 12 s, no GPU
    line_b = next(line for line in text.splitlines() if line.startswith("│ b "))
    assert "Failed (mdlm)" in line_b and "3m00s GPU" in line_b
    assert "compute time" in text and "GPU time" not in text
    assert "bands: mdlm = full MDLM (" in text and "poc = proof-of-concept per-class LM (" in text
    assert "judged on different grounds" in text


def test_a_verdict_from_the_yardsticks_is_not_labelled_with_bands():
    """A run judged against its yardsticks (bands for another data set) says so, and the
    bands' footnote names only band sets some run was judged on."""
    import io

    from rich.console import Console

    from orchestrator.commands.results_view import print_comparison

    row = {
        "run_id": "r",
        "kind": "ar",
        "init": "scratch",
        "accuracy": 0.99,
        "accuracy_ci95": [0.96, 1.0],
        "macro_f1": 0.99,
        "verdict": "No different from the best yardstick",
        "bands": "poc",
        "basis": "yardsticks",
        "compute": "cpu",
        "gpu_seconds": 0.0,
        "job_seconds": 10.0,
        "train_tokens": 1000,
    }
    buf = io.StringIO()
    print_comparison(
        Console(file=buf, width=300),
        {"runs": [row], "n_common": 120, "per_token": False, "pairs": [], "test_sets_differ": False},
    )
    text = buf.getvalue()
    assert "(yardsticks)" in text and "(poc)" not in text and "bands: " not in text


def test_bands_applied_to_a_kind_they_were_not_written_for_say_so(tmp_path):
    """The seed plan's bands are for per-class LMs: a discriminative classifier judged on
    them is judged for comparison, and the table's footnote and report.md say so."""
    import io

    from rich.console import Console

    from orchestrator.commands.results_view import print_comparison
    from orchestrator.results.metrics import applied_to, strictest_bands

    assert applied_to("poc", "ar") is None and applied_to("poc", "mdlm") is None
    assert applied_to("mdlm", "ar") == "an autoregressive LM"
    assert applied_to("poc", "classifier") == "a discriminative classifier"
    assert strictest_bands(["poc", "mdlm"]) == "mdlm" and strictest_bands(["poc"]) == "poc"
    base = {
        "init": "scratch",
        "accuracy": 0.9,
        "accuracy_ci95": [0.85, 0.94],
        "macro_f1": 0.9,
        "verdict": "Excellent",
        "bands": "poc",
        "basis": "bands",
        "compute": "cpu",
        "gpu_seconds": 0.0,
        "job_seconds": 10.0,
        "train_tokens": 1000,
    }
    runs = [{**base, "run_id": "lm", "kind": "ar"}, {**base, "run_id": "clf", "kind": "classifier"}]
    buf = io.StringIO()
    print_comparison(
        Console(file=buf, width=400),
        {"runs": runs, "n_common": 120, "per_token": False, "pairs": [], "test_sets_differ": False},
    )
    assert "applied for comparison to a discriminative classifier (clf)" in buf.getvalue()


def test_a_run_that_starts_from_another_runs_pretraining_is_footnoted(tmp_path):
    """Its compute counts its own jobs only (as the study report does): the footnote says
    which run's pretraining it starts from, so it does not look cheaper than it was."""
    import io

    import yaml
    from rich.console import Console

    from orchestrator.commands.results_view import print_comparison

    ra, rb = _runs(tmp_path)
    doc = yaml.safe_load((rb / "run.yaml").read_text())
    doc["experiment"]["pretrain"] = {"enabled": True, "from_run": "study-gpt2-s0"}
    (rb / "run.yaml").write_text(yaml.safe_dump(doc))
    result = compare_runs([("a", ra), ("b", rb)])
    assert [r["pretrain_from"] for r in result["runs"]] == [None, "study-gpt2-s0"]
    buf = io.StringIO()
    print_comparison(Console(file=buf, width=400), result)
    assert "b starts from the pretraining of run study-gpt2-s0, which is not counted in it" in buf.getvalue()
