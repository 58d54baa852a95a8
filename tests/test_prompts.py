"""Label/template parsing and validation: each bad input is a PromptError naming the item."""

import pytest

from clipdemo.presets import CIFAR100_CLASSES, CIFAR_TEMPLATES, LABEL_PRESETS, TEMPLATE_SETS, label_preset
from clipdemo.prompts import (MAX_LABELS, PromptError, build_prompts, clean_labels, clean_templates, fill,
                              parse_label_text, token_count)


def test_presets_are_data_with_expected_sizes():
    assert len(CIFAR100_CLASSES) == 100 and len(set(CIFAR100_CLASSES)) == 100
    assert [c for c in CIFAR100_CLASSES if "_" in c] == [
        "aquarium_fish", "lawn_mower", "maple_tree", "oak_tree", "palm_tree", "pickup_truck", "pine_tree",
        "sweet_pepper", "willow_tree"]
    assert "lawn mower" in LABEL_PRESETS["cifar100-paper"].labels
    assert len(LABEL_PRESETS["cifar10"].labels) == 10
    assert len(LABEL_PRESETS["cifar100-coarse"].labels) == 20
    assert TEMPLATE_SETS["single"].templates == ("a photo of a {}",)
    assert len(CIFAR_TEMPLATES) == 18 and all(t.count("{}") == 1 for t in CIFAR_TEMPLATES)
    with pytest.raises(ValueError, match="choose one of: cifar100, cifar100-paper"):
        label_preset("imagenet")


def test_parse_label_text_lines_and_commas():
    assert parse_label_text("cat\n\n dog \nbird\n") == ["cat", " dog ", "bird"]
    assert parse_label_text("cat, dog,bird,") == ["cat", " dog", "bird"]
    assert parse_label_text("a,,b") == ["a", "", "b"]


def test_clean_labels_normalises_and_drops_duplicates():
    out = clean_labels(["  Red   fox ", "dog", "red fox", "DOG", "e\u0301clair"])
    assert out.labels == ("Red fox", "dog", "\u00e9clair")  # NFC: e + combining acute -> é
    assert out.dropped_duplicates == ("red fox", "DOG")


@pytest.mark.parametrize("labels, message", [
    ([], "at least 2 different labels (got 0)"),
    (["cat"], "at least 2 different labels (got 1)"),
    (["cat", "  ", "dog"], "Label 2 is blank"),
    (["cat", "dog\x00"], "Label 2 contains control"),
    (["cat", "x" * 201], "Label 2 is 201 characters long"),
    ([f"l{i}" for i in range(MAX_LABELS + 1)], f"Too many labels: {MAX_LABELS + 1}"),
])
def test_clean_labels_errors(labels, message):
    with pytest.raises(PromptError) as err:
        clean_labels(labels)
    assert message in str(err.value)


def test_duplicates_can_be_an_error():
    with pytest.raises(PromptError, match=r"Label 3 \('Cat'\) repeats label 1"):
        clean_labels(["cat", "dog", "Cat"], duplicates="error")


@pytest.mark.parametrize("templates, message", [
    (["a photo"], "Template 1 ('a photo') must contain exactly one {}"),
    (["a {} and {}"], "(found 2)"),
    (["ok {}", " "], "Template 2 is blank"),
    ([], "at least one template"),
])
def test_clean_templates_errors(templates, message):
    with pytest.raises(PromptError) as err:
        clean_templates(templates)
    assert message in str(err.value)


def test_fill_is_plain_substitution_not_format():
    assert fill("a photo of a {}", "{0.__class__} {x}") == "a photo of a {0.__class__} {x}"
    assert clean_templates(["{x} photo of a {}"]) == ("{x} photo of a {}",)


def test_prompt_over_77_tokens_is_named_by_position():
    long_label = " ".join(["word"] * 80)
    with pytest.raises(PromptError, match="label 2 is 86 tokens long; CLIP reads at most 77"):
        build_prompts(("cat", long_label), ("a photo of a {}",))
    with pytest.raises(PromptError, match="label 1 with template 2"):
        build_prompts((" ".join(["w"] * 70),), ("{}", "a very very very very long photo of a {}"))


def test_token_count_matches_clip_tokenize():
    import clip

    text = "a photo of a lawn mower"
    assert token_count(text) == int((clip.tokenize(text)[0] != 0).sum())
