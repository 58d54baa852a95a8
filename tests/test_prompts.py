"""Label sets: parsing and checking, each bad input a PromptError naming the item; the one type's forms."""

import pytest

from clipdemo.core.labels import (CIFAR100_CLASSES, CIFAR_TEMPLATES, LABEL_PRESETS, MAX_LABELS, TEMPLATE_SETS,
                                  LabelSet, PromptError, fill, parse_label_text, token_count)

A_PHOTO = ["a photo of a {}"]


def test_presets_are_data_with_expected_sizes():
    assert len(CIFAR100_CLASSES) == 100 and len(set(CIFAR100_CLASSES)) == 100
    assert [c for c in CIFAR100_CLASSES if "_" in c] == [
        "aquarium_fish", "lawn_mower", "maple_tree", "oak_tree", "palm_tree", "pickup_truck", "pine_tree",
        "sweet_pepper", "willow_tree"]
    assert "lawn mower" in LABEL_PRESETS["cifar100-paper"].items
    assert len(LABEL_PRESETS["cifar10"].items) == 10
    assert len(LABEL_PRESETS["cifar100-coarse"].items) == 20
    assert TEMPLATE_SETS["single"].items == ("a photo of a {}",)
    assert len(CIFAR_TEMPLATES) == 18 and all(t.count("{}") == 1 for t in CIFAR_TEMPLATES)
    with pytest.raises(PromptError, match="choose one of: cifar100, cifar100-paper"):
        LabelSet.preset("imagenet")
    with pytest.raises(PromptError, match="Unknown template set 'x'; choose one of: single, cifar18"):
        LabelSet.preset("cifar10", "x")


def test_parse_label_text_lines_and_commas():
    assert parse_label_text("cat\n\n dog \nbird\n") == ["cat", " dog ", "bird"]
    assert parse_label_text("cat, dog,bird,") == ["cat", " dog", "bird"]
    assert parse_label_text("a,,b") == ["a", "", "b"]


def test_labels_are_normalised_and_duplicates_dropped_and_recorded():
    out = LabelSet.of(["  Red   fox ", "dog", "red fox", "DOG", "e\u0301clair"], A_PHOTO)
    assert out.labels == ("Red fox", "dog", "\u00e9clair")  # NFC: e + combining acute -> é
    assert out.dropped == ("red fox", "DOG")
    assert out == LabelSet.of(["Red fox", "dog", "éclair"], A_PHOTO) and out.dropped != ()  # equal by content


@pytest.mark.parametrize("labels, message", [
    ([], "at least 2 different labels (got 0)"),
    (["cat"], "at least 2 different labels (got 1)"),
    (["cat", "  ", "dog"], "Label 2 is blank"),
    (["cat", "dog\x00"], "Label 2 contains control"),
    (["cat", "x" * 201], "Label 2 is 201 characters long"),
    (["cat", 7], "Label 2 is not text"),
    (["cat", ["dog"]], "Label 2 is not text"),  # unhashable: refused before the memo, not a TypeError
    (["cat", {"a": 1}], "Label 2 is not text"),
    ([f"l{i}" for i in range(MAX_LABELS + 1)], f"Too many labels: {MAX_LABELS + 1}"),
])
def test_label_errors(labels, message):
    with pytest.raises(PromptError) as err:
        LabelSet.of(labels, A_PHOTO)
    assert message in str(err.value)


def test_duplicates_can_be_an_error():
    with pytest.raises(PromptError, match=r"Label 3 \('Cat'\) repeats label 1"):
        LabelSet.of(["cat", "dog", "Cat"], A_PHOTO, duplicates="error")


@pytest.mark.parametrize("templates, message", [
    (["a photo"], "Template 1 ('a photo') must contain exactly one {}"),
    (["a {} and {}"], "(found 2)"),
    (["ok {}", " "], "Template 2 is blank"),
    ([], "at least one template"),
])
def test_template_errors(templates, message):
    with pytest.raises(PromptError) as err:
        LabelSet.of(["cat", "dog"], templates)
    assert message in str(err.value)


def test_fill_is_plain_substitution_not_format():
    assert fill("a photo of a {}", "{0.__class__} {x}") == "a photo of a {0.__class__} {x}"
    assert LabelSet.of(["cat", "dog"], ["{x} photo of a {}"]).templates == ("{x} photo of a {}",)


def test_prompt_over_77_tokens_is_named_by_position():
    long_label = " ".join(["x"] * 80)  # 159 characters (within the limit), 86 tokens in its prompt
    with pytest.raises(PromptError, match="label 2 is 86 tokens long; CLIP reads at most 77"):
        LabelSet.of(("cat", long_label), ("a photo of a {}",))
    with pytest.raises(PromptError, match="label 2 with template 2"):
        LabelSet.of(("a", " ".join(["w"] * 70)), ("{}", "a very very very very long photo of a {}"))


def test_token_count_and_the_sets_cost_match_clip_tokenize():
    import clip

    text = "a photo of a lawn mower"
    assert token_count(text) == int((clip.tokenize(text)[0] != 0).sum())
    s = LabelSet.of(["cat", "lawn mower"], ["a photo of a {}", "{}"])
    by_hand = sum(int((clip.tokenize(p)[0] != 0).sum()) for p in ("a photo of a cat", "cat", "a photo of a lawn mower",
                                                                   "lawn mower"))
    assert s.cost == by_hand and s.prompts() == ["a photo of a cat", "cat", "a photo of a lawn mower", "lawn mower"]


def test_the_forms_of_a_set_read_back():
    """Editors' text, JSON (a browser's storage) and link fields: each form reads back to the same set."""
    s = LabelSet.of(["cat", "dog"], ["a sketch of a {}"])
    assert LabelSet.from_text(s.label_text(), s.template_text()) == s
    assert LabelSet.from_json(s.json()) == s and s.json() == {"labels": ["cat", "dog"], "templates": ["a sketch of a {}"]}
    assert s.query() == {"labels": "cat,dog", "template": "a sketch of a {}"}
    assert LabelSet.from_query(s.query(), 100) == s
    cifar = LabelSet.preset("cifar10", "cifar18")
    assert (cifar.label_preset, cifar.template_set) == ("cifar10", "cifar18") and cifar.query() == {
        "preset": "cifar10", "template": "cifar18"}
    assert LabelSet.preset().query() == {} and LabelSet.from_query({}, 100) == LabelSet.preset()
    assert LabelSet.from_json({"labels": ["only one"], "templates": ["{}"]}) is None  # invalid: not a set
    assert LabelSet.from_json({"labels": "cat", "templates": []}) is None and LabelSet.from_json(None) is None
    assert LabelSet.from_json({"labels": [{"a": 1}, "dog"], "templates": ["{}"]}) is None  # a tampered browser store
    assert LabelSet.from_json({"labels": ["cat", "dog"], "templates": [["{}"]]}) is None
