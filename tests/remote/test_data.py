"""remote/data.py: formats, gzip, errors with line numbers, the deterministic split."""

from __future__ import annotations

import gzip
import json
import random

import pytest

from remote.data import DataError, clean_html, load_splits, load_unlabelled, read_file
from remote.spec import DataSpec


def write_jsonl(path, rows, gz=False):
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text)
    return str(path)


def labelled(n_per_class=50, classes=(0, 1)):
    return [
        {"id": f"c{c}/{i}", "text": f"text {i} of class {c}", "label": c} for i in range(n_per_class) for c in classes
    ]


def test_jsonl_labels_are_strings_and_ids_fall_back_to_file_line(tmp_path):
    path = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"id": "a", "text": "one<br />two <i>three</i> 1 < 2", "label": 1},
            {"text": "no id", "label": "neg"},
            "",  # blank lines are skipped but still counted
            {"text": "float label", "label": 2.5},
        ],
    )
    rows = read_file(path, DataSpec(path=path))
    assert [r.label for r in rows] == ["1", "neg", "2.5"]
    assert [r.id for r in rows] == ["a", "d.jsonl:2", "d.jsonl:4"]
    assert rows[0].text == "one\ntwo three 1 < 2"
    raw = read_file(path, DataSpec(path=path, clean_html=False))
    assert raw[0].text == "one<br />two <i>three</i> 1 < 2"


def test_gzip_and_custom_fields(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl.gz", [{"review": "good", "y": "pos", "key": 7}], gz=True)
    rows = read_file(path, DataSpec(path=path, text_field="review", label_field="y", id_field="key"))
    assert rows[0].text == "good" and rows[0].label == "pos" and rows[0].id == "7"


def test_csv_with_quoted_newlines_and_tsv(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text('id,text,label\n1,"multi\nline, text",pos\n2,plain,neg\n')
    rows = read_file(str(p), DataSpec(path=str(p)))
    assert [(r.id, r.text, r.label) for r in rows] == [("1", "multi\nline, text", "pos"), ("2", "plain", "neg")]
    t = tmp_path / "d.tsv.gz"
    with gzip.open(t, "wt") as f:
        f.write("text\tlabel\nhello\t3\n")
    rows = read_file(str(t), DataSpec(path=str(t)))
    assert rows[0].label == "3" and rows[0].id == "d.tsv.gz:2"


@pytest.mark.parametrize(
    "lines, message",
    [
        (['{"text": "a", "label": 0}', '{"text": "b", "label": 1}', '{"text": broken'], r"d\.jsonl:3: not valid JSON"),
        (['{"text": "a", "label": 0}', '{"label": 1}'], r"d\.jsonl:2: missing field 'text'"),
        (['{"text": "a"}'], r"d\.jsonl:1: missing field 'label'"),
        (['{"text": "a", "label": null}'], r"d\.jsonl:1: field 'label' is empty"),
        (["[1, 2]"], r"d\.jsonl:1: expected a JSON object"),
        (['{"text": 5, "label": 0}'], r"d\.jsonl:1: field 'text' is not a string"),
        (['{"id": "x", "text": "a", "label": 0}', '{"id": "x", "text": "b", "label": 1}'], "duplicate id 'x'"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path, lines, message):
    path = write_jsonl(tmp_path / "d.jsonl", lines)
    with pytest.raises(DataError, match=message):
        read_file(path, DataSpec(path=path))


def test_csv_errors_name_file_and_line(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text('text,label\nok,1\n"two\nlines",0\ntoo,many,fields\n')
    with pytest.raises(DataError, match=r"d\.csv:5: 3 fields, the header has 2"):
        read_file(str(p), DataSpec(path=str(p)))
    q = tmp_path / "e.csv"
    q.write_text("body,label\nok,1\n")
    with pytest.raises(DataError, match=r"e\.csv:1: missing column 'text'"):
        read_file(str(q), DataSpec(path=str(q)))
    with pytest.raises(DataError, match="not found"):
        read_file(str(tmp_path / "nope.jsonl"), DataSpec())


def test_split_is_stratified_deterministic_and_independent_of_file_order(tmp_path):
    rows = labelled(50)
    a = write_jsonl(tmp_path / "a.jsonl", rows)
    shuffled = list(rows)
    random.Random(3).shuffle(shuffled)
    b = write_jsonl(tmp_path / "b.jsonl", shuffled)
    sa = load_splits(DataSpec(path=a, test_fraction=0.2, seed=7), log=lambda m: None)
    sa2 = load_splits(DataSpec(path=a, test_fraction=0.2, seed=7), log=lambda m: None)
    sb = load_splits(DataSpec(path=b, test_fraction=0.2, seed=7), log=lambda m: None)
    assert sa == sa2
    assert {e.id for e in sa.test} == {e.id for e in sb.test}
    assert sa.classes == ["0", "1"]
    assert sorted(e.label for e in sa.test) == ["0"] * 10 + ["1"] * 10
    assert not {e.id for e in sa.train} & {e.id for e in sa.test}
    other = load_splits(DataSpec(path=a, test_fraction=0.2, seed=8), log=lambda m: None)
    assert {e.id for e in other.test} != {e.id for e in sa.test}


def test_caps_val_split_test_path_and_classes(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", labelled(40, classes=(0, 1, 2)))
    test = write_jsonl(tmp_path / "t.jsonl", [{"id": f"t{i}", "text": "x", "label": i % 3} for i in range(30)])
    s = load_splits(
        DataSpec(path=path, test_path=test, val_fraction=0.25, max_per_class=20, max_test=12, classes=["2", "0"]),
        log=lambda m: None,
    )
    assert s.classes == ["2", "0"]  # the configured order is kept
    assert len(s.train_of("0")) == 20 and len(s.train_of("2")) == 20 and not s.train_of("1")
    assert len(s.val_of("0")) == 10  # 25% of 40, taken before the cap
    assert len(s.test) == 12 and sorted(e.label for e in s.test) == ["0"] * 6 + ["2"] * 6
    with pytest.raises(DataError, match="no training texts with label '9'"):
        load_splits(DataSpec(path=path, classes=["0", "9"]), log=lambda m: None)


def test_unlabelled_ignores_labels_and_caps(tmp_path):
    path = write_jsonl(tmp_path / "u.jsonl", [{"text": f"u{i}"} for i in range(30)])
    rows, dropped = load_unlabelled(DataSpec(path="x", unlabelled_path=path, max_unlabelled=10), test=[])
    assert len(rows) == 10 and all(r.label is None for r in rows) and dropped == 0
    assert rows == load_unlabelled(DataSpec(path="x", unlabelled_path=path, max_unlabelled=10), test=[])[0]


def test_clean_html():
    assert clean_html("a<br/>b<BR />c<p class='x'>d</p> &amp; x<3") == "a\nb\ncd & x<3"


def test_hf_source_through_a_stand_in_datasets_module(monkeypatch):
    """source: hf calls datasets.load_dataset(name, split=...) (faked: no internet here)."""
    import sys
    import types

    calls = []
    splits = {
        "train": [{"text": f"t{i}", "label": i % 2} for i in range(20)],
        "test": [{"text": f"s{i}", "label": i % 2} for i in range(6)],
        "unsupervised": [{"text": f"u{i}", "label": -1} for i in range(4)],
    }

    def load_dataset(name, split):
        calls.append((name, split))
        return splits[split]

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    spec = DataSpec(source="hf", path="stanfordnlp/imdb")
    s = load_splits(spec, log=lambda m: None)
    assert calls == [("stanfordnlp/imdb", "train"), ("stanfordnlp/imdb", "test")]
    assert len(s.train) == 20 and len(s.test) == 6 and s.classes == ["0", "1"]
    assert s.test[0].id == "stanfordnlp/imdb/test:0"
    assert [e.text for e in load_unlabelled(spec)[0]] == ["u0", "u1", "u2", "u3"]
    # an empty hf_test_split falls back to the seeded split of the train split
    s = load_splits(DataSpec(source="hf", path="x", hf_test_split="", test_fraction=0.25), log=lambda m: None)
    assert len(s.test) == 6 and len(s.train) == 14


def test_hf_source_without_datasets_is_a_clear_error(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "datasets", None)  # import raises ImportError
    with pytest.raises(DataError, match="pip install datasets"):
        load_splits(DataSpec(source="hf", path="imdb"), log=lambda m: None)
