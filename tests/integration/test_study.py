"""Studies end to end on the real loopback sshd: a 3-member x 2-seed study runs with
shared pretrain jobs, is fetched and reported (a failed member: test_study_partial.py)."""

import json

import pytest
from studycases import wait_ended, write_study

TINY = {
    "data.unlabelled_path": "configs/data/tiny_unlabelled.jsonl",
    "pretrain.enabled": True,
    "pretrain.steps": 8,
    "pretrain.log_every": 4,
    "train.steps": 10,
    "train.log_every": 5,
    "score.mdlm_draws": 2,
    "eval.bootstrap": 100,
}


@pytest.mark.slow
def test_a_study_runs_shares_pretrains_fetches_and_reports(ssh_project):
    p = ssh_project
    write_study(
        p,
        "st",
        {"gpt2": {"model.kind": "ar"}, "mdlm": {"model.kind": "mdlm"}, "clf": {"model.kind": "classifier"}},
        [0, 1],
        TINY,
        {"gpt2-mdlm": ["gpt2", "mdlm"]},
    )
    plan = p.orch("study", "run", "st", "--dry-run", check=True).stdout
    assert "3 members x 2 seeds = 6 runs" in plan and "from st-gpt2-s0" in plan and "from st-gpt2-s1" in plan
    assert not (p.root / "runs" / "studies").exists()  # a dry run changes nothing

    launched = p.orch("study", "run", "st", check=True)
    assert launched.stdout.strip() == "st"
    runs = wait_ended(p, "st")
    assert {r["state"] for r in runs.values()} == {"done"}, runs
    assert [(r["member"], r["seed"]) for r in runs.values()] == [
        ("gpt2", 0), ("gpt2", 1), ("mdlm", 0), ("mdlm", 1), ("clf", 0), ("clf", 1)
    ]  # fmt: skip

    # Four pretrain jobs for six runs: the classifier starts from the GPT's of its seed.
    pretrains = sorted(d.parent.parent.name for d in (p.remote_root / "runs").glob("st-*/jobs/pretrain"))
    assert pretrains == ["st-gpt2-s0", "st-gpt2-s1", "st-mdlm-s0", "st-mdlm-s1"]
    log = (p.remote_job("st-clf-s1", "classifier") / "log.txt").read_text()
    assert "starting from the pretrain checkpoint" in log and "runs/st-gpt2-s1/jobs/pretrain/ckpt/final" in log

    # Every member is an ordinary run, listed with its study.
    listed = {r["run"]: r for r in json.loads(p.orch("runs", "--json", check=True).stdout)}
    assert {k for k, v in listed.items() if v["study"] == "st"} == set(runs)

    # The classifier learns nothing in these few steps: below the smoke experiment's
    # eval.min_accuracy (0.8), so the fetch fetches every run, names those two and exits 1.
    fetched = p.orch("study", "fetch", "st", timeout=600)
    said = " ".join(fetched.stderr.split())
    assert fetched.returncode == 1, fetched.stderr
    assert "6 of 6 runs of st fetched" in said
    assert "2 runs of st are below their eval.min_accuracy: st-clf-s0, st-clf-s1" in said, said
    # resumable: nothing left to fetch, and the same verdict (from the runs' metrics.json)
    again = p.orch("study", "fetch", "st")
    assert again.returncode == 1 and "6 of 6 runs of st fetched" in again.stderr, again.stderr
    assert not [line for line in again.stderr.splitlines() if line.startswith("fetched and evaluated ")]
    # a fetched run with no evaluation here (one failed, or metrics.json went) is evaluated on
    # the next fetch: the gate is not passed by a verdict that is missing
    (p.root / "runs" / "st-clf-s0" / "metrics.json").unlink()
    third = p.orch("study", "fetch", "st", timeout=600)
    said = " ".join(third.stderr.split())
    assert third.returncode == 1 and "evaluated st-clf-s0" in third.stderr.splitlines(), third.stderr
    assert "2 runs of st are below their eval.min_accuracy: st-clf-s0, st-clf-s1" in said, said
    assert (p.root / "runs" / "st-clf-s0" / "metrics.json").is_file()
    # the evaluated runs now give the dry run its estimate (the config takes its classes from the data)
    assert "job time: no estimate" in plan  # before the study: nothing measured
    replan = p.orch("study", "run", "st", "--dry-run", check=True).stdout
    assert "job time: about" in replan and "no estimate" not in replan, replan

    report = p.orch("study", "report", "st", check=True, timeout=600)
    out_dir = p.root / "runs" / "studies" / "st"
    assert report.stdout.strip() == str(out_dir / "report.md")
    # the terminal summary: every row with its interval over texts and seeds
    for name in ("gpt2", "mdlm", "clf", "gpt2-mdlm"):
        assert f"\n{name}: " in "\n" + report.stderr and "95% CI" in report.stderr, report.stderr
    table = json.loads((out_dir / "table.json").read_text())
    assert [r["name"] for r in table["rows"]] == ["gpt2", "mdlm", "clf", "gpt2-mdlm"]
    assert not table["missing"]
    text = (out_dir / "report.md").read_text()
    assert "McNemar" in text and "Holm" in text and (out_dir / "table.csv").is_file()
    # Each seed's interval is the Jeffreys interval: never zero-width, even at 100%.
    for row in table["rows"]:
        for s in row["seeds"]:
            lo, hi = s["accuracy_ci95"]
            assert lo < hi and lo <= s["accuracy"] <= hi, (row["name"], s)
    # The pairwise tests count each test text once over both seeds, not once per seed.
    n_test = table["data"]["n_test"]
    for pair in table["pairs"]:
        assert pair["seeds"] == [0, 1] and pair["n"] == n_test, pair
        assert pair["a_only"] + pair["b_only"] + pair["ties"] == n_test
        # from two seeds up the test also counts how far the difference moves from seed to seed
        assert pair["test"].startswith("the larger p of the sign-flip test"), pair
        assert pair["diff_ci95"][0] <= pair["accuracy_diff"] <= pair["diff_ci95"][1], pair
    # Each row's mean has an interval over texts and seeds, never narrower than its texts allow.
    for row in table["rows"]:
        lo, hi = row["accuracy_mean_ci95"]
        assert lo < hi and lo <= row["accuracy_mean"] <= hi, row
    assert "| A better | B better |" in text and "95% CI of the mean (texts and seeds)" in text
    assert (out_dir / "plots" / "accuracy_by_member.png").is_file()

    # The yardsticks: one reference row each, the number every run's metrics.json has.
    from_runs = {}
    for run_id in runs:
        ys = json.loads((p.root / "runs" / run_id / "metrics.json").read_text())["yardsticks"]
        assert ys["available"], (run_id, ys)
        for y in ys["rows"]:
            from_runs.setdefault(y["name"], set()).add(y["accuracy"])
    tex = (out_dir / "summary.tex").read_text()
    assert tex.count("\\toprule") == 1 and "\\end{tabular}" in tex
    assert [y["name"] for y in table["yardsticks"]] == ["nb", "tfidf_lr"]
    for y in table["yardsticks"]:
        assert y["kind"] == "yardstick" and y["same_in_every_run"] and len(y["runs_with"]) == 6, y
        assert from_runs[y["name"]] == {y["accuracy_mean"]}  # one training set: the same in every run
        shown = f"{100 * y['accuracy_mean']:.2f}"
        assert f"{y['title']} (yardstick) & {shown} &" in tex
        assert f"yardstick {y['name']} ({y['title']}, reference): {shown}%" in report.stderr
        assert f"| {shown}% |" in text.split("### Details")[0]
    assert all(y["name"] not in (pair["a"], pair["b"]) for y in table["yardsticks"] for pair in table["pairs"])
    lines = (out_dir / "table.csv").read_text().splitlines()
    assert sum(li.startswith(("nb,yardstick,mean,", "tfidf_lr,yardstick,mean,")) for li in lines) == 2

    refused = p.orch("study", "run", "st")
    assert refused.returncode == 8 and "launched already" in refused.stderr and "Traceback" not in refused.stderr
