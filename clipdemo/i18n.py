"""The visitor's language: the UI's strings in English and Turkish, and sentences that can be told in either.

Holds `LANGUAGES`, `STRINGS` (one table per language, in `clipdemo/locales/`), `language(tag)` (a browser
language tag such as `tr-TR` -> `tr`, anything else -> `en`), `text(key, lang, *values)` (a string with its
`{}` places filled in order, without `str.format`, so a `{` in a value or a translation stays literal) and
`Refusal`, a `ValueError` that carries its key and values so the UI can say it in the visitor's language
while the CLI and the API print the English. No gradio here: `clipdemo.ui.lang` hands these to `gr.I18n`.
"""

from __future__ import annotations

from .locales import en, tr

__all__ = ["LANGUAGES", "STRINGS", "DEFAULT", "language", "text", "places", "Refusal"]

DEFAULT = "en"
STRINGS: dict[str, dict[str, str]] = {"en": en.STRINGS, "tr": tr.STRINGS}
LANGUAGES = tuple(STRINGS)
PLACE = "{}"


def language(tag: str | None) -> str:
    """The UI language for a browser language tag or an Accept-Language header: its first supported
    primary subtag (`tr-TR,tr;q=0.9,en;q=0.8` -> `tr`), else English."""
    for part in (tag or "").split(","):
        primary = part.split(";")[0].strip().split("-")[0].split("_")[0].lower()
        if primary in STRINGS:
            return primary
    return DEFAULT


def places(template: str) -> int:
    """How many `{}` places a string has."""
    return template.count(PLACE)


def text(key: str, lang: str = DEFAULT, *values) -> str:
    """The string `key` in `lang` (English where that language lacks it), its `{}` places filled in order."""
    template = STRINGS.get(lang, {}).get(key) or STRINGS[DEFAULT][key]
    parts = template.split(PLACE)
    if len(parts) - 1 != len(values):
        raise ValueError(f"The string {key!r} has {len(parts) - 1} places, given {len(values)} values.")
    out = [parts[0]]
    for value, part in zip(values, parts[1:]):
        out += [str(value), part]
    return "".join(out)


class Refusal(ValueError):
    """A user-facing refusal: `str()` is the English sentence; `key` and `values` say it in another language."""

    def __init__(self, key: str, *values):
        self.key, self.values = key, values
        super().__init__(text(key, DEFAULT, *values))

    def say(self, lang: str) -> str:
        return text(self.key, lang, *self.values)
