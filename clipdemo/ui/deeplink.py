"""Opening the page: a shared link's values (`?index=15&k=5&labels=cat,dog`), or the visitor's last label set.

Each bad value is ignored with a note above the tabs, never an error page. Hugging Face passes a Space page's query
string into the app's frame on the first load only, so the page reads `window.location.search` once, as it loads.
"""

from __future__ import annotations

import gradio as gr

from ..core.labels import LabelSet
from .common import CUSTOM, md_text
from .lang import lang_of, say
from .links import Link, read_link
from .tabs import saved_sets
from .tabs.labels import FIRST_PROMPT, LabelsTab
from .tabs.predict import DEFAULT_INDEX, PredictTab
from .tabs.search import SearchTab

__all__ = ["PageOpen"]


class PageOpen:
    """The page-load handler over the Predict and Labels tabs."""

    def __init__(self, predict: PredictTab, labels: LabelsTab, search: SearchTab):
        self.predict, self.labels, self.search = predict, labels, search

    @staticmethod
    def _label_set(link: Link, store: dict | None) -> LabelSet | None:
        """The label set the page opens with: the link's, else the visitor's last one (checked again: a
        browser's storage is untrusted), else None (the default)."""
        if link.label_set is not None:
            return link.label_set
        return LabelSet.from_json(saved_sets.clean(store)["active"])

    def open_page(self, query: str | None, store: dict | None, request: gr.Request = None) -> dict:
        """Apply the page's query string and the visitor's stored label set."""
        lang = lang_of(request)
        link, notes = read_link(query or "")
        label_set = self._label_set(link, store)
        said = " ".join(md_text(note.say(lang)) for note in notes)
        lab, p = self.labels, self.predict
        out = {lab.sets.choice: gr.Dropdown(choices=saved_sets.names(store)), **lab.tokens(FIRST_PROMPT, request),
               self.note: "" if not notes else "ℹ️ " + say("link_ignored", lang) + " " + said,
               self.classify: link.index == DEFAULT_INDEX}
        if label_set is not None:
            out.update({lab.state: label_set, lab.label_box: label_set.label_text(),
                        lab.tpl_box: label_set.template_text(), lab.preset: label_set.label_preset or CUSTOM,
                        lab.tpl_preset: label_set.template_set or CUSTOM, lab.encoder: label_set.encoder})
        shown = label_set or LabelSet.preset()
        out.update({lab.summary: lab.label_summary(shown, lang), lab.sets.download: lab.sets.download_set(shown),
                    lab.hint_md: lab.hint(shown.label_text(), shown.template_text(), shown.encoder, lang,
                                          shown.label_preset)})
        if link.index is not None:
            out[p.index] = link.index
        if link.k is not None:
            out[p.top_k] = link.k
        s = self.search
        out[self.run_search] = link.search is not None
        if link.search is not None:
            out.update({s.query: link.search.text, s.negative: link.search.negative, s.raw: link.search.raw})
        if link.n is not None:
            out[s.n] = link.n
        tab = link.tab or ("search" if link.search is not None else None)
        if tab is not None:
            out[self.tabs] = gr.Tabs(selected=tab)
        return out

    def classify_link(self, classify: bool, index: float, top_k: float, label_set: LabelSet, answering=None,
                      request: gr.Request = None, progress=gr.Progress()) -> dict:
        """Classify the linked image when the slider's change event will not (the link names image 15)."""
        if not classify:  # an empty dict would be read as one value: every output is left as it is
            return {c: gr.skip() for c in self.predict.index_outputs}
        return self.predict.predict_index(index, top_k, label_set, answering, request, progress)

    def search_link(self, run: bool, query_text: str, negative: str, raw: bool, n: float, source: str, image,
                    weight: float, like, gallery, request: gr.Request = None, progress=gr.Progress()) -> dict:
        """Run the linked search (the query the link put in the Search tab's boxes)."""
        if not run:
            return {c: gr.skip() for c in self.search_outputs}
        return self.search.search(query_text, negative, raw, n, source, image, weight, like, gallery, request, progress)

    def wire(self, demo: gr.Blocks, tabs: gr.Tabs, labels_state: gr.State, store: gr.BrowserState,
             note: gr.Markdown) -> None:
        """On load: read the address's query string in the browser, apply it, then classify or search if asked."""
        query = gr.Textbox(visible=False)
        self.tabs, self.note, self.classify, self.run_search = tabs, note, gr.State(False), gr.State(False)
        p, lab, s = self.predict, self.labels, self.search
        outputs = [p.index, p.top_k, labels_state, lab.label_box, lab.tpl_box, lab.preset, lab.tpl_preset, lab.summary,
                   lab.encoder, lab.hint_md,
                   lab.token_table, lab.token_note, lab.sets.download, tabs, lab.sets.choice, note, self.classify,
                   self.run_search, s.query, s.negative, s.raw, s.n]
        self.search_outputs = s.outputs
        opened = demo.load(self.open_page, [query, store], outputs, js="(query, store) => [window.location.search, store]",
                           api_visibility="private")
        opened.then(self.classify_link, [self.classify, p.index, p.top_k, labels_state, p.answering], p.index_outputs,
                    api_visibility="private")
        opened.then(self.search_link, [self.run_search, *s.inputs], s.outputs, api_visibility="private",
                    preprocess=False)
