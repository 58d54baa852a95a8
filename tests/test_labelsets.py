"""Saved label sets (plain data kept in the visitor's browser) and label files."""

import pytest

from clipdemo import labelsets
from clipdemo.i18n import Refusal


def test_save_load_delete_and_names():
    store = labelsets.save(None, "  my  pets ", ("cat", "dog"), ("a photo of a {}",))
    store = labelsets.save(store, "Cars", ("sedan", "truck"), ("a {}",))
    assert labelsets.names(store) == ["Cars", "my pets"]
    assert store["sets"]["my pets"] == {"labels": ["cat", "dog"], "templates": ["a photo of a {}"]}
    store = labelsets.delete(store, "Cars")
    assert labelsets.names(store) == ["my pets"]
    with pytest.raises(Refusal, match="There is no saved set named 'Cars'"):
        labelsets.delete(store, "Cars")


def test_refusals_name_the_limit():
    with pytest.raises(Refusal, match="Give the set a name first"):
        labelsets.save(None, "   ", ("a", "b"), ("{}",))
    with pytest.raises(Refusal, match="at most 60 characters"):
        labelsets.save(None, "x" * 61, ("a", "b"), ("{}",))
    store = None
    for i in range(labelsets.MAX_SETS):
        store = labelsets.save(store, f"set {i}", ("a", "b"), ("{}",))
    with pytest.raises(Refusal, match="already keeps 20 sets"):
        labelsets.save(store, "one more", ("a", "b"), ("{}",))
    assert labelsets.save(store, "set 3", ("c", "d"), ("{}",))["sets"]["set 3"]["labels"] == ["c", "d"]  # replacing


def test_what_comes_back_from_a_browser_is_checked():
    tampered = {"active": {"labels": "cat", "templates": []}, "sets": {
        "ok": {"labels": ["a", "b"], "templates": ["{}"]}, "bad": {"labels": [1, 2], "templates": ["{}"]},
        "": {"labels": ["a"], "templates": ["{}"]}, "huge": {"labels": ["a"] * 501, "templates": ["{}"]}, "x": 3}}
    assert labelsets.clean(tampered) == {"active": None, "sets": {"ok": {"labels": ["a", "b"], "templates": ["{}"]}}}
    assert labelsets.clean("garbage") == labelsets.empty() == labelsets.clean(None)
    assert labelsets.remember(None, ("a", "b"), ("{}",))["active"] == {"labels": ["a", "b"], "templates": ["{}"]}


def test_label_files(tmp_path):
    txt = tmp_path / "l.txt"
    txt.write_text(labelsets.as_txt(("red car", "lion")), encoding="utf-8")
    assert labelsets.label_file_text(txt).splitlines() == ["red car", "lion"]
    csv = tmp_path / "l.csv"
    csv.write_text('label,notes\n"sea, lion",x\ntiger,y\n\n', encoding="utf-8")
    assert labelsets.label_file_text(csv).splitlines() == ["sea, lion", "tiger"]
    (tmp_path / "l.json").write_text("[]")
    with pytest.raises(Refusal, match="must be .txt or .csv, not '.json'"):
        labelsets.label_file_text(tmp_path / "l.json")
    big = tmp_path / "big.txt"
    big.write_bytes(b"a\n" * (labelsets.MAX_FILE_BYTES // 2 + 1))
    with pytest.raises(Refusal, match="at most 256 KB"):
        labelsets.label_file_text(big)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00lion")
    with pytest.raises(Refusal, match="must be UTF-8 text"):
        labelsets.label_file_text(bad)
