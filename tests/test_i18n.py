"""The two UI languages: the same keys and places, the language a browser asks for, and safe filling."""

import re
from pathlib import Path

import pytest

from clipdemo.core.labels import TEXT_ENCODERS
from clipdemo.core.words import STRINGS, Refusal, Text, language, places, say

PACKAGE = Path(__file__).resolve().parent.parent / "clipdemo"


def test_both_languages_have_the_same_keys_and_places():
    en, tr = STRINGS["en"], STRINGS["tr"]
    assert set(en) == set(tr) and len(en) > 150
    assert {k: (places(en[k]), places(tr[k])) for k in en if places(en[k]) != places(tr[k])} == {}
    # a translation, not a copy (the short ones may be names such as "Top-k" or "CIFAR-100 index")
    assert sum(en[k] == tr[k] for k in en if len(en[k]) > 20) == 0


SAID = re.compile(r'\b(?:say|Text|Refusal|[A-Z]\w*(?:Error|Unavailable|Failed))\(\s*"([a-z0-9_]+)"')


def test_every_key_the_code_says_exists_and_every_key_is_said():
    """The core raises and reports keys (`Refusal("label_blank", 2)`, `Text("eval_encoding", ...)`), the shells say
    them: a key the code uses must be in the tables, and a key in the tables must be used somewhere."""
    used, literals = set(), set()
    for f in PACKAGE.rglob("*.py"):
        if "locales" in f.parts:
            continue
        src = f.read_text(encoding="utf-8")
        used |= set(SAID.findall(src))
        literals |= set(re.findall(r'["\']([a-z][a-z0-9_]+)["\']', src))  # keys passed on (`"name_top_k"`, GPU refusals)
    literals |= {f"encoder_{e}" for e in TEXT_ENCODERS}  # the label-language names, said by text tower
    assert len(used) > 200
    assert sorted(used - set(STRINGS["en"])) == []
    assert sorted(set(STRINGS["en"]) - used - literals) == []


@pytest.mark.parametrize("tag, lang", [("tr-TR", "tr"), ("tr", "tr"), ("en-US", "en"), ("de-DE", "en"), ("", "en"),
                                       (None, "en"), ("de-DE,tr;q=0.9,en;q=0.8", "tr"), ("TR_tr", "tr")])
def test_the_browser_language_picks_the_ui_language(tag, lang):
    assert language(tag) == lang


def test_values_fill_places_in_order_and_stay_literal():
    assert say("which_layer_head", "en", 3, 7) == "layer 3, head 7"
    # a value holding braces is never formatted again
    assert say("sets_unknown", "en", "{0.__class__} {}") == "There is no saved set named '{0.__class__} {}'."
    with pytest.raises(ValueError, match="has 2 places, given 1"):
        say("which_layer_head", "en", 3)


def test_a_refusal_is_english_for_the_cli_and_turkish_for_a_turkish_page():
    exc = Refusal("sets_full", 20)
    assert str(exc) == "This browser already keeps 20 sets; delete one first."
    assert exc.say("tr") == say("sets_full", "tr", 20) and exc.say("tr") != str(exc) and "20" in exc.say("tr")
    assert isinstance(exc, ValueError)


def test_a_sentence_inside_a_sentence_is_said_in_the_same_language():
    """A core refusal nests what it names (`Text("prompt_label", 2)` inside `prompt_long`): both in one language."""
    exc = Refusal("prompt_long", Text("prompt_label", 2), 86, 77)
    assert str(exc) == "The prompt for label 2 is 86 tokens long; CLIP reads at most 77. Shorten the label or the template."
    assert say("prompt_label", "tr", 2) in exc.say("tr") and "label 2" not in exc.say("tr")
