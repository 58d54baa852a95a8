"""What clipdemo says, as keys with values: every sentence is said in the reader's language when it is read.

The core never writes a sentence for a reader: the UI says a key in the visitor's language, the CLI and the log in
English. `say` fills `{}` places in order without `str.format`, so a `{` in a value or a translation stays literal.
No gradio here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

from .locales import en, tr

__all__ = ["LANGUAGES", "STRINGS", "DEFAULT", "language", "say", "places", "Text", "Refusal", "Progress", "ProgressFn"]

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


def say(key: str, lang: str = DEFAULT, *values) -> str:
    """The string `key` in `lang` (English where that language lacks it), its `{}` places filled in order; a
    value that is itself a `Text` is said in the same language."""
    template = STRINGS.get(lang, {}).get(key) or STRINGS[DEFAULT][key]
    parts = template.split(PLACE)
    if len(parts) - 1 != len(values):
        raise ValueError(f"The string {key!r} has {len(parts) - 1} places, given {len(values)} values.")
    out = [parts[0]]
    for value, part in zip(values, parts[1:]):
        out += [value.say(lang) if isinstance(value, Text) else str(value), part]
    return "".join(out)


@dataclass(frozen=True, init=False)
class Text:
    """A sentence not yet said: its key in the string tables and the values of its places (`Text(key, *values)`)."""

    key: str
    values: tuple

    def __init__(self, key: str, *values):
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "values", values)

    def say(self, lang: str = DEFAULT) -> str:
        return say(self.key, lang, *self.values)

    def __str__(self) -> str:
        return self.say(DEFAULT)


class Refusal(ValueError):
    """Something a reader must be told, as a key and values: `str()` is the English sentence; `say(lang)` the
    visitor's. Subclasses name the kind (a bad label, an image, the dataset, the weights, a busy model)."""

    def __init__(self, key: str, *values):
        self.text = Text(key, *values)
        super().__init__(self.text.say(DEFAULT))

    @property
    def key(self) -> str:
        return self.text.key

    def say(self, lang: str) -> str:
        return self.text.say(lang)


class Progress(NamedTuple):
    """How far long work has come: `done` of `total` (0 when unknown), and what it is doing. The one shape of
    progress: the evaluation yields it, and every other long job hands it to a `ProgressFn`."""

    done: int
    total: int
    what: Text


ProgressFn = Callable[[Progress], None]
