"""Verifying a fetched job against its manifest (orchestrator/runs/fetch.py: verify_job)."""

import hashlib
import json
import os

from orchestrator.runs.fetch import verify_job


def _job(tmp_path, text=b'{"id": "a"}\n', **manifest_extra):
    d = tmp_path / "neg"
    d.mkdir()
    (d / "scores.jsonl").write_bytes(text)
    manifest = {
        "files": {"scores.jsonl": {"size": len(text), "sha256": hashlib.sha256(text).hexdigest()}},
        "n_test": 1,
        "classes": ["0", "1"],
        **manifest_extra,
    }
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d


def test_intact_job_verifies(tmp_path):
    assert verify_job(_job(tmp_path), "class") == []


def test_each_kind_of_damage_is_named(tmp_path):
    d = _job(tmp_path)
    (d / "scores.jsonl").write_bytes(b'{"id": "b"}\n')  # same size, other content
    assert verify_job(d, "class") == ["neg/scores.jsonl: sha256 does not match the manifest"]
    (d / "scores.jsonl").write_bytes(b"{")
    assert "size 1 != manifest 12" in verify_job(d, "class")[0]
    (d / "scores.jsonl").unlink()
    assert verify_job(d, "class") == ["neg/scores.jsonl: missing"]
    os.symlink("/etc/hostname", d / "scores.jsonl")
    assert verify_job(d, "class") == ["neg/scores.jsonl: not a regular file"]
    (d / "manifest.json").unlink()
    assert "no manifest.json" in verify_job(d, "class")[0]


def test_the_manifest_must_list_what_the_role_produces(tmp_path):
    d = _job(tmp_path)
    manifest = json.loads((d / "manifest.json").read_text())
    manifest["files"] = {}
    (d / "manifest.json").write_text(json.dumps(manifest))
    assert verify_job(d, "class") == ["neg: manifest.json does not list scores.jsonl, which a class job must produce"]
    assert verify_job(d, "pretrain") == []


def test_a_manifest_of_the_wrong_shape_is_named_not_a_crash(tmp_path):
    d = _job(tmp_path)
    for text, words in (
        ("[1]", "expected a JSON object"),
        ('{"files": [1]}', "'files' must be an object"),
        ('{"files": {"../x": {"size": 1, "sha256": "00"}}}', "'../x'"),
        ('{"files": {}, "n_test": "5"}', "'n_test' must be an integer"),
        ("{" * 100000, "not valid JSON"),
    ):
        (d / "manifest.json").write_text(text)
        problems = verify_job(d, "class")
        assert len(problems) == 1 and problems[0].startswith("neg: bad manifest.json") and words in problems[0], (
            problems
        )
