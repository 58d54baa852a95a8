"""Turning user text into validated labels, templates and prompts.

Holds: parsing of label text (one per line, or comma-separated), normalisation and validation of
labels and templates, plain `{}` substitution, and CLIP token counting. Everything raises
`PromptError` (a ValueError) with a message naming the offending item by position. Holds no model code.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from ._clip import import_clip

__all__ = ["PromptError", "LabelSet", "parse_label_text", "clean_labels", "clean_templates", "parse_editors", "validate_set", "fill",
           "build_prompts", "token_count", "prompt_cost", "check_budget", "PROMPT_BUDGET", "MAX_LABELS", "MIN_LABELS", "MAX_LABEL_CHARS", "MAX_TEMPLATES",
           "CONTEXT_LENGTH"]

CONTEXT_LENGTH = 77  # CLIP's text context, start and end-of-text tokens included
MIN_LABELS = 2  # a softmax over one label is always 100%
MAX_LABELS = 500  # a cap on the list itself; what encoding costs is bounded by PROMPT_BUDGET
MAX_LABEL_CHARS = 200
MAX_TEMPLATES = 32
# The text-encoding cost one label set may have, in prompt tokens (start and end-of-text included). The
# largest preset pair, CIFAR-100 with CLIP's 18 templates, costs 17,304; on 2 vCPUs that is ~10 s.
PROMPT_BUDGET = 20_000
_MIN_PROMPT_TOKENS = 3  # start, one token, end: a floor that refuses huge sets before tokenising them
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff]")


class PromptError(ValueError):
    """A label or template the model cannot take; the message names the item."""


@dataclass(frozen=True)
class LabelSet:
    """A validated label set plus what was dropped on the way (for telling the user)."""

    labels: tuple[str, ...]
    dropped_duplicates: tuple[str, ...] = ()


@lru_cache(maxsize=1)
def _tokenizer():
    return import_clip().simple_tokenizer.SimpleTokenizer()


def token_count(text: str) -> int:
    """Tokens CLIP uses for `text`, start and end-of-text included."""
    return len(_tokenizer().encode(text)) + 2


def _normalise(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).split())


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def parse_label_text(text: str) -> list[str]:
    """Split editor text into labels: one per line; a single line is split on commas.

    Blank lines are skipped; blank items between commas are kept (and rejected by `clean_labels`).
    """
    text = text or ""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if len(lines) == 1 and "," in lines[0]:
        items = lines[0].split(",")
        if items and not items[-1].strip():
            items = items[:-1]  # a trailing comma is not a label
        return items
    return lines


def clean_labels(labels: list[str] | tuple[str, ...], *, duplicates: str = "drop") -> LabelSet:
    """Normalise (NFC, collapsed spaces) and validate labels.

    Args:
        duplicates: "drop" keeps the first of case/space-insensitive duplicates and reports the rest;
            "error" raises on the first duplicate.
    Raises:
        PromptError naming the label's position for blank, too long, control characters, duplicates,
        and for too few or too many labels.
    """
    kept: list[str] = []
    dropped: list[str] = []
    seen: dict[str, int] = {}
    for i, raw in enumerate(labels, start=1):
        if _CONTROL.search(raw):
            raise PromptError(f"Label {i} contains control or invisible characters; remove them.")
        label = _normalise(raw)
        if not label:
            raise PromptError(f"Label {i} is blank.")
        if len(label) > MAX_LABEL_CHARS:
            raise PromptError(f"Label {i} is {len(label)} characters long; the limit is {MAX_LABEL_CHARS}.")
        key = label.casefold()
        if key in seen:
            if duplicates == "error":
                raise PromptError(f"Label {i} ({_short(label)!r}) repeats label {seen[key]}.")
            dropped.append(label)
            continue
        seen[key] = i
        kept.append(label)
    if len(kept) < MIN_LABELS:
        raise PromptError(f"Give at least {MIN_LABELS} different labels (got {len(kept)}).")
    if len(kept) > MAX_LABELS:
        raise PromptError(f"Too many labels: {len(kept)}; the limit is {MAX_LABELS}.")
    return LabelSet(tuple(kept), tuple(dropped))


def clean_templates(templates: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Normalise and validate templates: each non-blank, with exactly one `{}`; duplicates removed."""
    out: list[str] = []
    for i, raw in enumerate(templates, start=1):
        if _CONTROL.search(raw):
            raise PromptError(f"Template {i} contains control or invisible characters; remove them.")
        t = _normalise(raw)
        if not t:
            raise PromptError(f"Template {i} is blank.")
        n = t.count("{}")
        if n != 1:
            raise PromptError(f"Template {i} ({_short(t)!r}) must contain exactly one {{}} where the label goes "
                              f"(found {n}).")
        if t not in out:
            out.append(t)
    if not out:
        raise PromptError("Give at least one template, such as 'a photo of a {}'.")
    if len(out) > MAX_TEMPLATES:
        raise PromptError(f"Too many templates: {len(out)}; the limit is {MAX_TEMPLATES}.")
    return tuple(out)


def fill(template: str, label: str) -> str:
    """Put `label` where `{}` stands: plain substitution, never `str.format` on user text."""
    return template.replace("{}", label, 1)


def build_prompts(labels: tuple[str, ...], templates: tuple[str, ...]) -> list[str]:
    """Every (label, template) prompt, label-major: `[n_labels * n_templates]`.

    Raises PromptError naming the first label (by position) whose prompt exceeds CLIP's 77 tokens.
    """
    prompts = [fill(t, lab) for lab in labels for t in templates]
    for j, p in enumerate(prompts):
        if (n := token_count(p)) > CONTEXT_LENGTH:
            li, ti = divmod(j, len(templates))
            where = f"label {li + 1}" + (f" with template {ti + 1}" if len(templates) > 1 else "")
            raise PromptError(f"The prompt for {where} is {n} tokens long; CLIP reads at most {CONTEXT_LENGTH}. "
                              "Shorten the label or the template.")
    return prompts


def prompt_cost(prompts: list[str]) -> int:
    """What encoding `prompts` costs, in tokens (start and end-of-text included)."""
    return sum(token_count(p) for p in prompts)


def check_budget(n_labels: int, n_templates: int, cost: int | None = None, budget: int = PROMPT_BUDGET) -> None:
    """PromptError, saying how to shrink the set, if its cost (or, without one, its least cost) is over `budget`."""
    n = n_labels * n_templates
    floor = cost if cost is not None else n * _MIN_PROMPT_TOKENS
    if floor <= budget:
        return
    per_prompt = floor / n
    fits = int(budget // (per_prompt * n_templates))
    what = f"about {floor:,}" if cost is not None else f"at least {floor:,}"
    raise PromptError(f"{n_labels} labels × {n_templates} template(s) = {n:,} prompts, {what} tokens to encode; "
                      f"the limit is {budget:,} (CIFAR-100 with the 18 templates is 17,304). Use fewer labels or "
                      f"templates: with {n_templates} template(s), about {fits:,} labels fit.")


def parse_editors(label_text: str, template_text: str) -> tuple[LabelSet, tuple[str, ...], int]:
    """The label and template editors' text, validated: every prompt within 77 tokens and the whole set
    within the prompt budget (PromptError if not). Returns (labels, templates, cost in tokens).

    Labels: one per line, or comma-separated; templates: one per line (commas belong to a template).
    """
    return validate_set(parse_label_text(label_text), [ln for ln in (template_text or "").splitlines() if ln.strip()])


def validate_set(label_list: list[str], template_list: list[str]) -> tuple[LabelSet, tuple[str, ...], int]:
    """Labels and templates given as lists (the API's way), validated as `parse_editors` does. Remembered for
    the last 256 sets (a script sends the same set with every call: it is tokenised once, not each time)."""
    for kind, items in (("Label", label_list), ("Template", template_list)):
        if (bad := next((i for i, x in enumerate(items, start=1) if not isinstance(x, str)), None)) is not None:
            raise PromptError(f"{kind} {bad} is not text.")
    return _validated(tuple(label_list), tuple(template_list))


@lru_cache(maxsize=256)
def _validated(label_list: tuple[str, ...], template_list: tuple[str, ...]) -> tuple[LabelSet, tuple[str, ...], int]:
    labels = clean_labels(list(label_list))
    templates = clean_templates(list(template_list))
    check_budget(len(labels.labels), len(templates))  # before tokenising thousands of prompts
    cost = prompt_cost(build_prompts(labels.labels, templates))
    check_budget(len(labels.labels), len(templates), cost)
    return labels, templates, cost
