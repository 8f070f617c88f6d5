"""Data files as users really have them: spreadsheet CSVs, empty reviews."""

from remote.data import read_file
from remote.spec import DataSpec


def test_csv_with_byte_order_mark(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufefftext,label\ngood film,1\nbad film,0\n".encode("utf-8"))
    rows = read_file(str(path), DataSpec())
    assert [(r.text, r.label) for r in rows] == [("good film", "1"), ("bad film", "0")]


def test_jsonl_with_byte_order_mark(tmp_path):
    """An editor's UTF-8 BOM before the first line is no JSON error (a BOM later is still one)."""
    path = tmp_path / "bom.jsonl"
    path.write_bytes('\ufeff{"text": "good film", "label": 1}\n{"text": "bad film", "label": 0}\n'.encode("utf-8"))
    rows = read_file(str(path), DataSpec())
    assert [(r.text, r.label) for r in rows] == [("good film", "1"), ("bad film", "0")]


def test_empty_and_markup_only_texts_are_skipped_with_a_note(tmp_path, capsys):
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"id": "a", "text": "fine", "label": 0}\n{"id": "b", "text": "", "label": 1}\n'
        '{"id": "c", "text": "<br /><br />", "label": 1}\n{"id": "d", "text": "ok", "label": 1}\n'
    )
    rows = read_file(str(path), DataSpec())
    assert [r.id for r in rows] == ["a", "d"]
    assert "skipped 2 empty text(s)" in capsys.readouterr().err
