"""The Search tab: find images by text, by image, or both, in CIFAR-100's test split or the visitor's own pictures.

Until the runtime's background index is complete, a search covers what is encoded, and says so. A visitor's own
pictures are kept as features and thumbnails only, in their session.
"""

from __future__ import annotations

import hashlib
import json
import math

import gradio as gr
from PIL import Image

from ...core.search import DEFAULT_RESULTS, MAX_RESULTS, SearchQuery, results
from ...core.words import Refusal
from ...core.zeroshot import LOGIT_SCALE
from ...io import figures
from ...io.images import image_source, open_image
from ...serving.runtime import Runtime
from ...tasks.classify import read_batch
from ...tasks.search import MAX_GALLERY, THUMB, Galleries, Gallery, SearchResult, search_cifar
from .. import files
from ..common import UI_API, md_text, progress_fn, saying, wait_for_service
from ..lang import lang_of, say
from ..links import Link, link_query

__all__ = ["SearchTab"]

SHOWN = 96  # px a CIFAR-100 result is shown at in the gallery (32x32, enlarged without blur)
BIG = 224  # px of the selected result


class SearchTab:
    """Search over the shared feature store, or over the visitor's own gallery."""

    def __init__(self, runtime: Runtime):
        self.rt = runtime
        self.galleries = Galleries()  # every visitor's pictures, bounded together

    # -- what the tab says about the index ---------------------------------------------------------------
    def coverage(self, lang: str) -> str:
        """How much of CIFAR-100's test split search covers now, and how long the rest should take."""
        st = self.rt.index_status()
        if st.total == 0:
            return say("search_cover_none", lang)
        if st.complete:
            return say("search_cover_all", lang, f"{st.total:,}")
        if st.building:
            left = st.seconds_left
            when = (say("search_minutes", lang, max(1, math.ceil(left / 60))) if left is not None
                    else say("search_soon", lang))
            return say("search_cover_building", lang, f"{st.covered:,}", f"{st.total:,}", when)
        return say("search_cover_partial", lang, f"{st.covered:,}", f"{st.total:,}")

    def show_coverage(self, request: gr.Request = None) -> dict:
        """What search covers, when the tab opens: in a line of its own, so that a search answered meanwhile (a link's)
        is never overwritten by it."""
        return {self.cover: self.coverage(lang_of(request))}

    # -- searching -----------------------------------------------------------------------------------------
    def search(self, query_text: str, negative: str, raw: bool, n: float, source: str, image: dict | str | None,
               weight: float, like: dict | None, gallery: Gallery, request: gr.Request = None,
               progress=gr.Progress()) -> dict:
        """Run the query (text, negative text, an image or a result to look like) over the chosen collection."""
        lang = lang_of(request)
        with saying(lang):
            k = results(n)
            picture = self._picture(image)
            query = SearchQuery.of(query_text, negative, raw=raw, image_weight=weight,
                                   has_image=picture is not None or like is not None)
        zs = wait_for_service(self.rt, progress, lang)
        with saying(lang):
            if picture is not None:
                feature = zs.image_features([picture])[0]  # [D]
            elif like is not None:
                feature = self._like_feature(zs, like, gallery)
            else:
                feature = None
            if source == "gallery":
                result = gallery.search(zs, query, k, feature)
            else:
                self.rt.build_index_in_request(progress_fn(progress, lang))  # ZeroGPU: the first search builds it
                result = search_cifar(zs, self.rt.dataset(), query, k, feature)
        return self._shown(result, query, k, like, gallery, lang)

    def _picture(self, image: dict | str | None) -> Image.Image | None:
        """The query image of an upload record (decoded by `open_image`, never by the framework), or None."""
        record = image if isinstance(image, dict) else {"path": image}
        if not (record.get("path") or record.get("url")):
            return None
        return open_image(image_source(record, gr.utils.get_upload_folder()), fit=self.rt.config().image_resolution)

    def _like_feature(self, zs, like: dict, gallery: Gallery):
        """The feature of the result "more like this" was asked for: `[D]`."""
        if like["source"] == "gallery":
            if like["index"] >= len(gallery):
                raise Refusal("search_like_gone")
            return gallery.features[like["index"]]
        data = self.rt.dataset()
        return zs.cifar_feature(like["index"], data.image(like["index"]), len(data))

    def _thumb(self, source: str, index: int, gallery: Gallery, size: int) -> Image.Image:
        if source == "gallery":
            return gallery.thumbs[index]
        return figures.enlarge(self.rt.dataset().image(index), size)

    def _shown(self, result: SearchResult, query: SearchQuery, k: int, like: dict | None, gallery: Gallery,
               lang: str) -> dict:
        cifar = result.source == "cifar"
        shown = [(self._thumb(result.source, h.index, gallery, SHOWN),
                  f"{h.cosine:.3f} #{h.index} {h.label}" if cifar else f"{h.cosine:.3f} {h.label}")
                 for h in result.hits]
        what = md_text(query.prompt) if query.prompt else say("search_by_image_only", lang)
        if like is not None:
            what += " · " + say("search_like_what", lang, self._like_name(like, gallery))
        if query.negative:
            what += " · " + say("search_not", lang, md_text(query.negative_prompt))
        status = (say("search_found_one", lang, what) if len(result.hits) == 1
                  else say("search_found", lang, len(result.hits), what))
        status += " " + (self.coverage(lang) if cifar else say("gallery_has", lang, len(gallery), MAX_GALLERY))
        counts = result.classes()
        chart = (figures.counts_chart(counts[:15], say("search_mostly", lang, ", ".join(f"{lab} {c}" for lab, c in
                                                                                         counts[:3])),
                                      say("search_axis", lang)) if cifar and counts else None)
        # A link carries the query only: never an image, nor a visitor's own pictures.
        share = (link_query(Link(tab="search", search=query, n=k)) if cifar and query.text and like is None else "")
        return {self.results: shown, self.status: status, self.chart: chart, self.files: files.search_files(result, query),
                self.found: result, self.selected: None, self.big: None, self.info: "", self.share: share,
                self.cover: ""}  # the status says the coverage now

    def _like_name(self, like: dict, gallery: Gallery) -> str:
        if like["source"] == "gallery" and like["index"] < len(gallery):
            return md_text(gallery.names[like["index"]])
        return f"CIFAR-100 #{like['index']}"

    # -- one result --------------------------------------------------------------------------------------------
    def select(self, found: SearchResult | None, gallery: Gallery, evt: gr.SelectData, request: gr.Request = None) -> dict:
        """Show the clicked result large, with what it is."""
        lang = lang_of(request)
        if found is None or evt.index is None or not 0 <= int(evt.index) < len(found.hits):
            return {self.selected: None, self.big: None, self.info: ""}
        hit = found.hits[int(evt.index)]
        if found.source == "gallery" and hit.index >= len(gallery):  # shown before the pictures were cleared
            return {self.selected: None, self.big: None, self.info: say("search_like_gone", lang)}
        big = self._thumb(found.source, hit.index, gallery, BIG)
        if found.source == "gallery":
            big = big.resize((BIG, round(BIG * big.height / big.width)), Image.Resampling.BICUBIC)
            info = say("search_picked_own", lang, md_text(hit.label), f"{hit.cosine:.3f}")
        else:
            info = say("search_picked", lang, hit.index, md_text(hit.label), f"{hit.cosine:.3f}")
        return {self.selected: {"source": found.source, "index": hit.index}, self.big: big, self.info: info}

    def open_in_predict(self, selected: dict | None, current: float, request: gr.Request = None) -> dict:
        """Open the Predict tab on the selected CIFAR-100 result (its index slider classifies it)."""
        lang = lang_of(request)
        if selected is None:
            raise gr.Error(say("search_pick_first", lang))
        if selected["source"] != "cifar":
            raise gr.Error(say("search_not_cifar", lang))
        p = self.predict
        return {self.tabs: gr.Tabs(selected="predict"), p.sources: gr.Tabs(selected="index"), p.index: selected["index"],
                self.classify: int(current) == selected["index"]}  # an unchanged slider fires no change event

    def classify_same(self, classify: bool, index: float, top_k: float, label_set, answering=None,
                      request: gr.Request = None, progress=gr.Progress()) -> dict:
        """Classify the selected result when the index slider already showed it (no change event then), as the
        session answers (its threshold and examples)."""
        if not classify:
            return {c: gr.skip() for c in self.predict.index_outputs}
        return self.predict.predict_index(index, top_k, label_set, answering, request, progress)

    def explain_match(self, selected: dict | None, query_text: str, negative: str, raw: bool, gallery: Gallery,
                      request: gr.Request = None, progress=gr.Progress()) -> dict:
        """The selected result with its relevancy map for the query's words: where in the image the match is."""
        lang = lang_of(request)
        if selected is None:
            raise gr.Error(say("search_pick_first", lang))
        with saying(lang):
            query = SearchQuery.of(query_text, negative, raw=raw, has_image=True)
            if not query.prompt:
                raise Refusal("search_explain_text")
        zs = wait_for_service(self.rt, progress, lang)
        progress(0, desc=say("explain_working", lang))
        with saying(lang):
            if selected["source"] == "gallery":
                if selected["index"] >= len(gallery):
                    raise Refusal("search_like_gone")
                image = gallery.thumbs[selected["index"]]
                # the service's cache is shared by every visitor: a picture is keyed by what it is, never by its
                # place in one visitor's gallery (another's picture 0 is another picture)
                key = ("search-own", hashlib.sha256(image.tobytes()).hexdigest(), image.size)
            else:
                image = self.rt.dataset().image(selected["index"])
                key = ("search", selected["index"])
            ex = zs.inside.explain_prompt(image, key, query.prompt)
        big = figures.overlay_base(figures.input_view(zs.pixels(image), min_size=0))
        words, cosine = md_text(query.prompt), f"{ex.logit / LOGIT_SCALE:.3f}"
        info = (say("search_explained_own", lang, words, cosine, THUMB) if selected["source"] == "gallery"
                else say("search_explained", lang, words, cosine))  # a picture's own: only its thumbnail is kept
        note = "" if zs.loaded.info.trained else " " + say("explain_random", lang)
        return {self.big: figures.attention_overlay(big, ex.image), self.info: info + note}

    def more_like(self, selected: dict | None, request: gr.Request = None) -> dict:
        """Make the selected result the query image (the text and negative are cleared): "more like this"."""
        if selected is None:
            raise gr.Error(say("search_pick_first", lang_of(request)))
        return {self.like: dict(selected), self.query: "", self.negative: "", self.image: None,
                self.source: selected["source"]}

    def forget_like(self) -> dict:
        return {self.like: None}

    # -- the visitor's own pictures -------------------------------------------------------------------------------
    def add_to_gallery(self, uploads: list | None, gallery: Gallery, request: gr.Request = None,
                       progress=gr.Progress()) -> dict:
        """Add image files, or zips of images, to the visitor's gallery (at most MAX_GALLERY in all)."""
        lang = lang_of(request)
        paths = [f if isinstance(f, str) else f.get("path") for f in (uploads or [])]
        with saying(lang):
            items = read_batch([p for p in paths if p], fit=self.rt.config().image_resolution, limit=MAX_GALLERY)
        zs = wait_for_service(self.rt, progress, lang)
        with saying(lang):
            grown = self.galleries.add(gallery, zs, items, progress_fn(progress, lang))
        return {self.gallery: grown, self.gallery_note: say("gallery_has", lang, len(grown), MAX_GALLERY),
                self.source: "gallery", self.uploads: None}

    def clear_gallery(self, found: SearchResult | None, request: gr.Request = None) -> dict:
        """Drop the visitor's pictures, and results shown from them (their places would name other pictures)."""
        out = {self.gallery: Gallery(), self.gallery_note: say("gallery_cleared", lang_of(request)),
               self.source: "cifar", self.like: None}
        if found is not None and found.source == "gallery":
            out.update({self.results: [], self.found: None, self.selected: None, self.big: None, self.info: ""})
        return out

    # -- layout and wiring -------------------------------------------------------------------------
    def build(self, tabs: gr.Tabs, predict, labels_state: gr.State, share_base: str = "") -> None:
        """Lay out the tab (inside the app's `gr.Tabs`) and wire its events; `predict` is the Predict tab (a result
        opens there)."""
        self.tabs, self.predict = tabs, predict
        with gr.Tab(say("tab_search"), id="search") as tab:
            gr.Markdown(say("search_intro"))
            with gr.Row():
                self.query = gr.Textbox(label=say("search_query"), placeholder=say("search_placeholder"), scale=3,
                                        elem_id="search-query", max_length=400)
                self.negative = gr.Textbox(label=say("search_negative"), placeholder=say("search_negative_hint"),
                                           scale=2, elem_id="search-negative", max_length=400)
            with gr.Row():
                self.raw = gr.Checkbox(False, label=say("search_raw"), elem_id="search-raw")
                self.n = gr.Slider(1, MAX_RESULTS, value=DEFAULT_RESULTS, step=1, label=say("search_n"),
                                   elem_id="search-n")
                self.source = gr.Radio([(say("search_in_cifar"), "cifar"), (say("search_in_gallery"), "gallery")],
                                       value="cifar", label=say("search_in"), elem_id="search-source")
            with gr.Accordion(say("search_by_image"), open=False):
                with gr.Row():
                    self.image = gr.Image(label=say("search_image"), type="filepath", height=200,
                                          sources=["upload", "clipboard"], elem_id="search-image")
                    self.weight = gr.Slider(0, 1, value=0.5, step=0.05, label=say("search_image_weight"))
            with gr.Accordion(say("gallery_title"), open=False):
                gr.Markdown(say("gallery_intro"))
                self.uploads = gr.File(label=say("gallery_files"), file_count="multiple",
                                       file_types=["image", ".zip"], elem_id="gallery-files")
                with gr.Row():
                    add = gr.Button(say("gallery_add"), elem_id="gallery-add")
                    clear = gr.Button(say("gallery_clear"), elem_id="gallery-clear")
                self.gallery_note = gr.Markdown(elem_id="gallery-note")
            run = gr.Button(say("search_run"), variant="primary", elem_id="search-run")
            with gr.Column(elem_id="search-status"):
                self.status = gr.Markdown()
                self.cover = gr.Markdown()  # what search covers, shown when the tab opens
            self.results = gr.Gallery(label=say("search_results"), columns=5, height="auto", allow_preview=False,
                                      elem_id="search-results", elem_classes="pixelated")
            with gr.Row():
                self.big = gr.Image(label=say("search_selected"), type="pil", height=BIG + 30, interactive=False,
                                    elem_id="search-selected", elem_classes="pixelated")
                with gr.Column():
                    self.info = gr.Markdown(elem_id="search-info")
                    classify = gr.Button(say("search_open"), elem_id="search-classify")
                    explain = gr.Button(say("search_explain"), elem_id="search-explain")
                    more = gr.Button(say("search_more"), elem_id="search-more")
            self.chart = gr.Plot(label=say("search_classes"), elem_id="search-classes")
            with gr.Row(equal_height=True):
                self.share = gr.Textbox(visible=False)
                link = gr.Textbox(label=say("share_link"), interactive=False, buttons=["copy"], elem_id="search-link",
                                  scale=4)
                self.files = gr.File(label=say("downloads"), file_count="multiple", interactive=False, scale=3,
                                     elem_id="search-files")
            self.found = gr.State(None)  # the last SearchResult of this session
            self.selected = gr.State(None)  # {"source", "index"} of the result shown large
            self.like = gr.State(None)  # the result "more like this" asked for
            self.classify = gr.State(False)
            # The visitor's own pictures: their session's only, dropped an hour after the last change at the latest
            # (Gradio drops a closed session's state within the hour too).
            self.gallery = gr.State(Gallery(), time_to_live=3600)

        self.inputs = inputs = [self.query, self.negative, self.raw, self.n, self.source, self.image, self.weight,
                                self.like, self.gallery]
        self.outputs = outputs = [self.results, self.status, self.chart, self.files, self.found, self.selected,
                                  self.big, self.info, self.share, self.cover]
        gr.on([run.click, self.query.submit, self.negative.submit], self.search, inputs, outputs,
              api_name="search_page", api_visibility=UI_API, preprocess=False, trigger_mode="always_last")
        gr.on([self.query.input, self.image.upload, self.image.clear], self.forget_like, None, self.like, queue=False,
              api_visibility="private")
        tab.select(self.show_coverage, None, self.cover, queue=False, api_visibility="private")
        self.results.select(self.select, [self.found, self.gallery], [self.selected, self.big, self.info],
                            queue=False, api_visibility="private")
        p = predict
        classify.click(self.open_in_predict, [self.selected, p.index], [tabs, p.sources, p.index, self.classify],
                       queue=False, api_visibility="private").then(
            self.classify_same, [self.classify, p.index, p.top_k, labels_state, p.answering], p.index_outputs,
            api_visibility="private")
        explain.click(self.explain_match, [self.selected, self.query, self.negative, self.raw, self.gallery],
                      [self.big, self.info], api_name="explain_match", api_visibility=UI_API)
        more.click(self.more_like, self.selected, [self.like, self.query, self.negative, self.image, self.source],
                   queue=False, api_visibility="private").then(self.search, inputs, outputs, preprocess=False,
                                                               api_name="search_like", api_visibility="private")
        add.click(self.add_to_gallery, [self.uploads, self.gallery],
                  [self.gallery, self.gallery_note, self.source, self.uploads], api_name="add_to_gallery",
                  api_visibility=UI_API, concurrency_id="batch", concurrency_limit=1)
        clear.click(self.clear_gallery, self.found, [self.gallery, self.gallery_note, self.source, self.like,
                                                     self.results, self.found, self.selected, self.big, self.info],
                    queue=False, api_visibility="private")
        base = json.dumps(share_base)
        self.share.change(None, self.share, link,
                          js=f"(q) => q ? ({base} || (window.location.origin + window.location.pathname)) + q : ''")
