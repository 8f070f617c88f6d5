"""What the study report says beside the accuracies: training throughput (the tokens the
models trained on, the pretraining apart), the estimator's facts each run's own report
gives (ties, MDLM's draws, a 1-draw member's unmeasured noise), collapsed runs, what judged
each row, and the terminal's caveats and verdicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.results.study_report import MemberRun, write_study_report
from orchestrator.results.study_terminal import summary_lines
from tests.unit.evalruns import draw_texts, make_run

try:  # the synthetic runs live with the study report's tests
    from .test_study_report import STUDY, all_runs, member_run, read_csv, rows_by_name, trained
except ImportError:
    from test_study_report import STUDY, all_runs, member_run, read_csv, rows_by_name, trained


def test_train_tokens_per_s_is_tokens_trained_on_with_the_pretraining_apart(tmp_path):
    """The training set's token count over train_s, pretrain job mixed in, said 3,800 here
    ((99,999 + 2 x 1,000) / 27 s); the class jobs trained on 3,000 tokens each in 12.5 s and
    the pretraining on 11,000 in 2 s."""
    runs = all_runs(tmp_path)
    for r in runs:
        if r.member == "gpt2":
            trained(r.run_dir, pretrain={"tokens_seen": 11_000, "train_s": 2.0})
    out = tmp_path / "out"
    table = write_study_report(out, STUDY, runs)
    g = rows_by_name(table)["gpt2"]
    assert g["train_tokens_per_s"] == pytest.approx(240.0) and g["pretrain_tokens_per_s"] == pytest.approx(5500.0)
    assert [s["pretrain_tokens_per_s"] for s in g["seeds"]] == [pytest.approx(5500.0)] * 2
    assert rows_by_name(table)["mdlm"]["pretrain_tokens_per_s"] is None
    results = (out / "report.md").read_text().split("### Details")[1]  # the wide table
    line = next(li for li in results.splitlines() if li.startswith("| gpt2 |"))
    assert "| 240 (pretrain 5,500) |" in line
    assert "train tokens/s (pretrain apart)" in (out / "report.md").read_text()
    (mean,) = [c for c in read_csv(out / "table.csv") if c["row"] == "gpt2" and c["seed"] == "mean"]
    assert float(mean["train_tokens_per_s"]) == 240.0 and float(mean["pretrain_tokens_per_s"]) == 5500.0


def one_draw_run(root: Path, seed: int) -> MemberRun:
    """A simple-diffusion run: one draw per text; texts 0/0 and (at seed 0) 1/0 masked nothing (0
    under both classes: a tie, which goes to class 0), the rest decided right by a margin of 5."""
    diffs = {"0": [[0.0]] + [[5.0]] * 4, "1": [[0.0 if seed == 0 else -5.0]] + [[-5.0]] * 4}
    run_dir = trained(make_run(root, f"sd-s{seed}", draw_texts(diffs, base=0.0), kind="mdlm"))
    return MemberRun("simple-diffusion", seed, f"sd-s{seed}", run_dir)


def test_the_estimators_facts_and_a_one_draw_members_unmeasured_noise(tmp_path):
    study = {**STUDY, "members": {**STUDY["members"], "simple-diffusion": {"model.kind": "mdlm"}}}
    runs = all_runs(tmp_path) + [one_draw_run(tmp_path, s) for s in (0, 1)]
    out = tmp_path / "out"
    table = write_study_report(out, study, runs)
    rows = rows_by_name(table)
    sd = rows["simple-diffusion"]["seeds"][0]["estimator"]
    assert (sd["tied"], sd["draws"], sd["not_significant"], sd["interval_has_draws"]) == (2, 1, None, False)
    m = rows["mdlm"]["seeds"][0]["estimator"]  # two draws per text, -d and 3d: every decision unsure
    assert (m["draws"], m["interval_has_draws"]) == (2, True) and m["not_significant"] == pytest.approx(1.0)
    assert 0.0 < m["draws_share"] < 1.0
    assert rows["gpt2"]["seeds"][0]["estimator"]["draws"] is None  # exact scores: nothing drawn
    report = (out / "report.md").read_text()
    section = report.split("## Ties and the estimator's noise")[1].split("## Pairwise tests")[0]
    sd_line = next(li for li in section.splitlines() if li.startswith("| simple-diffusion |"))
    assert sd_line.startswith(
        "| simple-diffusion | s0 2, s1 1 | 1 (all 2 seeds) | not measurable (one draw) (all 2 seeds) | "
        "none: one draw, its noise unmeasured (all 2 seeds) |"
    )
    assert "| mdlm | 0 (all 2 seeds) | 2 (all 2 seeds) | 100.0% (all 2 seeds) |" in section
    assert "| gpt2 |" not in section  # nothing to say: no ties, no draws
    assert (
        "has no spread to measure its draws' noise from" in section
        and "its own interval holds the texts alone" in section
    )
    # the Results text no longer says every seed's interval holds the draws
    assert "with the estimator's draws mixed in where the run has two or more per text" in report
    assert "(with the estimator's draws where a kind has them)" not in report
    (c,) = [c for c in read_csv(out / "table.csv") if c["row"] == "simple-diffusion" and c["seed"] == "0"]
    assert (c["tied"], c["draws"], c["decisions_not_significant"], c["draws_share"]) == ("2", "1", "", "")


def test_a_collapsed_run_is_flagged_in_the_report_and_on_the_terminal(tmp_path):
    def all_class_0(texts):  # every text's class-0 score far better: class 0 for all
        return [(tid, label, {"0": (1.0, 20), "1": (500.0, 20)}) for tid, label, _ in texts]

    runs = [r for r in all_runs(tmp_path) if (r.member, r.seed) != ("classifier", 1)]
    runs.append(member_run(tmp_path / "c", "classifier", 1, texts_hook=all_class_0))
    out = tmp_path / "out"
    table = write_study_report(out, STUDY, runs)
    rec = rows_by_name(table)["classifier"]["seeds"][1]
    assert rec["estimator"]["predicted_classes"] == ["0"] and rec["accuracy"] == 0.5
    report = (out / "report.md").read_text()
    results = report.split("## Results")[1].split("## Pairwise tests")[0]
    assert "**Collapsed runs.** `classifier-s1` (classifier, seed 1) predicted class 0 for all 10 texts" in results
    assert (
        "warning: run classifier-s1 (classifier, seed 1) predicted class 0 for all 10 texts: it decides nothing "
        "(report.md, Results)"
    ) in summary_lines(table)
    healthy = write_study_report(tmp_path / "ok", STUDY, all_runs(tmp_path / "b"))
    assert not any(li.startswith("warning:") for li in summary_lines(healthy))
    assert "Collapsed" not in (tmp_path / "ok" / "report.md").read_text()


def test_table_csv_says_what_judged_each_row(tmp_path):
    # on a data set the bands are not for: every run judged against the yardsticks, none on a band set
    study = {**STUDY, "ensembles": {"duo": ["gpt2", "mdlm"]}}
    runs = [
        member_run(tmp_path, m, s, data_path="/data/sst2/train.jsonl")
        for m in ("gpt2", "mdlm", "classifier")
        for s in (0, 1)
    ]
    out = tmp_path / "out"
    table = write_study_report(out, study, runs)
    csv_rows = read_csv(out / "table.csv")
    assert {c["judged_on"] for c in csv_rows if c["type"] == "member"} == {"yardsticks"}
    assert {c["judged_on"] for c in csv_rows if c["type"] == "ensemble"} == {"not judged"}
    assert "bands" not in csv_rows[0] and all(r["bands"] is None for r in table["rows"])
    # on IMDB: the band set each row was judged on
    table = write_study_report(tmp_path / "imdb", study, all_runs(tmp_path / "i"))
    judged = {(c["row"], c["seed"]): c["judged_on"] for c in read_csv(tmp_path / "imdb" / "table.csv")}
    assert judged[("gpt2", "mean")] == judged[("gpt2", "0")] == "poc" and judged[("mdlm", "1")] == "mdlm"
    assert judged[("duo", "mean")] == "mdlm"


def test_the_terminal_gives_yardstick_verdicts_and_the_two_seed_caveat_with_a_claim(tmp_path):
    runs = [member_run(tmp_path, "gpt2", s, data_path="/data/sst2/train.jsonl") for s in (0, 1)]
    table = write_study_report(tmp_path / "out", {**STUDY, "members": {"gpt2": {"model.kind": "ar"}}}, runs)
    (line,) = [li for li in summary_lines(table) if li.startswith("gpt2:")]
    assert line.endswith("(2 seeds); per run, vs yardsticks: Not judged (all 2 seeds)")
    # a pair claimed at two seeds still gets the one-degree-of-freedom caveat, and one at one seed its own
    claimed = {"a": "x", "b": "y", "seeds": [0, 1], "accuracy_diff": 0.3, "diff_ci95": [0.1, 0.5], "p_holm": 0.01}
    single = {**claimed, "a": "x", "b": "z", "seeds": [0], "p_holm": 0.5}
    told = summary_lines({"rows": [], "pairs": [claimed, single]})
    assert told == [
        "x beats y by 30.00 pp (95% CI +10.00 to +50.00 pp, p (Holm) 0.01)",
        "pairs over one seed compare two trained models, not the members: seed-to-seed variation is not measured",
        "with two seeds the seeds' spread is known from one degree of freedom: more seeds say more",
    ]
