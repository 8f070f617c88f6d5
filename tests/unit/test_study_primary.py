"""A study's primary comparisons (`compare:`): checked at load, recorded like ensembles (no
run changes), and the family Holm's correction runs over in the report, the only pairs the
report calls a difference; every other pair is exploratory."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List

import pytest
from studyfiles import write_study

from orchestrator.config import studies
from orchestrator.config.project import Project
from orchestrator.errors import ExitCode, OrchError
from orchestrator.results.study_report import MemberRun, write_study_report
from orchestrator.results.study_terminal import summary_lines
from orchestrator.runs import study as running
from orchestrator.runs.study_edits import COMPARE, consequence, edits
from tests.unit.evalruns import make_run

REPO = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- the config


BASE = {
    "base": "smoke",
    "seeds": [0],
    "members": {"gpt2": {"model.kind": "ar"}, "mdlm": {"model.kind": "mdlm"}, "clf": {"model.kind": "classifier"}},
    "ensembles": {"duo": ["gpt2", "mdlm"]},
}


def test_compare_lists_pairs_of_members_or_ensembles_or_everyone_against_one(project):
    write_study(project, {**BASE, "compare": [["gpt2", "clf"], ["duo", "clf"]]})
    study = studies.load(project, "st")
    assert study.compare == [["gpt2", "clf"], ["duo", "clf"]]
    assert study.resolved()["compare"] == [["gpt2", "clf"], ["duo", "clf"]]  # what study.json records
    write_study(project, {**BASE, "compare": {"against": "clf"}})  # every other member (not the ensembles) against it
    assert studies.load(project, "st").compare == [["gpt2", "clf"], ["mdlm", "clf"]]
    write_study(project, BASE)  # none declared: every pair, as before
    assert studies.load(project, "st").compare == [] and studies.load(project, "st").resolved()["compare"] == []


@pytest.mark.parametrize(
    "compare, message",
    [
        ([["gpt2", "bert"]], "key 'compare[0][1]': no member or ensemble named 'bert'"),
        ([["gpt2", "clf"], ["clf", "clf"]], "key 'compare[1]': compares 'clf' with itself"),
        (
            [["gpt2", "clf"], ["clf", "gpt2"]],
            "key 'compare[1]': the pair clf vs gpt2 is compare[0] already (a pair is the same either way round)",
        ),
        ([["gpt2", "clf", "mdlm"]], "key 'compare[0]': expected a pair [a, b]"),
        (["gpt2"], "key 'compare[0]': expected a pair [a, b]"),
        ([["gpt2", {"x": 1}]], "key 'compare[0][1]': expected a member or ensemble name"),
        ([], "key 'compare': expected a list of [a, b] pairs or {against: NAME}"),
        ("gpt2", "key 'compare': expected a list of [a, b] pairs or {against: NAME}"),
        ({"against": "nope"}, "key 'compare.against': no member or ensemble named 'nope'"),
        ({"versus": "clf"}, "key 'compare.versus': the short form is {against: NAME}"),
    ],
)
def test_bad_compare_names_file_key_and_member(project, compare, message):
    path = write_study(project, {**BASE, "compare": compare})
    with pytest.raises(OrchError) as err:
        studies.load(project, "st")
    assert err.value.code == ExitCode.CONFIG
    assert str(path) in err.value.message and message in err.value.message, err.value.message
    if "no member or ensemble" in message:
        assert "members and ensembles: gpt2, mdlm, clf, duo" in (err.value.hint or "")


def test_against_a_lone_member_is_refused(project):
    write_study(
        project, {**BASE, "members": {"gpt2": {"model.kind": "ar"}}, "ensembles": {}, "compare": {"against": "gpt2"}}
    )
    with pytest.raises(OrchError, match="key 'compare.against': no other member to compare with 'gpt2'"):
        studies.load(project, "st")


# --------------------------------------------------------------------------- editing it after launch


def recorded(project):
    write_study(project, BASE)
    doc = running.save_record(project, studies.load(project, "st"))
    for entry in doc["runs"]:
        (project.runs / entry["run_id"]).mkdir(parents=True)  # every run launched
    return doc


def test_a_changed_compare_is_recorded_not_refused_like_an_ensemble(project):
    doc = recorded(project)
    write_study(project, {**BASE, "compare": [["mdlm", "clf"], ["gpt2", "clf"]]})
    study = studies.load(project, "st")
    found = edits(doc, study, running.launched_ids(project, doc))
    assert [(e.text, e.kind, e.runs) for e in found] == [
        ("compare: every pair -> 2 primary pairs (mdlm vs clf, gpt2 vs clf)", COMPARE, [])
    ]
    assert consequence(found[0], "st", in_report=True) == "this report follows the study file"
    assert running.recorded_words(found[0], "st", []).startswith("recorded (no new runs")
    saved = running.save_record(project, study)  # `study run`: nothing launched, study.json takes it
    assert saved["compare"] == [["mdlm", "clf"], ["gpt2", "clf"]]
    # then one pair added (either way round is the same pair), one removed, and back to every pair
    write_study(project, {**BASE, "compare": [["clf", "gpt2"], ["duo", "clf"]]})
    assert [e.text for e in edits(saved, studies.load(project, "st"), set())] == [
        "added primary comparison duo vs clf",
        "removed primary comparison mdlm vs clf",
    ]
    write_study(project, BASE)
    assert [e.text for e in edits(saved, studies.load(project, "st"), set())] == [
        "compare: 2 primary pairs -> every pair"
    ]


def test_the_report_follows_the_files_compare_before_study_run_records_it(project):
    doc = recorded(project)
    said: List[str] = []
    write_study(project, {**BASE, "compare": [["mdlm", "clf"]]})
    record = running.with_file_report_keys(project, doc, said.append)
    assert record["compare"] == [["mdlm", "clf"]] and doc["compare"] == []
    assert "  compare: every pair -> 1 primary pair (mdlm vs clf): this report follows the study file" in said
    # a comparison of a member the study has not recorded yet is left out, and said
    said.clear()
    members = {**BASE["members"], "bert": {"model.kind": "mlm-pll"}}
    write_study(project, {**BASE, "members": members, "compare": [["bert", "clf"], ["gpt2", "clf"]]})
    record = running.with_file_report_keys(project, doc, said.append)
    assert record["compare"] == [["gpt2", "clf"]]
    assert (
        "note: the primary comparison bert vs clf is left out: study st has no member bert yet "
        "(`orch study run st` launches it)"
    ) in said


# --------------------------------------------------------------------------- the family Holm runs over

# 60 texts, 0..29 of class "0" and 30..59 of class "1"; one seed, so each pair is McNemar's
# exact test on the texts exactly one of the two gets right.
WRONG = {
    "gpt2": {0, 1, 2, 3, 5, 6},
    "roberta": set(range(30, 60)),
    "simple-diffusion": {0, 1, 2, 3, 4, *range(10, 20)},
    "mdlm": {0, 1, 2, 3, 4, 7},
    "classifier": {0, 1, 2, 3, 4},
}
PLAN = {
    "name": "plan",
    "base": "imdb-scratch-ar",
    "host": "nigel",
    "seeds": [0],
    "members": {m: {} for m in WRONG},
    "ensembles": {"gpt2-mdlm": ["gpt2", "mdlm"]},
}
PRIMARY = [["gpt2", "classifier"], ["mdlm", "classifier"], ["mdlm", "simple-diffusion"]]


def plan_runs(root: Path) -> List[MemberRun]:
    out = []
    for member, wrong in WRONG.items():
        texts = []
        for i in range(60):
            label = "0" if i < 30 else "1"
            right = 1.0 if label == "0" else -1.0  # score("0") lower (better) for class 0
            margin = -right if i in wrong else right
            texts.append((f"{label}/{i}", label, {"0": (100.0 - 2.0 * margin, 20), "1": (100.0, 20)}))
        run_id = f"plan-{member}-s0"
        out.append(MemberRun(member, 0, run_id, make_run(root, run_id, texts)))
    return out


def by_pair(table: Dict) -> Dict[frozenset, Dict]:
    return {frozenset((p["a"], p["b"])): p for p in table["pairs"]}


def test_a_pair_that_survives_holm_over_three_primary_pairs_is_claimed_only_with_compare(tmp_path):
    runs = plan_runs(tmp_path)
    # mdlm vs simple-diffusion: 10 texts only mdlm gets right, 1 only simple-diffusion: p = 2 * 12 / 2^11
    p_md_sd = 2 * 12 / 2**11
    everyone = write_study_report(tmp_path / "all", PLAN, runs)
    pair = by_pair(everyone)[frozenset(("mdlm", "simple-diffusion"))]
    assert pair["p_value"] == pytest.approx(p_md_sd)
    assert everyone["pairs_tested"] == 15 and everyone["holm"] == {"family": "all", "size": 15}
    assert everyone["compare"] is None and all(p["primary"] for p in everyone["pairs"])
    assert pair["p_holm"] >= 0.05  # over 15 pairs it does not survive
    assert not any(li.startswith("mdlm beats simple-diffusion") for li in summary_lines(everyone))

    declared = write_study_report(tmp_path / "primary", {**PLAN, "compare": PRIMARY}, runs)
    pairs = by_pair(declared)
    assert declared["holm"] == {"family": "primary", "size": 3} and declared["compare"] == PRIMARY
    assert declared["pairs_tested"] == 15  # every pair is still tested
    pair = pairs[frozenset(("mdlm", "simple-diffusion"))]
    assert (pair["a"], pair["b"], pair["primary"]) == ("mdlm", "simple-diffusion", True)  # as declared
    assert pair["p_holm"] == pytest.approx(3 * p_md_sd) and pair["p_holm"] < 0.05  # the smallest of three
    # the exploratory pairs: unadjusted p only, tiny ones included, and never claimed
    roberta = pairs[frozenset(("roberta", "classifier"))]
    assert roberta["primary"] is False and roberta["p_holm"] is None and roberta["p_value"] < 1e-4
    assert sum(p["primary"] for p in declared["pairs"]) == 3

    lines = summary_lines(declared)
    claims = [li for li in lines if " beats " in li]
    assert claims == [f"mdlm beats simple-diffusion by 15.00 pp (95% CI {claims[0].split('95% CI ')[1]}"]
    assert "p (Holm) 0.0352)" in claims[0]
    assert (
        "12 exploratory pairs (not in compare:) tested without correction: report.md shows them; none is claimed"
        in (lines)
    )
    # report.md: the Comparisons paragraph names the primary pairs and the correction, and claims only them
    report = (tmp_path / "primary" / "report.md").read_text()
    comparisons = report.split("## Comparisons")[1].split("## Pairwise tests")[0]
    assert (
        "The study declares 3 primary comparisons (`compare:` in the study file): gpt2 vs classifier, mdlm vs "
        "classifier, mdlm vs simple-diffusion. Holm's correction runs over these (3 tested), and only they are "
        "claimed: mdlm beats simple-diffusion by 15.00 pp"
    ) in comparisons
    assert "roberta" not in comparisons and "The other 12 pairs are exploratory" in comparisons
    tests = report.split("## Pairwise tests")[1]
    primary, exploratory = tests.split("**Exploratory comparisons**")
    assert "| mdlm | simple-diffusion |" in primary and "roberta" not in primary
    assert "| roberta | classifier |" in exploratory and "p (Holm)" not in exploratory
    # table.csv: a line per pair, whether it is primary and the family Holm ran over
    with open(tmp_path / "primary" / "table.csv", newline="") as f:
        lines_csv = [c for c in csv.DictReader(f) if c["type"] == "pair"]
    assert len(lines_csv) == 15
    (md,) = [c for c in lines_csv if (c["row"], c["vs"]) == ("mdlm", "simple-diffusion")]
    assert (md["primary"], md["holm_family"], md["holm_family_size"]) == ("true", "primary", "3")
    assert float(md["p_holm"]) == pytest.approx(3 * p_md_sd) and float(md["p_value"]) == pytest.approx(p_md_sd)
    (rc,) = [c for c in lines_csv if (c["row"], c["vs"]) == ("roberta", "classifier")]
    assert (rc["primary"], rc["p_holm"]) == ("false", "") and float(rc["p_value"]) < 1e-4


def test_no_primary_difference_is_said_as_such_and_exploratory_ones_stay_unclaimed(tmp_path):
    runs = plan_runs(tmp_path)
    table = write_study_report(tmp_path / "out", {**PLAN, "compare": [["gpt2", "classifier"]]}, runs)
    lines = summary_lines(table)
    assert not any(" beats " in li for li in lines)  # roberta's tiny p against everyone: exploratory
    assert "no primary pair differs at p (Holm) < 0.05 (1 primary pair tested)" in lines
    comparisons = (tmp_path / "out" / "report.md").read_text().split("## Comparisons")[1]
    assert "and only they are claimed: none differs at p (Holm) < 0.05." in comparisons


def test_a_primary_pair_without_results_is_said_untested(tmp_path):
    runs = [r for r in plan_runs(tmp_path) if r.member != "mdlm"]
    runs.append(MemberRun("mdlm", 0, "plan-mdlm-s0", None, "failed: exit code 1"))
    study = {**PLAN, "ensembles": {}, "compare": PRIMARY}
    table = write_study_report(tmp_path / "out", study, runs)
    untested = [p for p in table["pairs"] if p["p_value"] is None]
    assert {(p["a"], p["b"]) for p in untested} == {("mdlm", "classifier"), ("mdlm", "simple-diffusion")}
    assert table["holm"] == {"family": "primary", "size": 1}  # the one primary pair tested
    lines = summary_lines(table)
    assert "primary pair mdlm vs simple-diffusion: not tested (no seed with results from both)" in lines
    report = (tmp_path / "out" / "report.md").read_text()
    assert "Not tested (no seed with results from both): mdlm vs classifier, mdlm vs simple-diffusion." in report


def test_without_compare_the_report_says_holm_ran_over_every_pair(tmp_path):
    table = write_study_report(tmp_path / "out", PLAN, plan_runs(tmp_path))
    comparisons = (tmp_path / "out" / "report.md").read_text().split("## Comparisons")[1].split("##")[0]
    assert "No primary comparisons were declared (`compare:` in the study file)" in comparisons
    assert "Holm's correction runs over all 15 pairs tested" in comparisons
    claims = [li for li in summary_lines(table) if " beats " in li]
    assert claims and all(c.split(" (95% CI")[0] in comparisons for c in claims)  # the same claims in both


def test_a_record_with_a_bad_compare_is_refused(tmp_path):
    with pytest.raises(OrchError, match=r"primary comparison \['gpt2', 'bert'\]: no member or ensemble 'bert'") as err:
        write_study_report(tmp_path, {**PLAN, "compare": [["gpt2", "bert"]]}, [])
    assert err.value.code == ExitCode.CONFIG


def test_the_shipped_studies_declare_their_primary_comparisons():
    plan = studies.load(Project(REPO), "seed-plan")
    families = ["gpt2", "roberta", "simple-diffusion", "mdlm"]
    assert plan.compare == [[f, "classifier"] for f in families] + [["mdlm", "simple-diffusion"]]
    assert studies.load(Project(REPO), "smoke-study").compare == [["gpt2", "classifier"], ["mdlm", "classifier"]]
