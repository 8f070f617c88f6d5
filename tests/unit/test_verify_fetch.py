import hashlib
import json

from orchestrator.runner import verify_job


def _job(tmp_path, text=b'{"id": "a"}\n'):
    d = tmp_path / "neg"
    d.mkdir()
    (d / "scores.jsonl").write_bytes(text)
    manifest = {"files": {"scores.jsonl": {"size": len(text), "sha256": hashlib.sha256(text).hexdigest()}}}
    (d / "manifest.json").write_text(json.dumps(manifest))
    return d


def test_intact_job_verifies(tmp_path):
    assert verify_job(_job(tmp_path)) == []


def test_each_kind_of_damage_is_named(tmp_path):
    d = _job(tmp_path)
    (d / "scores.jsonl").write_bytes(b'{"id": "b"}\n')  # same size, other content
    assert verify_job(d) == ["neg/scores.jsonl: sha256 does not match the manifest"]
    (d / "scores.jsonl").write_bytes(b"{")
    assert "size 1 != manifest 12" in verify_job(d)[0]
    (d / "scores.jsonl").unlink()
    assert verify_job(d) == ["neg/scores.jsonl: missing"]
    (d / "manifest.json").unlink()
    assert "no manifest.json" in verify_job(d)[0]
