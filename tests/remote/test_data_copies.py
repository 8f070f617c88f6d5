"""remote/data.py: copies of one text never straddle the split (the ML review found 38 of
IMDB's 5,000 seeded test texts with a copy in training when the split hashed the id)."""

from __future__ import annotations

import json

from remote.data import load_splits, load_unlabelled, text_key
from remote.spec import DataSpec

QUIET = {"log": lambda m: None}


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def with_copies(n=60):
    """n texts per class; every third one a second time, under another id and spacing."""
    rows = [{"id": f"c{c}/{i}", "text": f"review {i} of class {c}", "label": c} for i in range(n) for c in (0, 1)]
    rows += [
        {"id": f"copy{c}/{i}", "text": f"  review {i}\nof class {c} ", "label": c}
        for i in range(0, n, 3)
        for c in (0, 1)
    ]
    return rows


def keys(examples):
    return {text_key(e.text) for e in examples}


def test_copies_of_a_text_fall_on_one_side_of_the_test_and_val_splits(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", with_copies())
    for seed in range(5):
        s = load_splits(DataSpec(path=path, test_fraction=0.25, val_fraction=0.2, seed=seed), **QUIET)
        assert not keys(s.train) & keys(s.test) and not keys(s.val) & keys(s.test)
        assert not keys(s.train) & keys(s.val)
        # still stratified, to within the size of one group of copies
        for c in ("0", "1"):
            assert abs(sum(e.label == c for e in s.test) - 20) <= 1
        assert s.duplicates == {"duplicate_texts": 40, "conflicting_label_texts": 0}
        assert s == load_splits(DataSpec(path=path, test_fraction=0.25, val_fraction=0.2, seed=seed), **QUIET)


def test_a_text_under_two_labels_is_never_tested(tmp_path):
    rows = with_copies(20) + [{"id": "both1", "text": "review 1 of class 0", "label": 1}]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    for seed in range(8):
        s = load_splits(DataSpec(path=path, test_fraction=0.5, seed=seed), **QUIET)
        assert "review 1 of class 0" not in keys(s.test)
        assert {e.id for e in s.train} >= {"c0/1", "both1"}  # both copies train their class
        assert s.duplicates["conflicting_label_texts"] == 2


def test_a_test_file_of_its_own_drops_its_copies_from_training(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", with_copies(10))
    test = write_jsonl(tmp_path / "test.jsonl", [{"id": "t0", "text": "review 3  of class 1", "label": 1}])
    s = load_splits(DataSpec(path=train, test_path=test), **QUIET)
    assert "review 3 of class 1" not in keys(s.train)
    assert s.duplicates["train_copies_of_test_dropped"] == 2  # c1/3 and copy1/3


def test_unlabelled_copies_of_test_texts_are_left_out(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", with_copies(30))
    spec = DataSpec(path=path, test_fraction=0.3, seed=1)
    test = load_splits(spec, **QUIET).test
    unlabelled = [{"text": e.text.upper()} for e in test[:3]] + [{"text": "  " + e.text} for e in test]
    unlabelled += [{"text": f"fresh {i}"} for i in range(5)]
    spec.unlabelled_path = write_jsonl(tmp_path / "u.jsonl", unlabelled)
    rows, dropped = load_unlabelled(spec)
    assert dropped == len(test) and not keys(rows) & keys(test)
    assert len(rows) == 8  # case counts: an upper-cased copy is another text


def _one_text_class(n_copies):
    """Class 0: 12 different texts; class 1: n_copies copies of one text (ids differ)."""
    rows = [{"id": f"c0/{i}", "text": f"review {i} of class 0", "label": 0} for i in range(12)]
    rows += [{"id": f"same/{i}", "text": "the only review" + " " * i, "label": 1} for i in range(n_copies)]
    return rows


def test_a_class_of_copies_of_one_text_keeps_its_training_texts(tmp_path):
    """Copies of one text go to one side together, and a group that would take a class's
    last training text stays in training: held out whole, the class would have no model
    (no class job) and its test texts no right answer."""
    for n_copies in (2, 3, 5):
        path = write_jsonl(tmp_path / f"d{n_copies}.jsonl", _one_text_class(n_copies))
        for test_fraction in (0.1, 0.3, 0.5, 0.9):
            for val_fraction in (0.0, 0.2, 0.5, 0.9):
                for seed in range(3):
                    spec = DataSpec(path=path, test_fraction=test_fraction, val_fraction=val_fraction, seed=seed)
                    s = load_splits(spec, **QUIET)
                    assert s.classes == ["0", "1"]
                    assert [e.id for e in s.train if e.label == "1"] == [f"same/{i}" for i in range(n_copies)]
                    assert not [e for e in s.test + s.val if e.label == "1"]
                    assert any(e.label == "0" for e in s.train) and any(e.label == "0" for e in s.test)


def test_a_class_of_two_texts_never_holds_both_out(tmp_path):
    """Two texts of three copies each: the first group held out fills the fraction or not,
    the second never goes with it, whatever the fraction and seed."""
    rows = [{"id": f"c0/{i}", "text": f"review {i} of class 0", "label": 0} for i in range(12)]
    rows += [{"id": f"{t}/{i}", "text": f"text {t}", "label": 1} for t in "ab" for i in range(3)]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    for test_fraction in (0.3, 0.5, 0.9):
        for val_fraction in (0.0, 0.5, 0.9):
            for seed in range(6):
                spec = DataSpec(path=path, test_fraction=test_fraction, val_fraction=val_fraction, seed=seed)
                s = load_splits(spec, **QUIET)
                train = keys(e for e in s.train if e.label == "1")
                assert len(train) == 1 and len([e for e in s.train if e.label == "1"]) == 3
                assert not train & keys(s.test + s.val)
