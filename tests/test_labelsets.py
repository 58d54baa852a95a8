"""Saved label sets (plain data kept in the visitor's browser) and label files."""

import pytest

from clipdemo.core.labels import MAX_FILE_BYTES, LabelSet, PromptError, read_label_file
from clipdemo.core.words import Refusal
from clipdemo.ui.tabs import saved_sets


def _set(*labels, template="{}"):
    return LabelSet.of(labels, [template])


def test_save_load_delete_and_names():
    store = saved_sets.save(None, "  my  pets ", _set("cat", "dog", template="a photo of a {}"))
    store = saved_sets.save(store, "Cars", _set("sedan", "truck", template="a {}"))
    assert saved_sets.names(store) == ["Cars", "my pets"]
    assert store["sets"]["my pets"] == {"labels": ["cat", "dog"], "templates": ["a photo of a {}"]}
    assert LabelSet.from_json(store["sets"]["my pets"]) == _set("cat", "dog", template="a photo of a {}")
    store = saved_sets.delete(store, "Cars")
    assert saved_sets.names(store) == ["my pets"]
    with pytest.raises(Refusal, match="There is no saved set named 'Cars'"):
        saved_sets.delete(store, "Cars")


def test_refusals_name_the_limit():
    with pytest.raises(Refusal, match="Give the set a name first"):
        saved_sets.save(None, "   ", _set("a", "b"))
    with pytest.raises(Refusal, match="at most 60 characters"):
        saved_sets.save(None, "x" * 61, _set("a", "b"))
    store = None
    for i in range(saved_sets.MAX_SETS):
        store = saved_sets.save(store, f"set {i}", _set("a", "b"))
    with pytest.raises(Refusal, match="already keeps 20 sets"):
        saved_sets.save(store, "one more", _set("a", "b"))
    assert saved_sets.save(store, "set 3", _set("c", "d"))["sets"]["set 3"]["labels"] == ["c", "d"]  # replacing


def test_what_comes_back_from_a_browser_is_checked():
    tampered = {"active": {"labels": "cat", "templates": []}, "sets": {
        "ok": {"labels": ["a", "b"], "templates": ["{}"]}, "bad": {"labels": [1, 2], "templates": ["{}"]},
        "": {"labels": ["a"], "templates": ["{}"]}, "huge": {"labels": ["a"] * 501, "templates": ["{}"]}, "x": 3}}
    assert saved_sets.clean(tampered) == {"active": None, "sets": {"ok": {"labels": ["a", "b"], "templates": ["{}"]}}}
    assert saved_sets.clean("garbage") == saved_sets.empty() == saved_sets.clean(None)
    assert saved_sets.remember(None, _set("a", "b"))["active"] == {"labels": ["a", "b"], "templates": ["{}"]}


def test_label_files(tmp_path):
    txt = tmp_path / "l.txt"
    txt.write_text(_set("red car", "lion").label_text() + "\n", encoding="utf-8")
    assert read_label_file(txt).splitlines() == ["red car", "lion"]
    csv = tmp_path / "l.csv"
    csv.write_text('label,notes\n"sea, lion",x\ntiger,y\n\n', encoding="utf-8")
    assert read_label_file(csv).splitlines() == ["sea, lion", "tiger"]
    big = tmp_path / "big.txt"
    big.write_bytes(b"a\n" * (MAX_FILE_BYTES // 2 + 1))
    with pytest.raises(PromptError, match="at most 256 KB"):
        read_label_file(big)
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"\xff\xfe\x00lion")
    with pytest.raises(PromptError, match="must be UTF-8 text"):
        read_label_file(bad)
