"""Shareable links: the small, checked state a page URL may carry, read on load and written for a result.

A link never carries an image. Values are checked by the checkers every shell uses; a bad one becomes a note (its
`Refusal`, said later in the visitor's language), not an error. No gradio here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import parse_qsl, urlencode

from ..core import checks
from ..core.labels import LabelSet
from ..core.search import SearchQuery, results
from ..core.words import Refusal

__all__ = ["Link", "read_link", "link_query", "left_out", "TABS", "MAX_QUERY", "MAX_LINK_LABELS"]

TABS = ("predict", "search", "labels", "evaluate", "architecture", "about")  # the app's tab ids
MAX_QUERY = 4000  # characters of query string read at all; a longer one is ignored whole
MAX_LINK_LABELS = 100  # labels a link may carry (a longer list belongs in a saved set or a file)
PARAMS = ("index", "k", "labels", "template", "preset", "encoder", "tab", "q", "neg", "raw", "n")
SET_PARAMS = ("labels", "template", "preset", "encoder")


@dataclass(frozen=True)
class Link:
    """What a link asks for; None where it asks nothing."""

    index: int | None = None
    k: int | None = None
    label_set: LabelSet | None = None
    tab: str | None = None
    search: SearchQuery | None = None  # `q` (and `neg`, `raw=1`): a search to run on opening
    n: int | None = None  # how many search results


def read_link(query: str | Mapping[str, str]) -> tuple[Link, tuple[Refusal, ...]]:
    """The valid part of a page's query string (`?index=15&k=5`, or its parsed mapping), and a note for each
    value ignored. Never raises: a bad link still opens the page, with its defaults."""
    if isinstance(query, str):
        if len(query) > MAX_QUERY:
            return Link(), (Refusal("link_too_long", MAX_QUERY),)
        query = dict(parse_qsl(query.lstrip("?"), keep_blank_values=True))
    link, notes = Link(), []
    if "index" in query:
        try:
            link = replace(link, index=checks.cifar_index(query["index"].strip()))
        except Refusal:
            notes.append(Refusal("link_bad_index", query["index"][:20], checks.TEST_SIZE - 1))
    if "k" in query:
        try:
            link = replace(link, k=checks.top_k(query["k"].strip()))
        except Refusal:
            notes.append(Refusal("link_bad_k", query["k"][:20], checks.MAX_TOP_K))
    if any(p in query for p in SET_PARAMS):
        try:  # the set the link makes, checked as the editors check it
            link = replace(link, label_set=LabelSet.from_query(query, MAX_LINK_LABELS))
        except Refusal as exc:
            notes.append(exc)
    if "q" in query or "neg" in query:
        try:
            link = replace(link, search=SearchQuery.of(query.get("q", ""), query.get("neg", ""),
                                                       raw=query.get("raw", "") == "1"))
        except Refusal as exc:
            notes.append(exc)
    if "n" in query:
        try:
            link = replace(link, n=results(query["n"].strip()))
        except Refusal as exc:
            notes.append(exc)
    if "tab" in query:
        if query["tab"] in TABS:
            link = replace(link, tab=query["tab"])
        else:
            notes.append(Refusal("link_bad_tab", query["tab"][:40], ", ".join(TABS)))
    unknown = sorted(set(query) - set(PARAMS) - {"__theme"})  # Gradio reads __theme itself
    if unknown:
        notes.append(Refusal("link_unknown", ", ".join(u[:20] for u in unknown[:5])))
    return link, tuple(notes)


def link_query(link: Link) -> str:
    """`?index=15&k=5…` for a link (the values `read_link` reads back); a set's labels are left out when the
    query would be longer than `read_link` reads."""
    def encoded(fields: dict[str, str]) -> str:
        s = link.search
        pairs = [("index", link.index), ("k", link.k), ("preset", fields.get("preset")),
                 ("template", fields.get("template")), ("labels", fields.get("labels")),
                 ("encoder", fields.get("encoder")),
                 ("q", s.text if s and s.text else None), ("neg", s.negative if s and s.negative else None),
                 ("raw", "1" if s and s.raw else None), ("n", link.n), ("tab", link.tab)]
        query = urlencode([(k, v) for k, v in pairs if v is not None], safe=",{}")
        return f"?{query}" if query else ""

    fields = link.label_set.query() if link.label_set is not None else {}
    if link.label_set is not None and len(link.label_set.labels) > MAX_LINK_LABELS:
        fields.pop("labels", None)
    query = encoded(fields)
    if len(query) > MAX_QUERY:
        fields.pop("labels", None)
        query = encoded(fields)
    return query


def left_out(link: Link) -> tuple[str, ...]:
    """What of the link's label set its query cannot carry (it reads back otherwise): "labels", "templates",
    "encoder", in that order; empty when the whole set travels."""
    if link.label_set is None:
        return ()
    back = read_link(link_query(link))[0].label_set or LabelSet.preset()
    sent = link.label_set
    return tuple(part for part, same in (("labels", back.labels == sent.labels),
                                         ("templates", back.templates == sent.templates),
                                         ("encoder", back.encoder == sent.encoder)) if not same)
