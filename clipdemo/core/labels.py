"""Label sets: what a visitor classifies against, as one frozen type from the editors to the model.

Every form of a set (the editors' text, a preset, a link, a browser's JSON) goes through one checker: labels
normalised (NFC, spaces collapsed), templates with exactly one `{}` filled by plain substitution (never
`str.format`), every prompt within CLIP's 77 tokens, the whole set within the prompt budget. No model code: the
tokenizer only counts.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .clip_package import tokenizer
from .turkish import CIFAR100_CLASSES_TR, CIFAR100_SUPERCLASSES_TR, CIFAR_TEMPLATES_TR, SINGLE_TEMPLATE_TR
from .words import Refusal, Text

__all__ = ["LabelSet", "PromptError", "Preset", "LABEL_PRESETS", "TEMPLATE_SETS", "CLASS_NAME_SPELLINGS",
           "CIFAR100_CLASSES", "CIFAR100_CLASSES_PAPER", "CIFAR10_CLASSES", "CIFAR100_SUPERCLASSES", "SINGLE_TEMPLATE",
           "CIFAR_TEMPLATES", "DEFAULT_LABELS", "DEFAULT_TEMPLATES", "fill", "token_count", "parse_label_text",
           "read_label_file", "CONTEXT_LENGTH", "MIN_LABELS", "MAX_LABELS", "MAX_LABEL_CHARS", "MAX_TEMPLATES",
           "PROMPT_BUDGET", "MAX_FILE_BYTES", "normalise", "has_control", "CLIP", "MULTILINGUAL", "TEXT_ENCODERS",
           "prompt_where", "suggests_multilingual", "class_index", "true_name", "with_turkish"]

CLIP = "clip"  # CLIP's own text tower (English)
MULTILINGUAL = "multilingual"  # the multilingual text tower (`clipdemo.core.multilingual`)
TEXT_ENCODERS: tuple[str, ...] = (CLIP, MULTILINGUAL)  # the text towers a label set may be encoded with

# torchvision's CIFAR100.classes, in its order (the order of the dataset's integer targets).
CIFAR100_CLASSES: tuple[str, ...] = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup", "dinosaur",
    "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house", "kangaroo", "keyboard",
    "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man", "maple_tree", "motorcycle", "mountain",
    "mouse", "mushroom", "oak_tree", "orange", "orchid", "otter", "palm_tree", "pear", "pickup_truck", "pine_tree",
    "plain", "plate", "poppy", "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket",
    "rose", "sea", "seal", "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider",
    "squirrel", "streetcar", "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)

# The CLIP paper's spelling: the nine names with underscores, written with spaces.
CIFAR100_CLASSES_PAPER: tuple[str, ...] = tuple(c.replace("_", " ") for c in CIFAR100_CLASSES)

CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)

# The 20 CIFAR-100 superclasses (the dataset's coarse_label_names, in order, underscores as spaces).
CIFAR100_SUPERCLASSES: tuple[str, ...] = (
    "aquatic mammals", "fish", "flowers", "food containers", "fruit and vegetables",
    "household electrical devices", "household furniture", "insects", "large carnivores",
    "large man-made outdoor things", "large natural outdoor scenes", "large omnivores and herbivores",
    "medium mammals", "non-insect invertebrates", "people", "reptiles", "small mammals", "trees",
    "vehicles 1", "vehicles 2",
)

# The notebook's single prompt.
SINGLE_TEMPLATE: tuple[str, ...] = ("a photo of a {}",)

# CLIP's 18 CIFAR-100 templates (openai/CLIP data/prompts.md, section CIFAR100).
CIFAR_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a blurry photo of a {}.",
    "a black and white photo of a {}.",
    "a low contrast photo of a {}.",
    "a high contrast photo of a {}.",
    "a bad photo of a {}.",
    "a good photo of a {}.",
    "a photo of a small {}.",
    "a photo of a big {}.",
    "a photo of the {}.",
    "a blurry photo of the {}.",
    "a black and white photo of the {}.",
    "a low contrast photo of the {}.",
    "a high contrast photo of the {}.",
    "a bad photo of the {}.",
    "a good photo of the {}.",
    "a photo of the small {}.",
    "a photo of the big {}.",
)


@dataclass(frozen=True)
class Preset:
    """A named list offered by the CLI and the UI: labels, or prompt templates (each with one `{}`)."""

    key: str  # the CLI's and the API's name
    title: str  # shown in the UI
    items: tuple[str, ...]
    language: str = "en"  # what its words are written in ("tr": the multilingual tower is the one that reads them)


LABEL_PRESETS: dict[str, Preset] = {p.key: p for p in (
    Preset("cifar100", "CIFAR-100 (100 classes, torchvision names)", CIFAR100_CLASSES),
    Preset("cifar100-paper", "CIFAR-100 (CLIP paper spelling)", CIFAR100_CLASSES_PAPER),
    Preset("cifar10", "CIFAR-10 (10 classes)", CIFAR10_CLASSES),
    Preset("cifar100-coarse", "CIFAR-100 superclasses (20)", CIFAR100_SUPERCLASSES),
    Preset("cifar100-tr", "CIFAR-100 in Turkish (100 classes, Türkçe)", CIFAR100_CLASSES_TR, "tr"),
    Preset("cifar100-coarse-tr", "CIFAR-100 superclasses in Turkish (20, Türkçe)", CIFAR100_SUPERCLASSES_TR, "tr"),
)}
TEMPLATE_SETS: dict[str, Preset] = {p.key: p for p in (
    Preset("single", 'Single prompt: "a photo of a {}" (the notebook)', SINGLE_TEMPLATE),
    Preset("cifar18", "CLIP's 18 CIFAR templates (ensemble)", CIFAR_TEMPLATES),
    Preset("single-tr", 'Turkish single prompt: "bir {} fotoğrafı"', SINGLE_TEMPLATE_TR, "tr"),
    Preset("cifar18-tr", "CLIP's 18 CIFAR templates in Turkish (ensemble)", CIFAR_TEMPLATES_TR, "tr"),
)}
DEFAULT_LABELS, DEFAULT_TEMPLATES = "cifar100", "single"  # what a visitor starts with: the notebook's setting
# The presets that spell CIFAR-100's own 100 classes, in the dataset's order (a true class is found in each).
CLASS_NAME_SPELLINGS: tuple[str, ...] = ("cifar100", "cifar100-paper", "cifar100-tr")

CONTEXT_LENGTH = 77  # CLIP's text context, start and end-of-text tokens included
MIN_LABELS = 2  # a softmax over one label is always 100%
MAX_LABELS = 500  # a cap on the list itself; what encoding costs is bounded by PROMPT_BUDGET
MAX_LABEL_CHARS = 200
MAX_TEMPLATES = 32
# A list is refused by its length before any item is looked at when it is longer than this many times its cap
# (repeats, dropped on the way, may bring a longer list within the cap; a list of millions never is).
_WALK_FACTOR = 2
# The text-encoding cost one label set may have, in prompt tokens (start and end-of-text included). The
# largest preset pair, CIFAR-100 with CLIP's 18 templates, costs 17,304; on 2 vCPUs that is ~10 s.
PROMPT_BUDGET = 20_000
MAX_FILE_BYTES = 256 * 1024  # a label file; 500 labels of 200 characters fit with room to spare
_MIN_PROMPT_TOKENS = 3  # start, one token, end: a floor that refuses huge sets before tokenising them
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")
PLACE = "{}"  # where the label goes in a template


class PromptError(Refusal):
    """A label or template the model cannot take; the sentence names the item by position."""


def token_count(text: str) -> int:
    """Tokens CLIP uses for `text`, start and end-of-text included."""
    return len(tokenizer().encode(text)) + 2


def fill(template: str, label: str) -> str:
    """Put `label` where `{}` stands: plain substitution, never `str.format` on user text."""
    return template.replace(PLACE, label, 1)


def normalise(text: str) -> str:
    """NFC, each run of whitespace one space, trimmed: how labels, templates and search queries are read."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def has_control(text: str) -> bool:
    """Whether `text` holds control or invisible characters (refused in labels, templates and search queries)."""
    return _CONTROL.search(text) is not None


def suggests_multilingual(text: str, page_language: str, preset_language: str | None = None) -> bool:
    """Whether to offer the multilingual text tower: the text holds characters outside ASCII, the page is in
    Turkish, or a Turkish preset is chosen (CLIP's own text tower was trained on English)."""
    return not text.isascii() or page_language == "tr" or preset_language == "tr"


def class_index(name: str) -> int | None:
    """The CIFAR-100 class a name is, in any of the CLASS_NAME_SPELLINGS (None for any other name)."""
    for key in CLASS_NAME_SPELLINGS:
        if name in LABEL_PRESETS[key].items:
            return LABEL_PRESETS[key].items.index(name)
    return None


def true_name(labels: tuple[str, ...], true_label: str, spelling: str | None) -> str:
    """The name CIFAR-100's class `true_label` has among `labels`: as given when it is there, else the same class
    in the labels' spelling (`spelling`: a CLASS_NAME_SPELLINGS preset's key, such as the Turkish one)."""
    index = class_index(true_label)
    if true_label in labels or spelling not in CLASS_NAME_SPELLINGS or index is None:
        return true_label
    return LABEL_PRESETS[spelling].items[index]


def with_turkish(name: str) -> str:
    """A CIFAR-100 class name with its Turkish name beside it, "lion (aslan)" (a Turkish page shows both); any
    other name, and a Turkish one, as it is."""
    index = class_index(name)
    if index is None or name == CIFAR100_CLASSES_TR[index]:
        return name
    return f"{name} ({CIFAR100_CLASSES_TR[index]})"


def _short(text: str, n: int = 40) -> str:
    return repr(text if len(text) <= n else text[: n - 1] + "…")


def _short_text(text: str | None) -> str:
    """Editor text no longer than a label file may be (PromptError otherwise), before it is split."""
    text = text or ""
    if len(text) > MAX_FILE_BYTES:
        raise PromptError("labels_text_long", f"{len(text):,}", f"{MAX_FILE_BYTES:,}")
    return text


def parse_label_text(text: str) -> list[str]:
    """Split editor text into labels: one per line; a single line is split on commas.

    Blank lines are skipped; blank items between commas are kept (and refused by the checker).
    """
    lines = [ln for ln in _short_text(text).splitlines() if ln.strip()]
    if len(lines) == 1 and "," in lines[0]:
        items = lines[0].split(",")
        if items and not items[-1].strip():
            items = items[:-1]  # a trailing comma is not a label
        return items
    return lines


def read_label_file(path: str | Path) -> str:
    """The labels of a text file (one per line) or a `.csv` (the first column; a header named `label` is
    skipped), as editor text (one per line); refused when over MAX_FILE_BYTES or not UTF-8."""
    path = Path(path)
    if path.stat().st_size > MAX_FILE_BYTES:
        raise PromptError("sets_file_big", MAX_FILE_BYTES // 1024)
    try:
        raw = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise PromptError("sets_file_encoding") from None
    if path.suffix.lower() != ".csv":
        return raw
    rows = [row for row in csv.reader(io.StringIO(raw)) if row and row[0].strip()]
    if rows and rows[0][0].strip().lower() in {"label", "labels", "name", "class"}:
        rows = rows[1:]
    return "\n".join(row[0].strip() for row in rows)


def _line(raw: str, i: int, keys: tuple[str, str]) -> str:
    """Item `i` of a label or template list, normalised; refused (keys: control characters, blank)."""
    if has_control(raw):
        raise PromptError(keys[0], i)
    if not (line := normalise(raw)):
        raise PromptError(keys[1], i)
    return line


def _labels(items: tuple, duplicates: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    kept: list[str] = []
    dropped: list[str] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(items, start=1):
        label = _line(raw, i, ("label_control", "label_blank"))
        if len(label) > MAX_LABEL_CHARS:
            raise PromptError("label_long", i, len(label), MAX_LABEL_CHARS)
        key = label.casefold()
        if key in seen:
            if duplicates == "error":
                raise PromptError("label_repeats", i, _short(label), seen[key])
            dropped.append(label)
            continue
        seen[key] = i
        kept.append(label)
    if len(kept) < MIN_LABELS:
        raise PromptError("labels_few", MIN_LABELS, len(kept))
    if len(kept) > MAX_LABELS:
        raise PromptError("labels_many", len(kept), MAX_LABELS)
    return tuple(kept), tuple(dropped)


def _templates(items: tuple) -> tuple[str, ...]:
    out: list[str] = []
    for i, raw in enumerate(items, start=1):
        t = _line(raw, i, ("template_control", "template_blank"))
        if (n := t.count(PLACE)) != 1:
            raise PromptError("template_place", i, _short(t), PLACE, n)
        if t not in out:
            out.append(t)
    if not out:
        raise PromptError("templates_none", repr("a photo of a {}"))
    if len(out) > MAX_TEMPLATES:
        raise PromptError("templates_many", len(out), MAX_TEMPLATES)
    return tuple(out)


def _check_budget(n_labels: int, n_templates: int, cost: int | None = None) -> None:
    """PromptError, saying how to shrink the set, if its cost (or, without one, its least cost) is over budget."""
    n = n_labels * n_templates
    floor = cost if cost is not None else n * _MIN_PROMPT_TOKENS
    if floor <= PROMPT_BUDGET:
        return
    fits = int(PROMPT_BUDGET // (floor / n * n_templates))
    what = Text("budget_about" if cost is not None else "budget_at_least", f"{floor:,}")
    raise PromptError("budget", n_labels, n_templates, f"{n:,}", what, f"{PROMPT_BUDGET:,}", n_templates, f"{fits:,}")


def prompt_where(i: int, n_templates: int) -> Text:
    """Which prompt the `i`-th (0-based) of a label-major list is: its label's position, and its template's."""
    label, template = divmod(i, n_templates)
    if n_templates > 1:
        return Text("prompt_label_template", label + 1, template + 1)
    return Text("prompt_label", label + 1)


def _prompt_cost(labels: tuple[str, ...], templates: tuple[str, ...]) -> int:
    """Every prompt within CLIP's 77 tokens (PromptError naming the first that is not); their total tokens."""
    cost = 0
    for i, prompt in enumerate(fill(t, lab) for lab in labels for t in templates):
        n = token_count(prompt)
        if n > CONTEXT_LENGTH:
            raise PromptError("prompt_long", prompt_where(i, len(templates)), n, CONTEXT_LENGTH)
        cost += n
    return cost


def _bounded(items, cap: int, key: str) -> tuple:
    """The items as a tuple, taking at most `_WALK_FACTOR * cap + 1` of them: a longer list is refused (PromptError
    `key`) before its items are walked, hashed or checked."""
    limit = _WALK_FACTOR * cap
    out = tuple(itertools.islice(items, limit + 1))
    if len(out) > limit:
        raise PromptError(key, f"{len(items):,}" if hasattr(items, "__len__") else f"{limit:,}+", cap)
    return out


@lru_cache(maxsize=256)
def _checked(labels: tuple, templates: tuple, duplicates: str, encoder: str) -> LabelSet:
    kept, dropped = _labels(labels, duplicates)
    checked = _templates(templates)
    _check_budget(len(kept), len(checked))  # before tokenising thousands of prompts
    if encoder != CLIP:  # the multilingual tower counts its own tokens when it encodes (its tokenizer comes
        return LabelSet(kept, checked, 0, dropped, encoder)  # with its files): the service refuses there
    cost = _prompt_cost(kept, checked)
    _check_budget(len(kept), len(checked), cost)
    return LabelSet(kept, checked, cost, dropped, encoder)


@dataclass(frozen=True)
class LabelSet:
    """Checked labels and prompt templates: what every shell passes around (the page's session state, a link,
    a browser's saved set, an API call, the CLI), and the text cache's key. Make one with `of` or a parser
    below, never directly: they check it (remembered for the last 256 sets, so a script sending the same set
    with every call has it tokenised once). Equal and hashed by labels, templates and text tower."""

    labels: tuple[str, ...]
    templates: tuple[str, ...]
    cost: int = field(default=0, compare=False)  # CLIP's prompt tokens, start and end included (0: another tower)
    dropped: tuple[str, ...] = field(default=(), compare=False)  # duplicates left out on the way (to say so)
    encoder: str = CLIP  # the text tower that encodes it (TEXT_ENCODERS): part of the key, as the features differ

    # -- making one ----------------------------------------------------------------------------------------
    @classmethod
    def of(cls, labels, templates, *, duplicates: str = "drop", encoder: str = CLIP) -> LabelSet:
        """Check `labels` and `templates` (lists of text); PromptError names the first problem. `duplicates`:
        "drop" keeps the first of case- and space-insensitive repeats and records the rest; "error" refuses.
        `encoder`: the text tower, one of TEXT_ENCODERS (CLIP's checks its 77 tokens here; the multilingual one
        counts its own when it encodes)."""
        labels = _bounded(labels, MAX_LABELS, "labels_many")
        templates = _bounded(templates, MAX_TEMPLATES, "templates_many")
        for items, key in ((labels, "label_not_text"), (templates, "template_not_text")):
            if (i := next((i for i, x in enumerate(items, start=1) if not isinstance(x, str)), None)) is not None:
                raise PromptError(key, i)  # before the memo, which needs every item hashable
        if encoder not in TEXT_ENCODERS:
            raise PromptError("encoder_unknown", repr(encoder)[:40], ", ".join(TEXT_ENCODERS))
        return _checked(labels, templates, duplicates, encoder)

    @classmethod
    def preset(cls, labels: str = DEFAULT_LABELS, templates: str = DEFAULT_TEMPLATES, encoder: str = CLIP) -> LabelSet:
        """A label preset with a template set, by their keys; a Refusal lists the keys when one is unknown."""
        if labels not in LABEL_PRESETS:
            raise PromptError("preset_unknown", repr(labels), ", ".join(LABEL_PRESETS))
        if templates not in TEMPLATE_SETS:
            raise PromptError("template_set_unknown", repr(templates), ", ".join(TEMPLATE_SETS))
        return cls.of(LABEL_PRESETS[labels].items, TEMPLATE_SETS[templates].items, encoder=encoder)

    @classmethod
    def from_text(cls, label_text: str, template_text: str, *, duplicates: str = "drop",
                  encoder: str = CLIP) -> LabelSet:
        """The editors' text: labels one per line (or comma-separated on one line), templates one per line."""
        templates = [ln for ln in _short_text(template_text).splitlines() if ln.strip()]
        return cls.of(parse_label_text(label_text), templates, duplicates=duplicates, encoder=encoder)

    @classmethod
    def from_json(cls, value) -> LabelSet | None:
        """A set as `json()` wrote it, from an untrusted place (a browser's storage): None unless well formed
        and valid."""
        if not isinstance(value, dict):
            return None
        labels, templates = value.get("labels"), value.get("templates")
        encoder = value.get("encoder", CLIP)
        if not (isinstance(labels, list) and isinstance(templates, list) and 0 < len(labels) <= MAX_LABELS
                and 0 < len(templates) <= MAX_TEMPLATES and encoder in TEXT_ENCODERS):
            return None
        try:
            return cls.of(labels, templates, encoder=encoder)
        except PromptError:
            return None

    @classmethod
    def from_query(cls, fields: Mapping[str, str], max_labels: int) -> LabelSet:
        """The set a link's fields name (`labels` comma-separated or a `preset`; `template`, a template set's key
        or one template with `{}`; `encoder`, a text tower), checked as typed ones are; the defaults for what they
        leave out."""
        labels = LABEL_PRESETS[DEFAULT_LABELS].items
        if "preset" in fields:
            if fields["preset"] not in LABEL_PRESETS:
                raise Refusal("link_bad_preset", fields["preset"][:40], ", ".join(LABEL_PRESETS))
            labels = LABEL_PRESETS[fields["preset"]].items
        if "labels" in fields:
            labels = tuple(s for s in fields["labels"].split(",") if s.strip())
            if len(labels) > max_labels:
                raise Refusal("link_many_labels", len(labels), max_labels)
        templates = TEMPLATE_SETS[DEFAULT_TEMPLATES].items
        if "template" in fields:
            template = fields["template"]
            if template in TEMPLATE_SETS:
                templates = TEMPLATE_SETS[template].items
            elif PLACE in template:
                templates = (template,)
            else:
                raise Refusal("link_bad_template", template[:40], ", ".join(TEMPLATE_SETS), PLACE)
        encoder = fields.get("encoder", CLIP)
        if encoder not in TEXT_ENCODERS:
            raise Refusal("link_bad_encoder", encoder[:40], ", ".join(TEXT_ENCODERS))
        try:
            return cls.of(labels, templates, encoder=encoder)
        except PromptError as exc:
            raise Refusal("link_bad_labels", exc.text) from None

    # -- its forms ----------------------------------------------------------------------------------------
    @property
    def label_preset(self) -> str | None:
        """The key of the label preset these labels are, or None."""
        return next((k for k, p in LABEL_PRESETS.items() if p.items == self.labels), None)

    @property
    def template_set(self) -> str | None:
        """The key of the template set these templates are, or None."""
        return next((k for k, p in TEMPLATE_SETS.items() if p.items == self.templates), None)

    def json(self) -> dict:
        """`{"labels": [...], "templates": [...]}` (and `"encoder"` when not CLIP's): plain data for a browser's
        storage (`from_json` reads it)."""
        out = {"labels": list(self.labels), "templates": list(self.templates)}
        return out if self.encoder == CLIP else {**out, "encoder": self.encoder}

    def query(self) -> dict[str, str]:
        """The set as a link's fields: a preset's key (none for the default CIFAR-100), else the labels joined by
        commas (none when a label holds a comma: it can't be carried); a template set's key (none for the
        default single prompt), else the one template (several of one's own can't be carried)."""
        out = {}
        if (preset := self.label_preset) is None:
            if not any("," in lab for lab in self.labels):
                out["labels"] = ",".join(self.labels)
        elif preset != DEFAULT_LABELS:
            out["preset"] = preset
        if (tset := self.template_set) is None and len(self.templates) == 1:
            out["template"] = self.templates[0]
        elif tset not in (None, DEFAULT_TEMPLATES):
            out["template"] = tset
        if self.encoder != CLIP:
            out["encoder"] = self.encoder
        return out

    def label_text(self) -> str:
        """The labels as the label editor shows them (one per line; a `.txt` download holds the same)."""
        return "\n".join(self.labels)

    def template_text(self) -> str:
        return "\n".join(self.templates)

    @property
    def language(self) -> str | None:
        """"tr" when its labels or templates are a Turkish preset, "en" for another preset, None for one's own."""
        presets = (LABEL_PRESETS.get(self.label_preset or ""), TEMPLATE_SETS.get(self.template_set or ""))
        found = [p.language for p in presets if p]
        return "tr" if "tr" in found else (found[0] if found else None)

    def prompts(self) -> list[str]:
        """Every (label, template) prompt, label-major: `[n_labels * n_templates]`."""
        return [fill(t, lab) for lab in self.labels for t in self.templates]

    @property
    def size(self) -> int:
        """How many prompts encoding the set takes."""
        return len(self.labels) * len(self.templates)
