"""The study report: 3 members x 2 seeds of real run folders with known scores, evaluated,
tabled, tested pairwise (McNemar pooled over seeds, Holm), ensembled, drawn and written."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import pytest
import yaml

from orchestrator.errors import ExitCode, OrchError
from orchestrator.results.report import ci, pct
from orchestrator.results.study_report import MemberRun, mean_sd, write_study_report
from orchestrator.results.study_terminal import summary_lines
from tests.unit.evalruns import draw_texts, make_run

# Ten texts: 0/0..0/4 are class "0", 1/0..1/4 class "1" (in this order: index 0..9).
IDS = [f"0/{i}" for i in range(5)] + [f"1/{i}" for i in range(5)]
# The texts each (member, seed) gets wrong.
WRONG = {
    ("gpt2", 0): {0, 1},  # 8/10
    ("gpt2", 1): {2},  # 9/10
    ("mdlm", 0): {0, 5, 6, 7},  # 6/10
    ("mdlm", 1): {1, 2, 8},  # 7/10
    ("classifier", 0): set(),  # 10/10
    ("classifier", 1): {9},  # 9/10
    ("classifier", 2): {3, 4},  # 8/10 (the study with a third seed)
}
KINDS = {"gpt2": "ar", "mdlm": "mdlm", "classifier": "classifier"}
STUDY = {
    "name": "seed-plan",
    "base": "imdb-scratch-ar",
    "host": "nigel",
    "seeds": [0, 1],
    "members": {name: {"model.kind": kind} for name, kind in KINDS.items()},
    "ensembles": {},
}


def margins(member: str, seed: int) -> List[float]:
    """Each text's margin score("1") - score("0"): its sign right unless WRONG says so;
    gpt2 is surer when right (2) than when wrong (1), MDLM's scale is 50 times larger."""
    wrong = WRONG[(member, seed)]
    out = []
    for i in range(10):
        sign = (1 if i >= 5 else -1) * (-1 if i in wrong else 1)
        size = {"gpt2": 1.0 if i in wrong else 2.0, "mdlm": 50.0, "classifier": 1.5}[member]
        out.append(sign * size)
    return out


def trained(run_dir: Path, tokens_seen: int = 3000, pretrain: Optional[Dict[str, float]] = None) -> Path:
    """RUN_DIR's training jobs record TOKENS_SEEN (their train_s is make_run's 12.5); PRETRAIN
    ({"tokens_seen": ..., "train_s": ...}) adds a done pretrain job as `orch run` plans one."""
    for manifest in run_dir.glob("jobs/*/manifest.json"):
        doc = json.loads(manifest.read_text())
        manifest.write_text(json.dumps({**doc, "tokens_seen": tokens_seen}))
    if pretrain:
        run_yaml = run_dir / "run.yaml"
        doc = yaml.safe_load(run_yaml.read_text())
        job = {"name": "pretrain", "role": "pretrain", "label": None, "requires": [], "after": [], "gpu": "0"}
        doc["jobs"].insert(0, job)
        run_yaml.write_text(yaml.safe_dump(doc, sort_keys=False))
        job_dir = run_dir / "jobs" / "pretrain"
        job_dir.mkdir()
        status = {"state": "done", "pid": 1, "exit_code": 0, "created": 1.0, "started": 2.0, "ended": 12.0}
        (job_dir / "status.json").write_text(json.dumps({**status, "gpu": "0", "reason": ""}))
        manifest = {"job": "pretrain", "role": "pretrain", "files": {}, "train_tokens": 99_999, **pretrain}
        (job_dir / "manifest.json").write_text(json.dumps({**manifest, "timings": {"train_s": pretrain["train_s"]}}))
    return run_dir


def member_run(root: Path, member: str, seed: int, texts_hook=None, **run_kw) -> MemberRun:
    d = margins(member, seed)
    if member == "mdlm":
        # two draws per text, -d and 3d: their mean is d, the first draw alone flips every decision
        texts = draw_texts({"0": [[-x, 3 * x] for x in d[:5]], "1": [[-x, 3 * x] for x in d[5:]]})
    else:
        texts = [(tid, tid[0], {"0": (100.0 + x, 20), "1": (100.0, 20)}) for tid, x in zip(IDS, d)]
    if texts_hook is not None:
        texts = texts_hook(texts)
    run_id = f"{member}-s{seed}"
    run_dir = trained(make_run(root, run_id, texts, kind=KINDS[member], job_seconds=30 + seed, **run_kw))
    return MemberRun(member, seed, run_id, run_dir)


def all_runs(root: Path, seeds: Sequence[int] = (0, 1)) -> List[MemberRun]:
    return [member_run(root, m, s) for m in KINDS for s in seeds]


def rows_by_name(table: Dict) -> Dict[str, Dict]:
    return {r["name"]: r for r in table["rows"]}


def pair(table: Dict, a: str, b: str) -> Dict:
    (p,) = [p for p in table["pairs"] if (p["a"], p["b"]) == (a, b)]
    return p


def read_csv(path: Path) -> List[Dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# --------------------------------------------------------------------------- the table


def test_members_mean_sd_and_seed_intervals(tmp_path):
    out = tmp_path / "runs" / "studies" / "seed-plan"
    table = write_study_report(out, STUDY, all_runs(tmp_path))
    rows = rows_by_name(table)
    sd = math.sqrt(2 * 0.05**2)  # two seeds 0.1 apart: sample sd
    for name, accs in {"gpt2": [0.8, 0.9], "mdlm": [0.6, 0.7], "classifier": [1.0, 0.9]}.items():
        r = rows[name]
        assert [s["accuracy"] for s in r["seeds"]] == pytest.approx(accs)
        assert r["accuracy_mean"] == pytest.approx(np.mean(accs)) and r["accuracy_sd"] == pytest.approx(sd)
        assert (r["n_done"], r["n_planned"], r["complete"], r["note"]) == (2, 2, True, "")
        for s in r["seeds"]:  # each seed's interval is its run's own
            lo, hi = s["accuracy_ci95"]
            assert lo <= s["accuracy"] <= hi
        assert r["macro_f1_mean"] is not None and r["roc_auc_mean"] is not None
    # the per-token variant: equal token counts, so the same decisions
    assert rows["gpt2"]["per_token_accuracy_mean"] == pytest.approx(0.85)
    # verdicts of the mean, by each member's band set: 85% is Good (Excellent is > 85%), MDLM's bands are stricter
    assert (rows["gpt2"]["verdict"], rows["gpt2"]["bands"]) == ("Good", "poc")
    assert (rows["mdlm"]["verdict"], rows["mdlm"]["bands"]) == ("Failed", "mdlm")
    assert rows["classifier"]["verdict"] == "Excellent"
    # compute: GPU time summed over the seeds' jobs (2 class jobs of 30 s and 31 s); train throughput: the
    # tokens the jobs trained on over their train_s, 3000 / 12.5 (not the training set's 1000 tokens)
    assert rows["gpt2"]["gpu_seconds"] == 2 * 30 + 2 * 31 and rows["classifier"]["gpu_seconds"] == 30 + 31
    assert rows["gpt2"]["train_tokens_per_s"] == pytest.approx(240.0)
    assert rows["gpt2"]["pretrain_tokens_per_s"] is None  # no pretraining job in these runs
    # the data and the software, as evaluate found them
    d = table["data"]
    assert d["n_test"] == 10 and d["dataset"] == "imdb" and d["classes"] == ["0", "1"]
    assert table["code_hashes"] == ["abc123"] and table["software"]["torch"] == ["2.11.0"]
    assert table["missing"] == [] and json.loads((out / "table.json").read_text()) == table


def test_pairs_test_texts_over_the_seeds_with_holm(tmp_path):
    table = write_study_report(tmp_path / "out", STUDY, all_runs(tmp_path))
    # by hand, from WRONG: each text's count of seeds right, A's minus B's
    g_m = pair(table, "gpt2", "mdlm")  # [1,1,1,2,2,2,2,2,2,2] - [1,1,1,2,2,1,1,1,1,2]: +1 on 4 texts
    g_c = pair(table, "gpt2", "classifier")  # - [2,2,2,2,2,2,2,2,2,1]: -1 on 3 texts, +1 on one
    m_c = pair(table, "mdlm", "classifier")  # -1 on 7 texts, +1 on one
    assert (g_m["a_only"], g_m["b_only"], g_m["ties"], g_m["n"], g_m["seeds"]) == (4, 0, 6, 10, [0, 1])
    assert (g_c["a_only"], g_c["b_only"]) == (1, 3) and (m_c["a_only"], m_c["b_only"]) == (1, 7)
    assert g_m["accuracy_diff"] == pytest.approx(0.85 - 0.65)
    # the texts' sign-flip test by hand
    flips = {"gm": 2 / 16, "gc": 10 / 16, "mc": 18 / 256}  # all four signs alike; |2X - 4| >= 2; |2X - 8| >= 6
    # and the test that also counts the seeds, by hand: each text's seed-averaged difference
    # (the texts' term) and the seeds' differences in accuracy (the seeds' term, t with 1 df),
    # that term never below the texts' own changes from seed 0 to seed 1: the mean over the
    # texts of each one's variance over the two seeds (changed by 1: 1/2, by 2: 2), over n S
    seeds_diff = {"gm": (0.2, 0.2), "gc": (-0.2, 0.0), "mc": (-0.4, -0.2)}
    per_text = {
        "gm": [0] * 5 + [0.5] * 4 + [0],
        "gc": [-0.5] * 3 + [0] * 6 + [0.5],
        "mc": [-0.5] * 3 + [0] * 2 + [-0.5] * 4 + [0.5],
    }
    # gm: text 1 goes -1 to +1 (variance 2), texts 5-8 change by 1 (1/2 each); gc: texts 0, 1, 2
    # and 9 by 1; mc: texts 0-2 and 5-9 by 1
    changes = {"gm": [2.0] + [0.5] * 4, "gc": [0.5] * 4, "mc": [0.5] * 8}
    seed_term = {k: max(np.var(seeds_diff[k], ddof=1) / 2, np.sum(changes[k]) / 10 / 20) for k in flips}
    want = {k: max(flips[k], seed_aware_p(np.mean(per_text[k]), np.var(per_text[k]) / 10, seed_term[k])) for k in flips}
    # gpt2 beat mdlm by 20 points at both seeds: a tie, yet the seeds' term is the texts' changes, not 0
    assert seed_term["gm"] == pytest.approx(0.02) and seed_term["mc"] == pytest.approx(0.02)
    assert want["gm"] > 0.2 > flips["gm"]
    assert want["mc"] > 0.2 > flips["mc"]  # 40 and 20 points: the seeds say less than the texts
    got = {"gm": g_m, "gc": g_c, "mc": m_c}
    for k, p in got.items():
        assert p["p_value"] == pytest.approx(want[k], rel=1e-5), k
    # Holm over the three
    order = sorted(want, key=want.get)
    holm, running = {}, 0.0
    for i, k in enumerate(order):
        running = max(running, min(1.0, (3 - i) * want[k]))
        holm[k] = running
    for k, p in got.items():
        assert p["p_holm"] == pytest.approx(holm[k], rel=1e-5), k
    assert table["pairs_tested"] == 3
    # (Summing McNemar's counts over the seeds said (5, 1) for gpt2 - mdlm: texts 0-2, which each
    # gets right at one seed, entered as discordant pairs of both signs.)
    assert all(p["test"].startswith("the larger p of the sign-flip test") for p in table["pairs"])


def seed_aware_p(d, text_var, seed_var):
    """The level at which d's interval (normal texts' part, t(1 df) seeds' part in quadrature) reaches 0."""
    stats = pytest.importorskip("scipy.stats")
    optimize = pytest.importorskip("scipy.optimize")
    if seed_var == 0:
        return 2 * stats.norm.sf(abs(d) / np.sqrt(text_var))

    def gap(log_p):
        p = np.exp(log_p)
        return np.hypot(stats.norm.isf(p / 2) * np.sqrt(text_var), stats.t.isf(p / 2, 1) * np.sqrt(seed_var)) - abs(d)

    return float(np.exp(optimize.brentq(gap, np.log(1e-8), 0.0, xtol=1e-12)))


def test_a_missing_seed_is_marked_not_averaged_as_complete(tmp_path):
    study = {**STUDY, "seeds": [0, 1, 2]}
    runs = all_runs(tmp_path) + [
        member_run(tmp_path, "classifier", 2),
        MemberRun("gpt2", 2, "gpt2-s2", None, "failed: exit code 1: CUDA out of memory"),
    ]  # mdlm seed 2: never launched
    out = tmp_path / "out"
    table = write_study_report(out, study, runs)
    rows = rows_by_name(table)
    g = rows["gpt2"]
    assert (g["n_done"], g["n_planned"], g["complete"], g["seeds_done"]) == (2, 3, False, [0, 1])
    assert g["note"] == "2 of 3 seeds; seed 2: failed: exit code 1: CUDA out of memory"
    assert g["accuracy_mean"] == pytest.approx(0.85)  # over the two seeds it has, and said so
    assert rows["mdlm"]["note"] == "2 of 3 seeds; seed 2: not launched"
    assert rows["classifier"]["complete"] and rows["classifier"]["n_done"] == 3
    assert table["missing"] == [
        {"member": "gpt2", "seed": 2, "run_id": "gpt2-s2", "why": "failed: exit code 1: CUDA out of memory"},
        {"member": "mdlm", "seed": 2, "run_id": None, "why": "not launched"},
    ]
    # the pairs pool only the seeds both rows have
    assert pair(table, "gpt2", "classifier")["seeds"] == [0, 1]
    report = (out / "report.md").read_text()
    assert "| gpt2 \\* | 2/3 |" in report and "| classifier | 3/3 |" in report
    missing = report.split("## What is missing")[1]
    assert "failed: exit code 1: CUDA out of memory" in missing and "not launched" in missing
    assert "`gpt2-s2`" in missing
    csv_rows = read_csv(out / "table.csv")
    (g_mean,) = [r for r in csv_rows if r["row"] == "gpt2" and r["seed"] == "mean"]
    assert (g_mean["seeds_done"], g_mean["seeds_planned"], g_mean["note"]) == ("2", "3", g["note"])


def test_a_member_with_no_results_yet(tmp_path):
    runs = [r for r in all_runs(tmp_path) if r.member != "mdlm"]
    runs.append(MemberRun("mdlm", 0, "mdlm-s0", None, "running"))
    table = write_study_report(tmp_path / "out", STUDY, runs)
    m = rows_by_name(table)["mdlm"]
    assert m["n_done"] == 0 and m["accuracy_mean"] is None and m["verdict"] is None
    assert m["note"] == "0 of 2 seeds; seed 0: running; seed 1: not launched"
    assert all("mdlm" not in (p["a"], p["b"]) for p in table["pairs"])  # nothing to test it on
    assert table["draw_curves"] == {}
    assert "accuracy_vs_draws.png: not drawn, no MDLM member has results yet" in table["plot_notes"]


def test_the_bands_judge_only_their_own_data_set(tmp_path):
    # not IMDB: each run was judged against the yardsticks (here: none, no local data), so the mean gets no band
    study = {**STUDY, "members": {"gpt2": {"model.kind": "ar"}}}
    runs = [member_run(tmp_path, "gpt2", s, data_path="/data/sst2/train.jsonl") for s in (0, 1)]
    out = tmp_path / "out"
    table = write_study_report(out, study, runs)
    g = rows_by_name(table)["gpt2"]
    assert (g["verdict"], g["verdict_basis"]) == (None, "yardsticks") and table["data"]["dataset"] == "sst2"
    assert [s["verdict"] for s in g["seeds"]] == ["Not judged", "Not judged"]
    report = (out / "report.md").read_text()
    assert "per run, vs yardsticks: Not judged (all 2 seeds) |" in report
    assert "None applied: the bands judge only data set imdb (eval.bands_dataset), this study's is sst2" in report
    assert not table["bands"] and table["bands_dataset"] == "imdb"


# --------------------------------------------------------------------------- ensembles


def scaled_norm(member: str, seed: int) -> np.ndarray:
    """The per-token class scores the evaluation computes (uniform prior, 20 tokens), centred
    per text and divided by their root mean square: for two classes, each text's scores are
    -/+ margin / 2, over the root mean square of margin / 2."""
    d = np.array(margins(member, seed))
    nll = np.stack([100.0 + d, np.full(10, 100.0)], axis=1)
    s = -nll / 20 + math.log(0.5) / 20
    half = (s[:, 1] - s[:, 0]) / 2
    return np.stack([-half, half], axis=1) / np.sqrt(np.mean(half**2))


def test_ensemble_is_a_row_evaluated_like_a_member(tmp_path):
    study = {**STUDY, "ensembles": {"duo": ["gpt2", "mdlm"]}}
    out = tmp_path / "out"
    table = write_study_report(out, study, all_runs(tmp_path))
    duo = rows_by_name(table)["duo"]
    assert duo["type"] == "ensemble" and duo["components"] == ["gpt2", "mdlm"] and duo["n_done"] == 2
    y = np.array([0] * 5 + [1] * 5)
    accs = []
    for seed, rec in zip([0, 1], duo["seeds"]):
        combined = scaled_norm("gpt2", seed) + scaled_norm("mdlm", seed)
        margin = combined[:, 1] - combined[:, 0]
        assert np.abs(margin).min() > 1e-6  # no tie decides this test
        accs.append(float(np.mean((margin > 0) == (y == 1))))
        assert rec["accuracy"] == pytest.approx(accs[-1])
        lo, hi = rec["accuracy_ci95"]
        assert lo <= rec["accuracy"] <= hi and rec["macro_f1"] is not None and rec["roc_auc"] is not None
        assert rec["runs"] == [f"gpt2-s{seed}", f"mdlm-s{seed}"]
    assert duo["accuracy_mean"] == pytest.approx(np.mean(accs))
    # the scaling matters: a plain sum of the scores would follow MDLM (50 times the scale) alone
    assert duo["accuracy_mean"] != pytest.approx(rows_by_name(table)["mdlm"]["accuracy_mean"])
    # members judged on different sets (gpt2: poc, mdlm: mdlm): the strictest, not the kindest
    assert duo["verdict"] is not None and duo["bands"] == "mdlm"
    assert table["bands"]["mdlm"]["applied_to"] == {"duo": "an ensemble"}
    assert table["bands"]["poc"]["applied_to"] == {"classifier": "a discriminative classifier"}
    # in the pairwise tests: 4 rows, 6 pairs, Holm over all 6
    assert table["pairs_tested"] == 6 and pair(table, "gpt2", "duo")["n"] == 10  # texts, over both seeds
    report = (out / "report.md").read_text()
    assert "| duo |" in report and "centred per text" in report
    assert "applied for comparison to `classifier` (a discriminative classifier)." in report
    assert "applied for comparison to `duo` (an ensemble)." in report


def test_ensemble_seed_needs_every_component(tmp_path):
    study = {**STUDY, "ensembles": {"duo": ["gpt2", "classifier"]}}
    runs = [r for r in all_runs(tmp_path) if (r.member, r.seed) != ("classifier", 1)]
    duo = rows_by_name(write_study_report(tmp_path / "out", study, runs))["duo"]
    assert duo["seeds_done"] == [0] and duo["note"] == "1 of 2 seeds; seed 1: no results from classifier"


def test_bad_ensembles_and_unplanned_runs_are_refused(tmp_path):
    runs = all_runs(tmp_path, seeds=(0,))
    with pytest.raises(OrchError, match="unknown member") as info:
        write_study_report(tmp_path / "o", {**STUDY, "ensembles": {"duo": ["gpt2", "bert"]}}, runs)
    assert info.value.code == ExitCode.CONFIG
    with pytest.raises(OrchError, match="does not plan"):
        write_study_report(tmp_path / "o", STUDY, runs + [MemberRun("gpt2", 7, "x", None, "running")])


# --------------------------------------------------------------------------- one test set


def test_a_run_with_other_test_ids_is_refused_by_name(tmp_path):
    runs = all_runs(tmp_path)
    runs[3] = member_run(tmp_path / "other", "mdlm", 1, texts_hook=lambda t: t[:-1])  # 1/4 dropped
    with pytest.raises(OrchError) as info:
        write_study_report(tmp_path / "out", STUDY, runs)
    err = info.value
    assert err.code == ExitCode.DATA  # as `orch compare` of runs on different test sets
    assert "different test sets" in err.message and "'mdlm-s1' (member 'mdlm', seed 1)" in err.message
    assert "scored 9 test ids, run 'gpt2-s0' 10" in err.message and "1/4" in err.message
    assert not (tmp_path / "out" / "report.md").exists()


def test_a_run_with_other_labels_is_refused_by_name(tmp_path):
    runs = all_runs(tmp_path)

    def relabel(texts):
        return [(tid, "1" if tid == "0/3" else label, s) for tid, label, s in texts]

    runs[5] = member_run(tmp_path / "other", "classifier", 1, texts_hook=relabel)
    with pytest.raises(OrchError, match=r"'classifier-s1' .* other labels than run 'gpt2-s0' to 1 test id\(s\): '0/3'"):
        write_study_report(tmp_path / "out", STUDY, runs)


# --------------------------------------------------------------------------- the files


def test_csv_json_and_report_agree(tmp_path):
    out = tmp_path / "out"
    table = write_study_report(out, {**STUDY, "ensembles": {"duo": ["gpt2", "mdlm"]}}, all_runs(tmp_path))
    assert json.loads((out / "table.json").read_text()) == table
    report = (out / "report.md").read_text()
    results = report.split("### Details")[1].split("## Pairwise tests")[0]  # the wide table
    csv_rows = [c for c in read_csv(out / "table.csv") if c["type"] not in ("pair", "yardstick")]
    assert len(csv_rows) == 4 * 3  # per row: the mean and two seeds (then a line per pair)
    for r in table["rows"]:
        (mean,) = [c for c in csv_rows if c["row"] == r["name"] and c["seed"] == "mean"]
        assert float(mean["accuracy"]) == r["accuracy_mean"] and float(mean["accuracy_sd"]) == r["accuracy_sd"]
        assert float(mean["macro_f1"]) == r["macro_f1_mean"] and mean["verdict"] == r["verdict"]
        line = next(li for li in results.splitlines() if li.startswith(f"| {r['name']} |"))
        assert mean_sd(r["accuracy_mean"], r["accuracy_sd"]) in line and f"{r['macro_f1_mean']:.4f}" in line
        # the mean's interval over texts and seeds, in both files
        assert [float(mean["accuracy_ci95_low"]), float(mean["accuracy_ci95_high"])] == r["accuracy_mean_ci95"]
        assert f"| {ci(r['accuracy_mean_ci95'])} |" in line
        for s in r["seeds"]:
            (c,) = [c for c in csv_rows if c["row"] == r["name"] and c["seed"] == str(s["seed"])]
            assert float(c["accuracy"]) == s["accuracy"] and c["run_id"] == s["run_id"]
            assert [float(c["accuracy_ci95_low"]), float(c["accuracy_ci95_high"])] == s["accuracy_ci95"]
            assert f"s{s['seed']} {pct(s['accuracy'])} ({ci(s['accuracy_ci95'])})" in line
    for p in table["pairs"]:
        assert f"| {p['a']} | {p['b']} | 0, 1 | 10 | {p['a_only']} | {p['b_only']} |" in report
        assert f"{p['p_holm']:.3g} |" in report
    # what a researcher needs to cite it
    assert "imdb-scratch-ar" in report and "`abc123`" in report and "10 test texts of data set imdb" in report
    assert "model.kind = mdlm" in report and "## Verdict bands" in report and "Excellent > 90%" in report
    assert "| torch | 2.11.0 |" in report and "Nothing: every planned run has results." in report


def test_plots_are_drawn_with_the_draw_curve(tmp_path):
    out = tmp_path / "out"
    table = write_study_report(out, STUDY, all_runs(tmp_path))
    for name in ("accuracy_by_member.png", "accuracy_vs_draws.png"):
        assert (out / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"![{name[:-4]}](plots/{name})" in (out / "report.md").read_text()
    assert table["plots"] == ["plots/accuracy_by_member.png", "plots/accuracy_vs_draws.png"]
    # one draw at random: -d (flips every decision) or 3d (decides as the mean) - half the time each,
    # so about 50% whatever the run's accuracy; both draws' mean is the score
    curves = table["draw_curves"]["mdlm"]
    assert [c["k"] for c in curves] == [[1, 2], [1, 2]]
    assert [c["accuracy"][1] for c in curves] == [pytest.approx(0.6), pytest.approx(0.7)]
    assert all(c["accuracy"][0] == pytest.approx(0.5, abs=0.05) for c in curves)
    assert any("averaged over 200 random orders of each text's draws" in n for n in table["plot_notes"])
    # a study without MDLM: the draws plot is left out (an earlier one removed) and the report says why
    study = {**STUDY, "members": {"gpt2": {"model.kind": "ar"}, "classifier": {"model.kind": "classifier"}}}
    runs = [r for r in all_runs(tmp_path / "b") if r.member != "mdlm"]
    table = write_study_report(out, study, runs)
    assert not (out / "plots" / "accuracy_vs_draws.png").exists()
    assert table["plot_notes"] == ["accuracy_vs_draws.png: not drawn, no MDLM member in this study"]
    assert "accuracy\\_vs\\_draws.png: not drawn, no MDLM member in this study." in (out / "report.md").read_text()


def test_untrusted_names_render_as_text(tmp_path):
    evil = '=HYPERLINK("x")|<img src=x>[a](http://e)'
    study = {**STUDY, "members": {evil: {"model.kind": "ar"}, "mdlm": {"model.kind": "mdlm"}}}
    runs = [
        MemberRun(evil, r.seed, r.run_id, r.run_dir) if r.member == "gpt2" else r
        for r in all_runs(tmp_path)
        if r.member != "classifier"
    ]
    out = tmp_path / "out"
    write_study_report(out, study, runs)
    report = (out / "report.md").read_text()
    assert "<img" not in report and "](http" not in report and "&lt;img src=x&gt;" in report
    assert '=HYPERLINK\\("x"\\)\\|' in report  # the pipe escaped: the table keeps its columns
    text = (out / "table.csv").read_text()
    cells = [row[0] for row in csv.reader(io.StringIO(text))][1:]
    assert cells[0] == "'" + evil  # a spreadsheet reads it as text, not a formula


def test_a_run_without_gpus_says_none_in_the_software_facts():
    from orchestrator.results.study_table import _merge_facts

    merged = _merge_facts([{"gpus": [], "torch": "2.13.0"}, {"gpus": ["NVIDIA H200"], "created": "x"}])
    assert merged == {"gpus": ["none", "NVIDIA H200"], "torch": ["2.13.0"]}


def test_the_means_interval_counts_the_seeds_and_says_when_the_band_is_unsettled(tmp_path):
    out = tmp_path / "out"
    table = write_study_report(out, STUDY, all_runs(tmp_path))
    g = rows_by_name(table)["gpt2"]  # 80% and 90% on 10 texts: 2 seeds that differ by 10 points
    low, high = g["accuracy_mean_ci95"]
    assert low < min(s["accuracy_ci95"][0] for s in g["seeds"]) and high == 1.0
    assert g["verdict"] == "Good" and g["verdict_span"][0] == "Excellent" and len(g["verdict_span"]) > 2
    results = (out / "report.md").read_text().split("### Details")[1]  # the wide table holds the verdict
    line = next(li for li in results.splitlines() if li.startswith("| gpt2 |"))
    assert f"Good (poc; its interval reaches Excellent to {g['verdict_span'][-1]})" in line
    # one seed: the run's own interval (with MDLM's draws), and the report says the seeds are not measured
    one = write_study_report(tmp_path / "one", {**STUDY, "seeds": [0]}, all_runs(tmp_path / "again", seeds=(0,)))
    for r in one["rows"]:
        assert r["accuracy_mean_ci95"] == r["seeds"][0]["accuracy_ci95"]
    text = (tmp_path / "one" / "report.md").read_text()
    assert "(one seed: the run's own interval)" in text and "accuracy moves from seed to seed is not measured" in text
    assert all(p["test"].startswith("McNemar's exact test") for p in one["pairs"])


def test_the_terminal_summary_gives_each_rows_interval_and_what_differs(tmp_path):
    table = write_study_report(tmp_path / "out", STUDY, all_runs(tmp_path))
    lines = summary_lines(table)
    g = rows_by_name(table)["gpt2"]
    assert lines[0] == (
        f"gpt2: {mean_sd(g['accuracy_mean'], g['accuracy_sd'])}, 95% CI {ci(g['accuracy_mean_ci95'])} (2 seeds); "
        f"Good (poc; its interval reaches Excellent to {g['verdict_span'][-1]})"
    )
    # 10 texts and two seeds: nothing differs, and the summary says why more seeds would help
    assert lines[-2:] == [
        "no pair differs at p (Holm) < 0.05 (3 pairs tested)",
        "with two seeds the seeds' spread is known from one degree of freedom: more seeds say more",
    ]
    # a pair that differs is told the right way round, B ahead of A included
    pair = {"a": "x", "b": "y", "seeds": [0], "accuracy_diff": -0.031, "diff_ci95": [-0.05, -0.012], "p_holm": 0.002}
    told = summary_lines({"rows": [], "pairs": [pair]})
    assert told == [
        "y beats x by 3.10 pp (95% CI +1.20 to +5.00 pp, p (Holm) 0.002)",
        "pairs over one seed compare two trained models, not the members: seed-to-seed variation is not measured",
    ]


def test_train_tokens_per_s_reads_as_in_orch_status():
    from orchestrator.results.report import whole

    assert (whole(7831.4), whole(80.0), whole(None)) == ("7,831", "80", "n/a")


def test_what_is_missing_shows_orchs_commands_as_code():
    from orchestrator.results.study_report import _missing_section

    table = {
        "missing": [
            {"member": "gpt2", "seed": 1, "run_id": "s-gpt2-s1", "why": "done, not fetched yet (`orch study fetch`)"},
            {"member": "mdlm", "seed": 0, "run_id": None, "why": "odd ` text *x*"},
        ]
    }
    text = "\n".join(_missing_section(table))
    assert "| done, not fetched yet \\(`orch study fetch`\\) |" in text
    assert "| odd \\` text \\*x\\* |" in text


def test_a_members_weight_is_set_by_its_margins_not_by_how_texts_differ():
    """A shift common to a text's classes decides nothing: it must not change a member's
    scaled scores (z-scoring the raw scores shrank a member whose texts vary in difficulty)."""
    from orchestrator.results.study_table import margin_scaled

    rng = np.random.default_rng(0)
    score = rng.normal(size=(50, 3))
    shift = rng.normal(scale=100.0, size=(50, 1))
    assert np.allclose(margin_scaled(score + shift), margin_scaled(score))
    assert np.allclose(margin_scaled(7.0 * score), margin_scaled(score))  # one scale per member
    two = np.array([[0.0, 2.0], [0.0, -1.0], [5.0, 4.0]])  # margins 2, -1, -1: rms sqrt(2)
    # centred, each text is -/+ margin / 2, whose rms is sqrt(2) / 2: margins become 2 m / sqrt(2)
    scaled = margin_scaled(two)
    assert np.allclose(scaled[:, 1] - scaled[:, 0], np.array([2, -1, -1]) * 2 / np.sqrt(2))
