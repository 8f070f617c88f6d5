"""metrics.json "data" and report.md: how the host's split treated copies of one text."""

from __future__ import annotations

from types import SimpleNamespace

from orchestrator.results.evaluate import data_facts
from orchestrator.results.report import split_copies


def run_with(*manifests):
    return SimpleNamespace(jobs=[SimpleNamespace(manifest=m) for m in manifests])


def test_data_facts_merge_the_manifests_and_take_only_counts():
    run = run_with(
        None,
        {"data": {"duplicate_texts": 98, "conflicting_label_texts": 0}},
        {"data": {"unlabelled_copies_of_test_dropped": 86, "duplicate_texts": 5}},
        {"data": {"bad": -1, "worse": True, "text": "x"}},
        {"data": ["not", "a", "dict"]},
    )
    assert data_facts(run) == {
        "duplicate_texts": 98,
        "conflicting_label_texts": 0,
        "unlabelled_copies_of_test_dropped": 86,
    }
    assert data_facts(run_with({"files": {}})) == {}


def test_the_report_names_each_count_and_says_nothing_for_older_runs():
    lines = "\n".join(split_copies({"duplicate_texts": 98, "unlabelled_copies_of_test_dropped": 86}))
    assert "| 98 | labelled texts that are copies of another" in lines
    assert "| 86 | unlabelled texts left out of pretraining" in lines
    assert split_copies({}) == []
