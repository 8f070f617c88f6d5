"""A study's primary comparisons through the real CLI on the loopback sshd: `compare:` added
after launch changes no run (`study run` records it, nothing to launch), `study report`
follows it at once, corrects over the declared pair only and claims nothing else, however
small an exploratory pair's p."""

import json

import pytest
from studycases import run_done, write_study

SHARED = {"eval.bootstrap": 100, "eval.min_accuracy": 0}  # c stays near chance on purpose
# a and b learn the classes; c takes one step and stays near chance: both pairs with c differ clearly
MEMBERS = {
    "a": {"train.steps": 40},
    "b": {"train.steps": 40, "train.lr": 0.002},
    "c": {"train.steps": 1},
}


@pytest.mark.slow
def test_compare_declared_after_launch_is_what_the_report_corrects_over_and_claims(ssh_project):
    p = ssh_project
    run_done(p, "cp", MEMBERS, [0], SHARED)
    p.orch("study", "fetch", "cp", check=True, timeout=600)
    out_dir = p.root / "runs" / "studies" / "cp"

    # Without compare: every pair is primary and Holm runs over all three.
    p.orch("study", "report", "cp", check=True, timeout=600)
    table = json.loads((out_dir / "table.json").read_text())
    assert table["compare"] is None and table["holm"] == {"family": "all", "size": 3}
    assert all(pair["primary"] for pair in table["pairs"])

    # Declared after launch: the report follows the file before `study run` records it.
    write_study(p, "cp", MEMBERS, [0], SHARED, compare=[["a", "c"]])
    report = p.orch("study", "report", "cp", check=True, timeout=600)
    said = " ".join(report.stderr.split())
    assert "compare: every pair -> 1 primary pair (a vs c): this report follows the study file" in said, said
    table = json.loads((out_dir / "table.json").read_text())
    assert table["compare"] == [["a", "c"]] and table["holm"] == {"family": "primary", "size": 1}
    pairs = {(pair["a"], pair["b"]): pair for pair in table["pairs"]}
    assert set(pairs) == {("a", "b"), ("a", "c"), ("b", "c")}
    ac, bc = pairs[("a", "c")], pairs[("b", "c")]
    assert ac["primary"] is True and ac["p_holm"] == ac["p_value"]  # Holm over one pair
    assert not pairs[("a", "b")]["primary"] and not bc["primary"] and bc["p_holm"] is None
    assert ac["accuracy_diff"] > 0 and ac["p_holm"] < 0.05, ac  # c stays near chance
    assert bc["accuracy_diff"] > 0 and bc["p_value"] < 0.05, bc  # as clear, but not declared
    lines = report.stderr.splitlines()
    claims = [li for li in lines if " beats " in li]
    assert len(claims) == 1 and claims[0].startswith("a beats c by "), report.stderr
    assert "2 exploratory pairs (not in compare:) tested without correction: report.md shows them; none is claimed" in (
        lines
    )
    text = (out_dir / "report.md").read_text()
    comparisons = text.split("## Comparisons")[1].split("## Pairwise tests")[0]
    assert "The study declares 1 primary comparison (`compare:` in the study file): a vs c." in comparisons
    assert "only they are claimed: a beats c by" in comparisons and "b beats" not in comparisons

    # `study run` takes it as a recorded edit: nothing to launch, exit 0, study.json holds it.
    recorded = p.orch("study", "run", "cp", check=True)
    said = " ".join(recorded.stderr.split())
    assert "compare: every pair -> 1 primary pair (a vs c): recorded" in said and "nothing to launch" in said, said
    assert json.loads((out_dir / "study.json").read_text())["compare"] == [["a", "c"]]
    assert not [li for li in recorded.stderr.splitlines() if li.startswith("launched ")]
    assert "differs" not in p.orch("study", "status", "cp", check=True).stderr
