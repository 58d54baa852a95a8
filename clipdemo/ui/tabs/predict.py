"""The Predict tab: a CIFAR-100 test image by index, or an upload, classified against the visitor's labels,
with the patches and the class token's attention for the classified image beside it.

Model work goes through the `ZeroShot` service. The Batch sub-tab and "Why this label?" are `batch.BatchTab` and
`explain.ExplainBox`.
"""

from __future__ import annotations

import json
import random
import uuid

import gradio as gr
from PIL import Image

from ...core import checks
from ...core.inside import cls_attention_map
from ...core.labels import CLIP, LabelSet, true_name, with_turkish
from ...core.model import ClipConfig
from ...core.words import Refusal
from ...core.zeroshot import Prediction
from ...io import figures
from ...io.images import image_source, open_image
from ...serving.runtime import Runtime
from ...serving.service import ZeroShot
from ...tasks.classify import MAX_EXAMPLES, PLAIN, Answering, predict_with, read_batch
from .. import files
from ..common import UI_API, ensure_text, hide_paths, md_text, saying, toast_text, wait_for_service
from ..lang import lang_of, say
from ..links import Link, left_out, link_query
from .batch import BatchTab
from .explain import ExplainBox

__all__ = ["PredictTab", "layer_choices", "head_choices", "DEFAULT_INDEX"]

DEFAULT_INDEX = 15  # the notebook's lion
EXAMPLES = (15, 0, 42, 2024, 9999)
ROLLOUT = "rollout"
MEAN_HEADS = "mean"


def layer_choices(config: ClipConfig) -> list[str]:
    """The layer dropdown: the rollout, then 1..layers of this architecture."""
    return [ROLLOUT, *map(str, range(1, config.vision_layers + 1))]


def head_choices(config: ClipConfig) -> list[str]:
    """The head dropdown: the mean over heads, then 1..heads of this architecture."""
    return [MEAN_HEADS, *map(str, range(1, config.vision_heads + 1))]


def examples_note(answering: Answering, lang: str) -> str:
    """Which labels have few-shot examples in this session, and how many (and a calibration temperature in use)."""
    held = answering.describe()
    said = (say("examples_held", lang, ", ".join(f"{md_text(lab)} ({n})" for lab, n in held)) if held
            else say("examples_none", lang))
    if answering.temperature != 1.0:
        said += " " + say("temperature_in_use", lang, f"{answering.temperature:.2f}")
    return said


UNFINISHED = ("-", ".", "-.", "+")  # what a number looks like halfway through typing it

def fits_line(pred: Prediction, threshold: float | None, lang: str) -> str:
    """With a "none of these" threshold: whether any label fits (the best cosine against it); else nothing."""
    if threshold is None:
        return ""
    best = f"{max(pred.cosines):.3f}"
    return say("fits_yes" if pred.fits(threshold) else "fits_none", lang, best, f"{threshold:g}")


def shown_name(lang: str):
    """How a label is written on a page in `lang`: a Turkish page shows CIFAR-100's Turkish names beside English."""
    return with_turkish if lang == "tr" else str


def truth_markdown(pred: Prediction, lang: str) -> str:
    """True class, whether top-1 is right, and the true class's rank and probability."""
    if pred.true_label is None:
        return ""
    true = md_text(shown_name(lang)(pred.true_label))
    if pred.true_rank is None:
        return say("truth_absent", lang, true)
    verdict = say("truth_right" if pred.true_rank == 1 else "truth_wrong", lang)
    return say("truth_line", lang, true, verdict, pred.true_rank, len(pred.labels), f"{100 * pred.true_prob:.2f}")


def _pick(value: str | None, whole: str, what: str) -> int | None:
    """A dropdown's '1'..'n' as a 0-based index, or None for `whole` (the rollout, the mean over heads)."""
    if value in (None, "", whole):
        return None
    try:
        return int(value) - 1
    except (TypeError, ValueError):
        raise Refusal("pick_number", what, whole, value) from None


LINK_PARTS = {"labels": "link_part_labels", "templates": "link_part_templates", "encoder": "link_part_encoder"}


def link_note(link: Link, answering: Answering | None, lang: str) -> str:
    """What a result's link leaves behind, in words ("" when it carries every choice): labels or templates it
    cannot hold, and the session's threshold, examples and temperature, which stay in this session."""
    parts = [say(LINK_PARTS[part], lang) for part in left_out(link)]
    if answering is not None and (answering.threshold is not None or answering.examples
                                  or answering.temperature != 1.0):
        parts.append(say("link_part_answering", lang))
    return say("link_left_out", lang, "; ".join(parts)) if parts else ""


class PredictTab:
    """Predictions and the attention view, over the shared runtime; gradio calls these, and so do tests."""

    def __init__(self, runtime: Runtime):
        self.rt = runtime

    def _shown(self, zs: ZeroShot, pred: Prediction, image: Image.Image, what: str, last: dict,
               label_set: LabelSet, lang: str, answering: Answering | None = None) -> dict:
        """What every prediction shows: the label list, the chart, the notebook's lines, files, the link."""
        tower = zs.tower_loaded if label_set.encoder != CLIP else None
        trained = zs.loaded.info.trained and (tower is None or tower.info.trained)
        title = (say("chart_top", lang) + (say("chart_multilingual", lang) if tower else "")
                 + (say("chart_temperature", lang, f"{answering.temperature:.2f}")
                    if answering and answering.temperature != 1.0 else "")
                 + ("" if trained else say("untrained_suffix", lang)))
        share = Link(index=last.get("index"), k=len(pred.top), label_set=label_set, tab="predict")
        chart = figures.bar_chart(pred, title, say("chart_probability", lang), shown_name(lang))
        threshold = answering.threshold if answering else None
        return {self.result: dict(pred.top), self.chart: chart, self.verdict: fits_line(pred, threshold, lang),
                self.lines: "\n".join(pred.lines()), self.truth: truth_markdown(pred, lang),
                self.files: files.prediction_files(pred, what), self.last_input: last, self.share: link_query(share),
                self.share_note: link_note(share, answering, lang)}

    def predict_index(self, index: float, top_k: float, label_set: LabelSet, answering: Answering | None = None,
                      request: gr.Request = None, progress=gr.Progress()) -> dict:
        """Classify CIFAR-100 test image `index` against the session's labels."""
        lang = lang_of(request)
        with saying(lang):
            k, data = checks.top_k(top_k), self.rt.dataset()
            i = checks.cifar_index(index, len(data))
            image = data.image(i)
        zs = wait_for_service(self.rt, progress, lang)
        ensure_text(zs, label_set, progress, lang)
        with saying(lang):
            feat = zs.cifar_feature(i, image, len(data))  # [D]: stored, or encoded once and stored
            true = true_name(label_set.labels, data.true_label(i), label_set.label_preset)  # in the set's spelling
            pred = predict_with(zs, feat, label_set, k, answering or PLAIN, true)
        return {self.original: figures.enlarge(image), self.model_input: figures.input_view(zs.pixels(image)),
                **self._shown(zs, pred, image, f"CIFAR-100 test image #{i}", {"kind": "index", "index": i},
                              label_set, lang, answering)}

    def predict_image(self, upload: dict | str | None, top_k: float, label_set: LabelSet,
                      answering: Answering | None = None, request: gr.Request = None, progress=gr.Progress()) -> dict:
        """Classify an uploaded image (a file Gradio received) against the session's labels.

        The event runs with `preprocess=False`: `upload` is Gradio's raw file record, and the bytes are
        decoded here by `open_image` (allow-listed formats, pixel budget, reduced to what the model keeps),
        never by the framework.
        """
        lang = lang_of(request)
        record = upload if isinstance(upload, dict) else {"path": upload}
        with saying(lang):
            k = checks.top_k(top_k)
            image, path = self._decode(record, self.rt.config().image_resolution)
        zs = wait_for_service(self.rt, progress, lang)
        ensure_text(zs, label_set, progress, lang)
        with saying(lang):
            pred = predict_with(zs, zs.image_features([image])[0], label_set, k, answering or PLAIN)
        return {self.upload_input: figures.input_view(zs.pixels(image)),
                **self._shown(zs, pred, image, "uploaded image", {"kind": "upload", "path": path}, label_set, lang,
                              answering)}

    @staticmethod
    def _decode(record: dict, fit: int) -> tuple[Image.Image, str]:
        """The image of an upload record and a path to find it again; a Refusal if refused."""
        if not (record.get("path") or record.get("url")):
            raise Refusal("upload_first")
        source = image_source(record, gr.utils.get_upload_folder())
        image = open_image(source, fit=fit)
        if isinstance(source, bytes):  # an inline image: kept (ten minutes at most) for this session's attention view
            path = files.results_dir() / f"inline-{uuid.uuid4().hex[:12]}.png"
            image.save(path)
            return image, str(path)
        return image, str(source)

    def set_threshold(self, value: str | float | None, answering: Answering | None,
                      request: gr.Request = None) -> Answering:
        """The session's "none of these" threshold (empty: none); a value out of -1..1 is a sentence. A number still
        being typed ("-", "0.") leaves the threshold as it was, with no sentence."""
        answering = answering or Answering()
        if isinstance(value, str) and value.strip() in UNFINISHED:
            return answering
        with saying(lang_of(request)):
            return answering.with_threshold(value.strip() if isinstance(value, str) else value)

    def add_examples(self, label: str | None, uploads: list | None, answering: Answering | None, label_set: LabelSet,
                     request: gr.Request = None, progress=gr.Progress()) -> dict:
        """Example images for one of the active labels (1 to 16 a label, kept as features in the session): from now
        on this session's predictions are few-shot for the labels with examples."""
        lang = lang_of(request)
        answering = answering or Answering()
        paths = [f if isinstance(f, str) else f.get("path") for f in (uploads or [])]
        with saying(lang):
            if label not in label_set.labels:
                raise Refusal("examples_label", str(label or "")[:40])
            items = read_batch([p for p in paths if p], fit=self.rt.config().image_resolution, limit=MAX_EXAMPLES)
            zs = wait_for_service(self.rt, progress, lang)
            answering = answering.with_examples(label, zs.image_features([image for _, image in items]))
        return {self.answering: answering, self.examples_note: examples_note(answering, lang)}

    def clear_examples(self, answering: Answering | None, request: gr.Request = None) -> dict:
        answering = (answering or Answering()).without_examples()
        return {self.answering: answering, self.examples_note: examples_note(answering, lang_of(request)),
                self.example_files: None}  # the files go with the examples they gave (#36)

    def example_labels(self, label_set: LabelSet) -> dict:
        """The labels examples can be given for: the active set's."""
        return gr.Dropdown(choices=list(label_set.labels), value=label_set.labels[0])

    def random_index(self) -> int:
        """A random CIFAR-100 test index."""
        return random.randrange(checks.TEST_SIZE)

    def image_for(self, last: dict | None, lang: str) -> tuple[Image.Image, str]:
        """The last classified image again (a dataset index, or an upload kept for this session), and what it is."""
        if not last:
            raise gr.Error(say("classify_first", lang))
        with saying(lang):
            if last.get("kind") == "index":
                return self.rt.dataset().image(last["index"]), f"CIFAR-100 #{last['index']}"
            try:
                return open_image(last["path"], fit=self.rt.config().image_resolution), say("your_image", lang)
            except (Refusal, KeyError, TypeError) as exc:
                why = exc.say(lang) if isinstance(exc, Refusal) else str(exc)
                raise gr.Error(toast_text(say("last_image_gone", lang, hide_paths(why)))) from None

    def attention(self, layer: str, head: str, last: dict | None, request: gr.Request = None,
                  progress=gr.Progress()) -> dict:
        """Patch grid over the model input, and the class token's attention (a layer and head, or rollout)."""
        lang = lang_of(request)
        zs = wait_for_service(self.rt, progress, lang)
        image, what = self.image_for(last, lang)
        with saying(lang):
            trace = zs.inside.vision_trace(image, tuple(sorted(last.items())))
            li = _pick(layer, ROLLOUT, say("layer", lang))
            hi = None if li is None else _pick(head, MEAN_HEADS, say("head", lang))
            amap = cls_attention_map(trace, li, hi)  # [grid, grid]
        shown = figures.input_view(zs.pixels(image), min_size=0)  # at the model's own resolution
        which = (say("which_rollout", lang) if li is None else say("which_layer_mean", lang, li + 1) if hi is None
                 else say("which_layer_head", lang, li + 1, hi + 1))
        note = "" if zs.loaded.info.trained else say("untrained_pattern", lang)
        patch = zs.loaded.config.vision_patch_size
        g = shown.size[0] // patch
        return {self.patches: figures.patch_figure(shown, patch, say("patch_title", lang, g, g, patch, patch, g * g)),
                self.overlay: figures.attention_overlay(figures.overlay_base(shown), amap),
                self.caption: say("attention_caption", lang, amap.numel(), what, which, note)}

    # -- layout and wiring -------------------------------------------------------------------------
    def build(self, labels_state: gr.State, share_base: str = "") -> None:
        """Lay out the tab (inside the app's `gr.Tabs`) and wire its events. `share_base` is the page that
        shared links open (the Space's page on Hugging Face; empty: this page's own address)."""
        config = self.rt.config()
        with gr.Tab(say("tab_predict"), id="predict"):
            with gr.Row():
                self.top_k = gr.Slider(1, checks.MAX_TOP_K, value=5, step=1, label=say("top_k"), scale=3)
                # "None of these": a cosine below which no label fits (empty: off); kept for the session
                # a text box, not gr.Number: Gradio 6.31's Number shows 0 for "no value", which reads as on (#36)
                self.threshold = gr.Textbox("", label=say("threshold_label"), info=say("threshold_info"),
                                            placeholder=say("threshold_placeholder"), max_lines=1, elem_id="threshold",
                                            scale=1, min_width=160)
            self.answering = gr.State(Answering())  # the session's threshold and few-shot examples
            with gr.Tabs() as self.sources:  # a CIFAR-100 index, an upload or a batch
                with gr.Tab(say("tab_index"), id="index"):
                    with gr.Row(elem_classes="index-row"):
                        self.index = gr.Slider(0, checks.TEST_SIZE - 1, value=DEFAULT_INDEX, step=1,
                                               label=say("index_label"), scale=4, min_width=200)
                        prev_btn = gr.Button(say("prev"), scale=0, min_width=80)
                        next_btn = gr.Button(say("next"), scale=0, min_width=80)
                        rand_btn = gr.Button(say("random"), scale=0, min_width=100)
                    run_index = gr.Button(say("classify"), variant="primary")
                    with gr.Row():
                        self.original = gr.Image(label=say("original_image"), type="pil", elem_classes="pixelated",
                                                 height=224, interactive=False)
                        self.model_input = gr.Image(label=say("model_input"), type="pil", height=224, interactive=False)
                    self.truth = gr.Markdown(elem_id="truth")
                    gr.Examples([[i] for i in EXAMPLES], inputs=[self.index], label=say("examples"), cache_examples=False)
                with gr.Tab(say("tab_upload"), id="upload"):
                    with gr.Row():
                        upload = gr.Image(label=say("your_image_label"), type="filepath",
                                          sources=["upload", "webcam", "clipboard"], height=280)
                        self.upload_input = gr.Image(label=say("model_input"), type="pil", height=280, interactive=False)
                    run_upload = gr.Button(say("classify_upload"), variant="primary")
                self.batch = BatchTab(self.rt)
                self.batch.build(labels_state, self.answering)
            with gr.Row():
                self.result = gr.Label(label=say("top_k"), num_top_classes=checks.MAX_TOP_K, elem_id="result-label")
                self.chart = gr.Plot(label=say("probabilities"), elem_id="result-chart")
            self.verdict = gr.Markdown(elem_id="verdict")  # "none of these", with a threshold
            with gr.Accordion(say("examples_accordion"), open=False, elem_id="examples"):
                gr.Markdown(say("examples_intro"))
                with gr.Row():
                    self.example_label = gr.Dropdown(choices=list(LabelSet.preset().labels), label=say("examples_for"),
                                                     elem_id="example-label", scale=1)
                    self.example_files = example_files = gr.File(label=say("examples_files"), file_count="multiple", file_types=["image"],
                                            elem_id="example-files", scale=2)
                with gr.Row():
                    add_examples = gr.Button(say("examples_add"), elem_id="examples-add")
                    clear_examples = gr.Button(say("examples_clear"), elem_id="examples-clear")
                self.examples_note = gr.Markdown(elem_id="examples-note")
            gr.Markdown(say("score_note"), elem_id="score-note")
            with gr.Row(equal_height=True):
                self.share = gr.Textbox(visible=False)  # the result's query string; the browser makes the full link
                link = gr.Textbox(label=say("share_link"), interactive=False, buttons=["copy"], elem_id="share-link",
                                  scale=4)
                copy_link = gr.Button(say("copy_link"), scale=1, min_width=120, elem_id="copy-link")
            self.share_note = gr.Markdown(elem_id="share-note")
            with gr.Row():
                self.lines = gr.Textbox(label=say("notebook_lines"), lines=5, buttons=["copy"], interactive=False,
                                        elem_id="notebook-lines")
                self.files = gr.File(label=say("downloads"), file_count="multiple", interactive=False)
            with gr.Accordion(say("inside_accordion"), open=True):
                with gr.Row():
                    self.layer = gr.Dropdown(layer_choices(config), value=ROLLOUT, label=say("layer_choice"))
                    self.head = gr.Dropdown(head_choices(config), value=MEAN_HEADS, label=say("head_choice"))
                with gr.Row():
                    self.patches = gr.Plot(label=say("patch_plot"))
                    self.overlay = gr.Image(label=say("attention_image"), type="pil", height=420, interactive=False,
                                            elem_id="attention-image")
                self.caption = gr.Markdown(elem_id="attention-caption")
            self.last_input = gr.State(None)  # this session's last classified image, for the attention view
            self.explain = ExplainBox(self)
            self.explain.build(labels_state)  # "Why this label?"

        shown = [self.result, self.chart, self.lines, self.truth, self.files, self.last_input, self.share, self.verdict,
                 self.share_note]
        self.index_outputs = [self.original, self.model_input, *shown]  # a shared link's prediction fills these too
        gr.on([run_index.click, self.index.change], self.predict_index,
              [self.index, self.top_k, labels_state, self.answering], self.index_outputs,
              api_name="predict_index", api_visibility=UI_API, trigger_mode="always_last")
        gr.on([run_upload.click, upload.upload], self.predict_image,
              [upload, self.top_k, labels_state, self.answering], [self.upload_input, *shown],
              api_name="predict_image", api_visibility=UI_API,
              preprocess=False)  # the handler decodes uploads itself (clipdemo.io.images)
        self.threshold.change(self.set_threshold, [self.threshold, self.answering], self.answering,
                              api_visibility="private", queue=False)
        add_examples.click(self.add_examples, [self.example_label, example_files, self.answering, labels_state],
                           [self.answering, self.examples_note], api_visibility="private",
                           concurrency_id="batch", concurrency_limit=1)  # unpacks files and zips, as a batch does
        clear_examples.click(self.clear_examples, self.answering, [self.answering, self.examples_note, example_files],
                             api_visibility="private", queue=False)
        labels_state.change(self.example_labels, labels_state, self.example_label, api_visibility="private",
                            queue=False)
        # The attention view follows whatever was classified last (a State change), or a new layer or head.
        gr.on([self.layer.input, self.head.input, self.last_input.change], self.attention,
              [self.layer, self.head, self.last_input], [self.patches, self.overlay, self.caption],
              api_name="attention", api_visibility=UI_API, trigger_mode="always_last")
        rand_btn.click(self.random_index, None, self.index, api_name="random_index", api_visibility=UI_API,
                       queue=False)
        # Stepping is arithmetic on the slider: done in the browser, no server round trip.
        size = checks.TEST_SIZE
        prev_btn.click(None, self.index, self.index, js=f"(i) => (Math.round(i) + {size - 1}) % {size}")
        next_btn.click(None, self.index, self.index, js=f"(i) => (Math.round(i) + 1) % {size}")
        # The link is made in the browser (this page's address, or the Space's page, and the result's query)
        # whenever a result arrives; the button copies it.
        base = json.dumps(share_base)
        self.share.change(None, self.share, link,
                          js=f"(q) => q ? ({base} || (window.location.origin + window.location.pathname)) + q : ''")
        copy_link.click(None, link, None, js="(url) => { if (url && navigator.clipboard) "
                                             "navigator.clipboard.writeText(url).catch(() => {}); }")
