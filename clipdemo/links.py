"""Shareable links: the small, validated state a page URL may carry, read on load and written for a result.

Holds `Link` (index, k, labels, template, preset, tab), `read_link(query)`, which keeps each valid value
and turns each bad one into a note (a `clipdemo.i18n` key and its values), and `link_query(link)`, its
inverse. A link never carries an image: uploads stay with the visitor. Nothing here touches the model;
labels and templates are checked by `clipdemo.prompts` as typed ones are.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, urlencode

from .data import TEST_SIZE
from .engine import MAX_TOP_K
from .presets import LABEL_PRESETS, TEMPLATE_SETS, preset_key, template_set_key
from .prompts import PromptError, validate_set

__all__ = ["Link", "Note", "read_link", "link_query", "set_fields", "labels_of", "templates_of", "TABS", "MAX_QUERY", "MAX_LINK_LABELS"]

TABS = ("predict", "labels", "evaluate", "architecture", "about")  # the app's tab ids
MAX_QUERY = 4000  # characters of query string read at all; a longer one is ignored whole
MAX_LINK_LABELS = 100  # labels a link may carry (a longer list belongs in a saved set or a file)
PARAMS = ("index", "k", "labels", "template", "preset", "tab")

Note = tuple[str, ...]  # (i18n key, *values): what was ignored and why, said in the visitor's language by the UI


@dataclass(frozen=True)
class Link:
    """What a link asks for; None where it asks nothing."""

    index: int | None = None
    k: int | None = None
    labels: tuple[str, ...] | None = None
    template: str | None = None  # a template-set key, or one template with {}
    preset: str | None = None  # a label preset key
    tab: str | None = None


def _int(value: str, lo: int, hi: int) -> int | None:
    try:
        n = int(value.strip())
    except ValueError:
        return None
    return n if lo <= n <= hi else None


def read_link(query: str | Mapping[str, str]) -> tuple[Link, tuple[Note, ...]]:
    """The valid part of a page's query string (`?index=15&k=5`, or its parsed mapping), and a note for each
    value ignored. Never raises: a bad link still opens the page, with its defaults."""
    if isinstance(query, str):
        if len(query) > MAX_QUERY:
            return Link(), (("link_too_long", MAX_QUERY),)
        query = dict(parse_qsl(query.lstrip("?"), keep_blank_values=True))
    link, notes = Link(), []
    if "index" in query:
        if (index := _int(query["index"], 0, TEST_SIZE - 1)) is None:
            notes.append(("link_bad_index", query["index"][:20], TEST_SIZE - 1))
        link = replace(link, index=index)
    if "k" in query:
        if (k := _int(query["k"], 1, MAX_TOP_K)) is None:
            notes.append(("link_bad_k", query["k"][:20], MAX_TOP_K))
        link = replace(link, k=k)
    if "preset" in query:
        if query["preset"] in LABEL_PRESETS:
            link = replace(link, preset=query["preset"])
        else:
            notes.append(("link_bad_preset", query["preset"][:40], ", ".join(LABEL_PRESETS)))
    if "template" in query:
        tpl = query["template"]
        if tpl in TEMPLATE_SETS or "{}" in tpl:
            link = replace(link, template=tpl)
        else:
            notes.append(("link_bad_template", tpl[:40], ", ".join(TEMPLATE_SETS), "{}"))
    if "labels" in query:
        labels = tuple(s for s in query["labels"].split(",") if s.strip())
        if len(labels) > MAX_LINK_LABELS:
            notes.append(("link_many_labels", len(labels), MAX_LINK_LABELS))
        else:
            link = replace(link, labels=labels)
    if link.labels is not None or link.template is not None:
        try:  # the set the link makes, checked as the editors check it
            checked, templates, _ = validate_set(list(labels_of(link)), list(templates_of(link)))
            link = replace(link, labels=checked.labels if link.labels is not None else None,
                           template=link.template if link.template in TEMPLATE_SETS or link.template is None
                           else templates[0])  # normalised as typing normalises it
        except PromptError as exc:
            notes.append(("link_bad_labels", str(exc)))
            link = replace(link, labels=None, template=None)
    if "tab" in query:
        if query["tab"] in TABS:
            link = replace(link, tab=query["tab"])
        else:
            notes.append(("link_bad_tab", query["tab"][:40], ", ".join(TABS)))
    unknown = sorted(set(query) - set(PARAMS) - {"__theme"})  # Gradio reads __theme itself
    if unknown:
        notes.append(("link_unknown", ", ".join(u[:20] for u in unknown[:5])))
    return link, tuple(notes)


def labels_of(link: Link) -> tuple[str, ...]:
    """The labels a link's `labels` or `preset` name (CIFAR-100's when it names neither)."""
    if link.labels is not None:
        return link.labels
    return LABEL_PRESETS[link.preset or "cifar100"].labels


def templates_of(link: Link) -> tuple[str, ...]:
    """The templates a link's `template` names (the default single template when it names none)."""
    if link.template is None:
        return TEMPLATE_SETS["single"].templates
    return TEMPLATE_SETS[link.template].templates if link.template in TEMPLATE_SETS else (link.template,)


def set_fields(labels: tuple[str, ...], templates: tuple[str, ...]) -> dict:
    """A label set as link fields: a preset's key (none for the default CIFAR-100), else the labels; a
    template set's key (none for the default single template), else the one template (several custom
    templates can't be carried)."""
    out = {}
    preset, tset = preset_key(labels), template_set_key(templates)
    if preset is None:
        out["labels"] = tuple(labels)
    elif preset != "cifar100":
        out["preset"] = preset
    if tset is None and len(templates) == 1:
        out["template"] = templates[0]
    elif tset not in (None, "single"):
        out["template"] = tset
    return out


def link_query(link: Link) -> str:
    """`?index=15&k=5…` for a link (the values `read_link` reads back); labels holding a comma can't be
    carried and are left out."""
    def encoded(with_labels: bool) -> str:
        pairs = [("index", link.index), ("k", link.k), ("preset", link.preset), ("template", link.template)]
        if with_labels:
            pairs.append(("labels", ",".join(link.labels)))
        pairs.append(("tab", link.tab))
        query = urlencode([(k, v) for k, v in pairs if v is not None], safe=",{}")
        return f"?{query}" if query else ""

    carry = (link.labels is not None and not any("," in lab for lab in link.labels)
             and len(link.labels) <= MAX_LINK_LABELS)
    query = encoded(carry)
    return query if len(query) <= MAX_QUERY else encoded(False)  # never longer than read_link reads
