"""Opening the page: a shared link's values (`?index=15&k=5&labels=cat,dog`), or the visitor's last label set.

Holds `PageOpen` (`open_page`, the load handler, a plain method tests call; `classify_link`, which
classifies a linked index the slider did not change to; `wire`). Links are read by `clipdemo.links`: each
bad value is ignored with a note above the tabs, never an error page. Hugging Face passes a Space page's
query string into the app's frame on the first load only, so the page reads `window.location.search` once,
as it loads, on the Space and on the app's own address alike.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import gradio as gr

from .. import labelsets
from ..i18n import text
from ..links import Link, labels_of, read_link, templates_of
from ..prompts import validate_set
from .common import KEEP, LabelState, event, md_text
from .lang import lang, t
from .tabs.labels import FIRST_PROMPT, LabelsTab, state_for
from .tabs.predict import DEFAULT_INDEX, PredictTab, PredictView

__all__ = ["PageOpen", "PageView"]


@dataclass(frozen=True)
class PageView:
    """What a link (or the visitor's stored set) changes as the page opens; KEEP where nothing."""

    index: int | object
    k: int | object
    state: LabelState | object
    labels: str | object
    templates: str | object
    preset: str | object
    template_set: str | object
    summary: str  # in the visitor's language (the page was built with no visitor)
    tokens: dict
    token_note: str
    download: str  # the active labels as a file, for the download button
    tabs: gr.Tabs | object
    names: gr.Dropdown
    note: str
    classify: bool  # classify the linked index here: it is the slider's default, so no change event will


class PageOpen:
    """The page-load handler over the Predict and Labels tabs."""

    def __init__(self, predict: PredictTab, labels: LabelsTab):
        self.predict, self.labels = predict, labels

    def _state(self, link: Link, store: dict | None) -> LabelState | None:
        """The label set the page opens with: the link's, else the visitor's last one (checked again: a
        browser's storage is untrusted), else None (the default)."""
        if link.labels is not None or link.preset is not None or link.template is not None:
            return state_for(labels_of(link), templates_of(link))  # checked by read_link
        if (active := labelsets.clean(store)["active"]) is None:
            return None
        try:
            checked, templates, _ = validate_set(active["labels"], active["templates"])
        except ValueError:
            return None
        return state_for(checked.labels, templates)

    def open_page(self, query: str | None, store: dict | None) -> PageView:
        """Apply the page's query string and the visitor's stored label set."""
        link, notes = read_link(query or "")
        state = self._state(link, store)
        said = [text(key, lang(), *(md_text(str(v)) for v in values)) for key, *values in notes]
        note = "" if not said else "ℹ️ " + t("link_ignored") + " " + " ".join(said)
        names = gr.Dropdown(choices=labelsets.names(store))
        if state is None:
            edit = dict(state=KEEP, labels=KEEP, templates=KEEP, preset=KEEP, template_set=KEEP)
        else:
            edit = dict(state=state, labels="\n".join(state.labels), templates="\n".join(state.templates),
                        preset=state.label_preset, template_set=state.template_set)
        shown = state or LabelState()
        tokens = self.labels.tokens(FIRST_PROMPT)
        return PageView(index=KEEP if link.index is None else link.index, k=KEEP if link.k is None else link.k,
                        summary=self.labels.label_summary(shown), tokens=tokens.table, token_note=tokens.note,
                        download=self.labels.sets.download_set(shown),
                        tabs=KEEP if link.tab is None else gr.Tabs(selected=link.tab), names=names, note=note,
                        classify=link.index == DEFAULT_INDEX, **edit)

    def classify_link(self, classify: bool, index: float, top_k: float, state: LabelState,
                      progress=gr.Progress()) -> PredictView:
        """Classify the linked image when the slider's change event will not (the link names image 15)."""
        if not classify:
            return PredictView(**{f.name: KEEP for f in fields(PredictView)})
        return self.predict.predict_index(index, top_k, state, progress)

    def wire(self, demo: gr.Blocks, tabs: gr.Tabs, labels_state: gr.State, store: gr.BrowserState,
             note: gr.Markdown) -> None:
        """On load: read the address's query string in the browser, apply it, then classify if needed."""
        query = gr.Textbox(visible=False)
        classify = gr.State(False)
        p, lab = self.predict, self.labels
        demo.load(**event(self.open_page, [query, store], dict(
                      index=p.index, k=p.top_k, state=labels_state, labels=lab.label_box, templates=lab.tpl_box,
                      preset=lab.preset, template_set=lab.tpl_preset, summary=lab.summary, tokens=lab.token_table,
                      token_note=lab.token_note, download=lab.sets.download, tabs=tabs,
                      names=lab.sets.choice, note=note, classify=classify)),
                  js="(query, store) => [window.location.search, store]", api_visibility="private").then(
            **event(self.classify_link, [classify, p.index, p.top_k, labels_state], p.shown), api_visibility="private")
