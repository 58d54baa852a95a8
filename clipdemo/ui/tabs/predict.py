"""The Predict tab: a CIFAR-100 test image by index, or an upload, classified against the visitor's labels,
with the patches and the class token's attention for the classified image beside it.

Holds `PredictTab`: its handlers as plain methods (`predict_index`, `predict_image`, `attention`,
`random_index`) returning named results (`PredictView`, `AttentionView`), and `build`, which lays the
tab out and wires it. Model work goes through the `ZeroShot` service; pictures come from
`clipdemo.figures`, files from `clipdemo.exports`.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass

import gradio as gr
import plotly.graph_objects as go
from PIL import Image

from ... import exports, figures
from ...data import TEST_SIZE
from ...engine import MAX_TOP_K, check_top_k
from ...images import decode_data_url, inside_folder, open_image
from ...inside import cls_attention_map
from ...links import Link, link_query, set_fields
from ...model import ClipConfig
from ...runtime import Runtime
from ...prediction import Prediction
from ...service import ZeroShot
from .batch import BatchTab
from .explain import ExplainBox
from ...data import DataUnavailable
from ...redact import hide_paths
from ...runtime import ModelFailed
from ..common import (UI_API, LabelState, ensure_text, event, md_text, toast_text, unavailable, user_errors,
                      wait_for_service)
from ..lang import L, t

__all__ = ["PredictTab", "PredictView", "AttentionView", "layer_choices", "head_choices", "DEFAULT_INDEX"]

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


@dataclass(frozen=True)
class PredictView:
    """One classified image, as the tab shows it."""

    model_input: Image.Image  # what the model sees, 224x224 (or enlarged)
    label: dict[str, float]  # top-k, for gr.Label
    chart: go.Figure
    lines: str  # the notebook's printed lines
    truth: str  # Markdown: the true class and its rank (index images only)
    files: list[str]  # CSV and JSON
    last_input: dict  # what was classified, for the attention view: {"kind": "index"|"upload", ...}
    share: str  # the query string of a link to this result (`?index=15&k=5`; never an uploaded image)
    original: Image.Image | None = None  # the 32x32 CIFAR image, enlarged (index images only)


@dataclass(frozen=True)
class AttentionView:
    """The patch grid over the model input, and a class-token attention overlay with its caption."""

    patches: go.Figure
    overlay: Image.Image
    caption: str


def truth_markdown(pred: Prediction) -> str:
    """True class, whether top-1 is right, and the true class's rank and probability."""
    if pred.true_label is None:
        return ""
    true = md_text(pred.true_label)
    if pred.true_rank is None:
        return t("truth_absent", true)
    verdict = t("truth_right") if pred.true_rank == 1 else t("truth_wrong")
    return t("truth_line", true, verdict, pred.true_rank, len(pred.labels), f"{100 * pred.true_prob:.2f}")


def _pick(value: str | None, whole: str, what: str) -> int | None:
    """A dropdown's '1'..'n' as a 0-based index, or None for `whole` (the rollout, the mean over heads)."""
    if value in (None, "", whole):
        return None
    try:
        return int(value) - 1
    except (TypeError, ValueError):
        raise ValueError(t("pick_number", what, whole, value)) from None


class PredictTab:
    """Predictions and the attention view, over the shared runtime; gradio calls these, and so do tests."""

    def __init__(self, runtime: Runtime):
        self.rt = runtime

    def _view(self, zs: ZeroShot, pred: Prediction, image: Image.Image, what: str, last: dict, state: LabelState,
              original: Image.Image | None = None) -> PredictView:
        title = t("chart_top") + ("" if zs.info.trained else t("untrained_suffix"))
        share = Link(index=last.get("index"), k=len(pred.top), tab="predict", **set_fields(state.labels, state.templates))
        return PredictView(model_input=figures.input_view(zs.pixels(image)), label=dict(pred.top),
                           chart=figures.bar_chart(pred, title, t("chart_probability")), lines="\n".join(pred.lines()),
                           truth=truth_markdown(pred), files=exports.prediction_files(pred, what), last_input=last,
                           share=link_query(share), original=original)

    def predict_index(self, index: float, top_k: float, state: LabelState, progress=gr.Progress()) -> PredictView:
        """Classify CIFAR-100 test image `index` against the session's labels."""
        state = state or LabelState()
        with user_errors():
            data = self.rt.dataset()
            image = data.image(index)
            true_label = data.classes[data.target(int(index))]
            k = check_top_k(top_k)
        zs = wait_for_service(self.rt, progress)
        ensure_text(zs, state, progress)
        feat = zs.cifar_feature(int(index), image, len(data))  # [D]: stored, or encoded once and stored
        pred = zs.classify(feat, state.labels, state.templates, k, true_label)
        return self._view(zs, pred, image, f"CIFAR-100 test image #{int(index)}", {"kind": "index", "index": int(index)},
                          state, original=figures.enlarge(image))

    def predict_image(self, upload: dict | str | None, top_k: float, state: LabelState,
                      progress=gr.Progress()) -> PredictView:
        """Classify an uploaded image (a file Gradio received) against the session's labels.

        The event runs with `preprocess=False`: `upload` is Gradio's raw file record, and the bytes are
        decoded here by `open_image` (allow-listed formats, pixel budget), never by the framework.
        """
        state = state or LabelState()
        record = upload if isinstance(upload, dict) else {"path": upload}
        with user_errors():
            k = check_top_k(top_k)
            image, path = self._decode(record, self.rt.config().image_resolution)
        zs = wait_for_service(self.rt, progress)
        ensure_text(zs, state, progress)
        pred = zs.predict(image, state.labels, state.templates, k=k)
        return self._view(zs, pred, image, "uploaded image", {"kind": "upload", "path": path}, state)

    @staticmethod
    def _decode(record: dict, fit: int) -> tuple[Image.Image, str]:
        """The image of an upload record and a path to find it again; ImageError/gr.Error if refused."""
        if record.get("path"):
            path = inside_folder(record["path"], gr.utils.get_upload_folder())
            if path is None:
                raise gr.Error(t("not_an_upload"))
            return open_image(path, fit=fit), str(path)
        if str(record.get("url") or "").startswith("data:"):
            image = open_image(decode_data_url(record["url"]), fit=fit)
            path = exports.results_dir() / f"inline-{uuid.uuid4().hex[:12]}.png"
            image.save(path)  # kept (an hour at most) for this session's attention view
            return image, str(path)
        if record.get("url"):
            raise gr.Error(t("not_an_upload"))
        raise gr.Error(t("upload_first"))

    def random_index(self) -> int:
        """A random CIFAR-100 test index."""
        return random.randrange(TEST_SIZE)

    def image_for(self, last: dict | None) -> tuple[Image.Image, str]:
        """The last classified image again (a dataset index, or an upload kept for this session), and what it is."""
        if not last:
            raise gr.Error(t("classify_first"))
        try:
            if last.get("kind") == "index":
                return self.rt.dataset().image(last["index"]), f"CIFAR-100 #{last['index']}"
            return open_image(last["path"], fit=self.rt.config().image_resolution), t("your_image")
        except (DataUnavailable, ModelFailed) as exc:
            raise gr.Error(toast_text(unavailable(exc))) from None
        except (ValueError, RuntimeError, KeyError, TypeError) as exc:
            raise gr.Error(toast_text(t("last_image_gone", hide_paths(str(exc))))) from None

    def attention(self, layer: str, head: str, last: dict | None, progress=gr.Progress()) -> AttentionView:
        """Patch grid over the model input, and the class token's attention (a layer and head, or rollout)."""
        zs = wait_for_service(self.rt, progress)
        image, what = self.image_for(last)
        trace = zs.vision_trace(image, tuple(sorted(last.items())))
        with user_errors():
            li = _pick(layer, ROLLOUT, t("layer"))
            hi = None if li is None else _pick(head, MEAN_HEADS, t("head"))
            amap = cls_attention_map(trace, li, hi)  # [grid, grid]
        shown = figures.input_view(zs.pixels(image), min_size=0)  # at the model's own resolution
        which = (t("which_rollout") if li is None else
                 t("which_layer_mean", li + 1) if hi is None else t("which_layer_head", li + 1, hi + 1))
        note = "" if zs.info.trained else t("untrained_pattern")
        caption = t("attention_caption", amap.numel(), what, which, note)
        patch = zs.config.vision_patch_size
        g = shown.size[0] // patch
        return AttentionView(figures.patch_figure(shown, patch, t("patch_title", g, g, patch, patch, g * g)),
                             figures.attention_overlay(figures.overlay_base(shown), amap),
                             caption)

    # -- layout and wiring -------------------------------------------------------------------------
    def build(self, labels_state: gr.State, share_base: str = "") -> None:
        """Lay out the tab (inside the app's `gr.Tabs`) and wire its events. `share_base` is the page that
        shared links open (the Space's page on Hugging Face; empty: this page's own address)."""
        config = self.rt.config()
        with gr.Tab(L("tab_predict"), id="predict"):
            self.top_k = top_k = gr.Slider(1, MAX_TOP_K, value=5, step=1, label=L("top_k"))
            with gr.Tabs():
                with gr.Tab(L("tab_index"), id="index"):
                    with gr.Row(elem_classes="index-row"):
                        self.index = index = gr.Slider(0, TEST_SIZE - 1, value=DEFAULT_INDEX, step=1,
                                                       label=L("index_label"), scale=4, min_width=200)
                        prev_btn = gr.Button(L("prev"), scale=0, min_width=80)
                        next_btn = gr.Button(L("next"), scale=0, min_width=80)
                        rand_btn = gr.Button(L("random"), scale=0, min_width=100)
                    run_index = gr.Button(L("classify"), variant="primary")
                    with gr.Row():
                        original = gr.Image(label=L("original_image"), type="pil",
                                            elem_classes="pixelated", height=224, interactive=False)
                        model_input = gr.Image(label=L("model_input"), type="pil", height=224, interactive=False)
                    truth = gr.Markdown(elem_id="truth")
                    gr.Examples([[i] for i in EXAMPLES], inputs=[index], label=L("examples"), cache_examples=False)
                with gr.Tab(L("tab_upload"), id="upload"):
                    with gr.Row():
                        upload = gr.Image(label=L("your_image_label"), type="filepath",
                                          sources=["upload", "webcam", "clipboard"], height=280)
                        upload_input = gr.Image(label=L("model_input"), type="pil", height=280, interactive=False)
                    run_upload = gr.Button(L("classify_upload"), variant="primary")
                BatchTab(self.rt).build(labels_state)
            with gr.Row():
                result = gr.Label(label=L("top_k"), num_top_classes=MAX_TOP_K, elem_id="result-label")
                chart = gr.Plot(label=L("probabilities"), elem_id="result-chart")
            gr.Markdown(L("score_note"), elem_id="score-note")
            with gr.Row(equal_height=True):
                share = gr.Textbox(visible=False)  # the result's query string; the button makes the full link
                link = gr.Textbox(label=L("share_link"), interactive=False, buttons=["copy"], elem_id="share-link",
                                  scale=4)
                copy_link = gr.Button(L("copy_link"), scale=1, min_width=120, elem_id="copy-link")
            with gr.Row():
                lines = gr.Textbox(label=L("notebook_lines"), lines=5, buttons=["copy"], interactive=False,
                                   elem_id="notebook-lines")
                files = gr.File(label=L("downloads"), file_count="multiple", interactive=False)
            with gr.Accordion(L("inside_accordion"), open=True):
                with gr.Row():
                    self.layer = gr.Dropdown(layer_choices(config), value=ROLLOUT, label=L("layer_choice"))
                    self.head = gr.Dropdown(head_choices(config), value=MEAN_HEADS, label=L("head_choice"))
                with gr.Row():
                    patches = gr.Plot(label=L("patch_plot"))
                    overlay = gr.Image(label=L("attention_image"), type="pil", height=420, interactive=False,
                                       elem_id="attention-image")
                caption = gr.Markdown(elem_id="attention-caption")
            last_input = gr.State(None)  # this session's last classified image, for the attention view
            ExplainBox(self).build(labels_state, last_input, result)  # "Why this label?"

        shown = dict(label=result, chart=chart, lines=lines, truth=truth, files=files, last_input=last_input,
                     share=share)
        self.shown = dict(original=original, model_input=model_input, **shown)  # a shared link's prediction fills these
        gr.on([run_index.click, index.change],
              **event(self.predict_index, [index, top_k, labels_state], self.shown),
              api_name="predict_index", api_visibility=UI_API, trigger_mode="always_last")
        gr.on([run_upload.click, upload.upload],
              **event(self.predict_image, [upload, top_k, labels_state], dict(model_input=upload_input, **shown)),
              api_name="predict_image", api_visibility=UI_API, preprocess=False)  # the handler decodes uploads itself (clipdemo.images)
        # The attention view follows whatever was classified last (a State change), or a new layer or head.
        gr.on([self.layer.input, self.head.input, last_input.change],
              **event(self.attention, [self.layer, self.head, last_input],
                      dict(patches=patches, overlay=overlay, caption=caption)),
              api_name="attention", api_visibility=UI_API, trigger_mode="always_last")
        rand_btn.click(self.random_index, None, index, api_name="random_index", api_visibility=UI_API, queue=False)
        # Stepping is arithmetic on the slider: done in the browser, no server round trip.
        prev_btn.click(None, index, index, js=f"(i) => (Math.round(i) + {TEST_SIZE - 1}) % {TEST_SIZE}")
        next_btn.click(None, index, index, js=f"(i) => (Math.round(i) + 1) % {TEST_SIZE}")
        # The link is made in the browser (this page's address, or the Space's page, and the result's query)
        # whenever a result arrives; the button copies it.
        base = json.dumps(share_base)
        share.change(None, share, link, js=f"(q) => q ? ({base} || (window.location.origin + window.location.pathname)) + q : ''")
        copy_link.click(None, link, None, js="(url) => { if (url && navigator.clipboard) "
                                             "navigator.clipboard.writeText(url).catch(() => {}); }")
