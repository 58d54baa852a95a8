"""The Gradio Space: layout, per-session label state, and thin handlers over the core.

Holds: `LabelState` (a visitor's labels and templates, kept in `gr.State`), `Handlers` (plain methods
the events call, each a named API endpoint), `build_app(runtime)`, `launch_kwargs()` and `main()`.
The only module that imports gradio. Handlers turn core errors into `gr.Error` sentences.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import gradio as gr

from PIL import Image

from . import figures, views
from .data import TEST_SIZE, DataError
from .images import ImageError, MAX_BYTES, open_image
from .inside import cls_attention_map, label_similarity, prompt_tokens, vision_attention
from .introspect import config_card, module_tree, parameter_tree, tower_summary
from .presets import LABEL_PRESETS, TEMPLATE_SETS
from .prompts import CONTEXT_LENGTH, MAX_LABELS, PromptError, build_prompts, clean_labels, clean_templates, parse_label_text
from .runtime import ModelUnavailable, Runtime
from .service import LRU, Prediction
from .settings import from_env

__all__ = ["LabelState", "Handlers", "build_app", "launch_kwargs", "main"]

log = logging.getLogger(__name__)
MODEL_WAIT_S = 180.0  # a click during start-up waits this long for the model before saying it is not ready
CUSTOM = "custom"
DEFAULT_INDEX = 15  # the notebook's lion
ROLLOUT = "rollout"
MEAN_HEADS = "mean"


@dataclass(frozen=True)
class LabelState:
    """One visitor's active label set (deep-copyable plain data; never a model)."""

    labels: tuple[str, ...] = LABEL_PRESETS["cifar100"].labels
    templates: tuple[str, ...] = TEMPLATE_SETS["single"].templates
    label_preset: str = "cifar100"
    template_set: str = "single"


def _preset_of(labels: tuple[str, ...]) -> str:
    return next((k for k, p in LABEL_PRESETS.items() if p.labels == labels), CUSTOM)


def _template_set_of(templates: tuple[str, ...]) -> str:
    return next((k for k, t in TEMPLATE_SETS.items() if t.templates == templates), CUSTOM)


class Handlers:
    """Every UI action as a plain method over a shared `Runtime`; gradio calls these, and so do tests."""

    def __init__(self, runtime: Runtime):
        self.rt = runtime
        self._summaries = LRU(16)  # (weights identity, tower, depth) -> TowerSummary
        self._traces = LRU(32)  # (weights identity, input) -> (model input image, [layers, heads, T, T] attention)

    # -- shared helpers ------------------------------------------------------------------------
    def _service(self, progress):
        try:
            if self.rt.status.state != "ready":
                progress(0, desc="waiting for the model to load…")
            return self.rt.service(timeout=MODEL_WAIT_S)
        except ModelUnavailable as exc:
            raise gr.Error(str(exc)) from None

    def _ensure_text(self, zs, state: LabelState, progress) -> None:
        if not zs.has_text_features(state.labels, state.templates):
            n = len(state.labels) * len(state.templates)
            progress(0, desc=f"encoding {n} prompts…")
            zs.text_features(state.labels, state.templates,
                             progress=lambda done, total, what: progress(done / total, desc=f"{what} {done}/{total}"))

    def _outputs(self, pred: Prediction, what: str):
        title = "Top predictions" if pred.weights.trained else "Top predictions"
        return ({lab: p for lab, p in pred.top}, views.bar_chart(pred, title), "\n".join(pred.lines()),
                views.truth_markdown(pred), views.result_files(pred, what))

    # -- Predict -------------------------------------------------------------------------------
    def predict_index(self, index: float, top_k: float, state: LabelState, progress=gr.Progress()):
        """Classify CIFAR-100 test image `index` against the session's labels."""
        state = state or LabelState()
        try:
            data = self.rt.dataset()
            image = data.image(index)
            true_label = data.classes[data.target(int(index))]
        except DataError as exc:
            raise gr.Error(str(exc)) from None
        zs = self._service(progress)
        self._ensure_text(zs, state, progress)
        feat = zs.cifar_feature(int(index), image, len(data))  # [D]: stored, or encoded once and stored
        pred = zs.classify(feat, state.labels, state.templates, _k(top_k), true_label)
        pixels = zs.pixels(image)  # [3, R, R], for showing what the model sees
        return (views.enlarge(image), views.input_view(pixels),
                *self._outputs(pred, f"CIFAR-100 test image #{int(index)}"), {"kind": "index", "index": int(index)})

    def predict_image(self, path: str | None, top_k: float, state: LabelState, progress=gr.Progress()):
        """Classify an uploaded image (a file Gradio received) against the session's labels."""
        state = state or LabelState()
        if not path:
            raise gr.Error("Upload an image first (file, webcam or clipboard).")
        try:
            image = open_image(path)
        except ImageError as exc:
            raise gr.Error(str(exc)) from None
        zs = self._service(progress)
        self._ensure_text(zs, state, progress)
        pred = zs.predict(image, state.labels, state.templates, k=_k(top_k))
        return (views.input_view(zs.pixels(image)), *self._outputs(pred, "uploaded image"),
                {"kind": "upload", "path": path})

    def random_index(self) -> int:
        """A random CIFAR-100 test index."""
        return random.randrange(TEST_SIZE)

    def step_index(self, index: float, step: int) -> int:
        return int((int(index or 0) + step) % TEST_SIZE)

    # -- Inside the model (beside a prediction) -------------------------------------------------
    def _image_for(self, last: dict | None):
        if not last:
            raise gr.Error("Classify an image first; its patches and attention are shown here.")
        try:
            if last.get("kind") == "index":
                return self.rt.dataset().image(last["index"]), f"CIFAR-100 #{last['index']}"
            return open_image(last["path"]), "your image"
        except (DataError, ImageError, KeyError, TypeError) as exc:
            raise gr.Error(f"The last image is no longer available: {exc}") from None

    def attention(self, layer: str, head: str, last: dict | None, progress=gr.Progress()):
        """Patch grid over the model input, and the class token's attention (a layer and head, or rollout)."""
        zs = self._service(progress)
        image, what = self._image_for(last)
        key = (zs.info.identity, tuple(sorted((last or {}).items())))
        cached = self._traces.get(key)
        if cached is None:
            pixels = zs.pixels(image)  # [3, R, R]
            with zs.model_lock:
                trace = vision_attention(zs.loaded.model, pixels[None])
            cached = (views.input_view(pixels, min_size=0), trace)  # at the model's own resolution
            self._traces.put(key, cached)
        shown, trace = cached
        layers, heads = trace.attentions.shape[:2]
        li = None if layer in (None, "", ROLLOUT) else _choice(layer, layers, "Layer")
        hi = None if head in (None, "", MEAN_HEADS) or li is None else _choice(head, heads, "Head")
        amap = cls_attention_map(trace, li, hi)  # [grid, grid]
        which = ("attention rollout across all layers" if li is None else
                 f"layer {li + 1}, " + ("mean over heads" if hi is None else f"head {hi + 1}"))
        note = "" if zs.info.trained else " (untrained random weights: the pattern means nothing)"
        caption = f"Class-token attention over the {amap.numel()} patches of {what}: {which}{note}."
        size = max(224, shown.size[0])
        return (figures.patch_figure(shown, zs.loaded.config.vision_patch_size),
                figures.attention_overlay(shown.resize((size, size), Image.Resampling.BICUBIC), amap), caption)

    # -- Labels --------------------------------------------------------------------------------
    def label_text(self, preset: str) -> str:
        """The editor text for a label preset (one label per line)."""
        return "\n".join(LABEL_PRESETS[preset].labels) if preset in LABEL_PRESETS else gr.skip()

    def template_text(self, key: str) -> str:
        return "\n".join(TEMPLATE_SETS[key].templates) if key in TEMPLATE_SETS else gr.skip()

    def check_labels(self, label_text: str, template_text: str) -> str:
        """Inline validation of the editors' text, without touching the model."""
        try:
            labels = clean_labels(parse_label_text(label_text))
            templates = clean_templates(parse_label_text_lines(template_text))
            build_prompts(labels.labels, templates)
        except PromptError as exc:
            return f"⚠️ {views.md_text(str(exc))}"
        note = f" ({len(labels.dropped_duplicates)} duplicate(s) will be dropped)" if labels.dropped_duplicates else ""
        return (f"✓ {len(labels.labels)} labels × {len(templates)} template(s) = "
                f"{len(labels.labels) * len(templates)} prompts{note}. Press **Apply** to use them.")

    def set_labels(self, label_text: str, template_text: str, state: LabelState, progress=gr.Progress()):
        """Validate and activate a label set for this session; encodes its text features once."""
        try:
            labels = clean_labels(parse_label_text(label_text))
            templates = clean_templates(parse_label_text_lines(template_text))
            build_prompts(labels.labels, templates)
        except PromptError as exc:
            raise gr.Error(str(exc)) from None
        new = LabelState(labels.labels, templates, _preset_of(labels.labels), _template_set_of(templates))
        ready = False
        if self.rt.status.state == "ready":
            zs = self.rt.service()
            self._ensure_text(zs, new, progress)
            ready = True
        if labels.dropped_duplicates:
            gr.Warning(f"Dropped {len(labels.dropped_duplicates)} duplicate label(s).")
        return new, self.label_summary(new, ready, labels.dropped_duplicates)

    def label_summary(self, state: LabelState, ready: bool | None = None, dropped: tuple[str, ...] = ()) -> str:
        """Markdown: how many labels and prompts are active, and whether their features are ready."""
        state = state or LabelState()
        if ready is None:
            ready = self.rt.status.state == "ready" and self.rt.service().has_text_features(state.labels, state.templates)
        n = len(state.labels) * len(state.templates)
        shown = ", ".join(views.md_text(lab) for lab in state.labels[:12]) + (" …" if len(state.labels) > 12 else "")
        feats = "text features ready ✓" if ready else "text features are computed on first use"
        drop = f" · dropped duplicates: {', '.join(views.md_text(d) for d in dropped)}" if dropped else ""
        return (f"**Active for you:** {len(state.labels)} labels × {len(state.templates)} template(s) = {n} prompts · "
                f"{feats}{drop}\n\n{shown}")

    def tokens(self, prompt: str):
        """The BPE tokens of a prompt as CLIP sees them, and where its text feature is read."""
        try:
            toks = prompt_tokens(prompt or "")
        except ValueError as exc:
            raise gr.Error(str(exc)) from None
        rows = [[t.position, t.token_id, t.text, t.role + (" (the text feature is read here)" if t.role == "end" else "")]
                for t in toks]
        pad = CONTEXT_LENGTH - len(toks)
        rows.append([f"{len(toks)}..{CONTEXT_LENGTH - 1}", 0, f"padding × {pad}", "padding (never seen: causal mask)"])
        summary = (f"{len(toks)} of {CONTEXT_LENGTH} positions used; the end-of-text token at position "
                   f"{len(toks) - 1} carries the prompt's embedding.")
        return {"headers": ["position", "token id", "token", "role"], "data": rows}, summary

    def similarity(self, state: LabelState, progress=gr.Progress()):
        """Cosine similarity between the session's labels' text features (plotly heatmap)."""
        state = state or LabelState()
        zs = self._service(progress)
        self._ensure_text(zs, state, progress)
        sim = label_similarity(zs.text_features(state.labels, state.templates))  # [L, L]
        fig = figures.similarity_figure(state.labels, sim)
        if not zs.info.trained:
            fig.update_layout(title=fig.layout.title.text + " (untrained random weights: meaningless)")
        return fig

    # -- Architecture --------------------------------------------------------------------------
    def architecture(self, depth: float = 2):
        """Configuration card, torchinfo summaries of both towers (table and text), and the module tree."""
        loaded = self.rt.architecture_model()
        out = []
        for tower in ("visual", "text"):
            key = (loaded.info.identity, tower, int(depth))
            summary = self._summaries.get(key)
            if summary is None:
                try:
                    summary = tower_summary(loaded, tower, int(depth))
                except ValueError as exc:
                    raise gr.Error(str(exc)) from None
                self._summaries.put(key, summary)
            table = {"headers": list(summary.columns), "data": [list(r) for r in summary.rows]}
            out += [table, summary.text]
        card = config_card(loaded)
        if not loaded.info.trained:
            card["note"] = "random weights: the architecture is exact, the weights are untrained"
        tree = figures.treemap(parameter_tree(loaded), f"Parameters: {card['parameters']['total']:,}")
        return card, *out, module_tree(loaded), tree

    # -- Status --------------------------------------------------------------------------------
    def ping(self) -> str:
        """Health check: answers without touching the model."""
        return "pong"

    def status(self):
        """The status line, and whether to keep polling it."""
        st = self.rt.status
        if st.state == "ready":
            zs = self.rt.service()
            loaded = zs.loaded
            dtype = str(loaded.dtype).removeprefix("torch.")
            weights = views.md_text(loaded.info.label)
            if not loaded.info.trained:
                weights = f"⚠️ **{weights}**"
            line = (f"**Model:** {weights} · device `{loaded.device}` · `{dtype}` · "
                    f"image encoder: {views.md_text(zs.encoder_note)}")
        elif st.state == "failed":
            line = f"❌ **Model unavailable:** {views.md_text(st.message)}"
        else:
            line = f"⏳ **Loading model:** {views.md_text(st.message)}"
        try:
            data = self.rt.dataset() if st.state != "loading" else None
            line += f" · **CIFAR-100:** {len(data):,} test images" if data else ""
        except DataError as exc:
            line += f" · **CIFAR-100 unavailable:** {views.md_text(str(exc))}"
        return line, gr.Timer(active=st.state == "loading")


def parse_label_text_lines(text: str) -> list[str]:
    """Templates are one per line (commas are part of a template's text)."""
    return [ln for ln in (text or "").splitlines() if ln.strip()]


def _choice(value: str, n: int, what: str) -> int:
    """'1'..'n' from a dropdown -> 0-based index."""
    try:
        i = int(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{what} must be 1..{n}.") from None
    if not 1 <= i <= n:
        raise gr.Error(f"{what} must be 1..{n}, not {i}.")
    return i - 1


def _k(top_k: float) -> int:
    try:
        k = int(top_k)
    except (TypeError, ValueError):
        raise gr.Error("Top-k must be a whole number between 1 and 20.") from None
    if not 1 <= k <= 20:
        raise gr.Error(f"Top-k must be between 1 and 20, not {k}.")
    return k


ABOUT = f"""
## What this is
[CLIP](https://openai.com/research/clip) (Radford et al., 2021) learns images and text in one embedding
space. To classify an image *zero-shot*, each label is put into a prompt such as *"a photo of a lion"*,
both are encoded, and the probabilities are `softmax(100 · cos(image, prompt))`: no training on the labels.

This Space reproduces the classic CLIP notebook (ViT-B/32, CIFAR-100 test image 15 → *lion*) and lets you
bring your own images, labels and prompt templates, and look inside the model.

## Weights
The default model is OpenAI's **ViT-B/32**, downloaded from OpenAI's host (or its mirrors) and checked
against its published SHA-256. The status line above says which weights are loaded. When it says
*untrained random weights*, the architecture is real but every prediction is meaningless.

## Data
CIFAR-100 test split: 10,000 32×32 images in 100 classes. Krizhevsky, A. (2009), *Learning Multiple Layers
of Features from Tiny Images*. Labels use torchvision's class names.

## Published zero-shot figures (ViT-B/32 on CIFAR-100)
| setting | top-1 | source |
|---|---|---|
| 18-template prompt ensemble | 65.1% | CLIP paper, Radford et al. 2021, Table 11 |
| clip_benchmark (LAION) | 64.5% top-1, 88.8% top-5 | LAION clip_benchmark results |
| single prompt "a photo of a {{}}" | ≈ 62% | reproductions in openai/CLIP issue #153 |

These are the published numbers, not measured by this Space.

## Limits
Up to {MAX_LABELS} labels per set; images up to {MAX_BYTES // 2**20} MB (JPEG, PNG, WebP, GIF, BMP).
Your label set is yours alone: other visitors never see it.
"""

CSS = """
.pixelated img { image-rendering: pixelated; }
#status { min-height: 2.2em; }
#notebook-lines textarea { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; white-space: pre; }
"""


def build_app(runtime: Runtime) -> gr.Blocks:
    """The whole Space as a `gr.Blocks` (not launched)."""
    h = Handlers(runtime)
    preset_choices = [(p.title, p.key) for p in LABEL_PRESETS.values()] + [("Custom", CUSTOM)]
    template_choices = [(t.title, t.key) for t in TEMPLATE_SETS.values()] + [("Custom", CUSTOM)]
    model_events = dict(concurrency_id="model", concurrency_limit=1)

    with gr.Blocks(title="CLIP zero-shot classification", delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# CLIP zero-shot image classification\nOpenAI CLIP ViT-B/32 on CIFAR-100 or your own images, "
                    "with your own labels.")
        status = gr.Markdown("⏳ starting…", elem_id="status")
        timer = gr.Timer(1.0)
        state = gr.State(LabelState())
        last_input = gr.State(None)  # this session's last classified image, for the inside views
        with gr.Tabs():
            with gr.Tab("Predict", id="predict"):
                top_k = gr.Slider(1, 20, value=5, step=1, label="Top-k")
                with gr.Tabs():
                    with gr.Tab("CIFAR-100 index", id="index"):
                        with gr.Row():
                            index = gr.Slider(0, TEST_SIZE - 1, value=DEFAULT_INDEX, step=1,
                                              label="CIFAR-100 test image index", scale=4)
                            prev_btn = gr.Button("◀ prev", scale=0, min_width=80)
                            next_btn = gr.Button("next ▶", scale=0, min_width=80)
                            rand_btn = gr.Button("🎲 random", scale=0, min_width=100)
                        run_index = gr.Button("Classify", variant="primary")
                        with gr.Row():
                            original = gr.Image(label="Original 32×32 (enlarged, no blur)", type="pil",
                                                elem_classes="pixelated", height=224, interactive=False)
                            model_input = gr.Image(label="Model input 224×224", type="pil", height=224,
                                                   interactive=False)
                        truth = gr.Markdown()
                        gr.Examples([[15], [0], [42], [2024], [9999]], inputs=[index], label="Examples (15 is the notebook's lion)",
                                    cache_examples=False)
                    with gr.Tab("Upload", id="upload"):
                        with gr.Row():
                            upload = gr.Image(label="Your image", type="filepath",
                                              sources=["upload", "webcam", "clipboard"], height=280)
                            upload_input = gr.Image(label="Model input 224×224", type="pil", height=280,
                                                    interactive=False)
                        run_upload = gr.Button("Classify upload", variant="primary")
                with gr.Row():
                    result = gr.Label(label="Top-k", num_top_classes=20)
                    chart = gr.Plot(label="Probabilities")
                with gr.Row():
                    lines = gr.Textbox(label="Notebook format (copy)", lines=5, buttons=["copy"], interactive=False,
                                       elem_id="notebook-lines")
                    files = gr.File(label="Download (CSV, JSON)", file_count="multiple", interactive=False)
                with gr.Accordion("Inside the model: patches and attention for this image", open=True):
                    with gr.Row():
                        layer = gr.Dropdown([ROLLOUT, *map(str, range(1, 13))], value=ROLLOUT,
                                            label="Layer (or rollout across all layers)")
                        head = gr.Dropdown([MEAN_HEADS, *map(str, range(1, 13))], value=MEAN_HEADS,
                                           label="Head (or mean over heads)")
                    with gr.Row():
                        patches = gr.Plot(label="Patch embedding: the input cut into patches")
                        attn_img = gr.Image(label="Class-token attention", type="pil", height=420,
                                            interactive=False, elem_id="attention-image")
                    attn_caption = gr.Markdown(elem_id="attention-caption")
            with gr.Tab("Labels", id="labels"):
                label_summary = gr.Markdown(h.label_summary(LabelState(), ready=False), elem_id="label-summary")
                with gr.Row():
                    with gr.Column():
                        preset = gr.Dropdown(preset_choices, value="cifar100", label="Label preset")
                        label_box = gr.Textbox(h.label_text("cifar100"), lines=12, max_lines=20,
                                               label="Labels (one per line, or comma-separated)",
                                               elem_id="label-editor")
                    with gr.Column():
                        tpl_preset = gr.Dropdown(template_choices, value="single", label="Template set")
                        tpl_box = gr.Textbox(h.template_text("single"), lines=6, max_lines=20,
                                             label="Prompt templates (one per line, {} marks the label)")
                check = gr.Markdown(elem_id="label-check")
                apply_btn = gr.Button("Apply", variant="primary")
                with gr.Accordion("Which labels does CLIP confuse? (text features only)", open=False):
                    sim_btn = gr.Button("Show label similarity")
                    sim_plot = gr.Plot(label="Label similarity")
                with gr.Accordion("Tokens: a prompt as CLIP reads it", open=False):
                    prompt_box = gr.Textbox("a photo of a lion", label="Prompt")
                    token_table = gr.Dataframe(label="BPE tokens", elem_id="token-table")
                    token_note = gr.Markdown()
            with gr.Tab("Architecture", id="architecture") as arch_tab:
                depth = gr.Slider(1, 4, value=2, step=1, label="Summary depth")
                card = gr.JSON(label="Configuration (derived from the loaded weights)")
                with gr.Row():
                    with gr.Column():
                        vis_table = gr.Dataframe(label="Vision tower (input 1×3×224×224)", wrap=True,
                                                 elem_id="vision-summary")
                    with gr.Column():
                        txt_table = gr.Dataframe(label="Text tower (input 1×77 tokens)", wrap=True,
                                                 elem_id="text-summary")
                gr.Markdown("Mult-adds are torchinfo's count of the Conv/Linear/Embedding modules it sees run; the "
                            "attention projections inside `nn.MultiheadAttention` run as one fused function, so "
                            "torchinfo leaves them out.")
                with gr.Accordion("torchinfo text", open=False):
                    with gr.Row():
                        vis_text = gr.Textbox(label="Vision tower", lines=20, buttons=["copy"])
                        txt_text = gr.Textbox(label="Text tower", lines=20, buttons=["copy"])
                with gr.Accordion("print(model): the module tree", open=False):
                    tree = gr.Textbox(label="Module tree", lines=30, buttons=["copy"])
                param_map = gr.Plot(label="Where the parameters are (click to zoom)")
            with gr.Tab("About", id="about"):
                gr.Markdown(ABOUT)

        # -- events (layout above, wiring below) --
        # Every event that runs the model shares one queue slot (model_events): on 2 vCPUs, calls that
        # overlap only slow each other down. Private events reuse handlers under their own api_name.
        private = dict(api_visibility="private")
        results = [result, chart, lines, truth, files, last_input]
        index_io = dict(fn=h.predict_index, inputs=[index, top_k, state], outputs=[original, model_input, *results])
        upload_io = dict(fn=h.predict_image, inputs=[upload, top_k, state], outputs=[upload_input, *results])
        inside_io = dict(fn=h.attention, inputs=[layer, head, last_input], outputs=[patches, attn_img, attn_caption])
        labels_io = dict(fn=h.set_labels, inputs=[label_box, tpl_box, state], outputs=[state, label_summary])
        arch_io = dict(fn=h.architecture, inputs=depth,
                       outputs=[card, vis_table, vis_text, txt_table, txt_text, tree, param_map])

        demo.load(h.status, None, [status, timer], api_name="status", queue=False)
        ping_btn, ping_out = gr.Button(visible=False), gr.Textbox(visible=False)
        ping_btn.click(h.ping, None, ping_out, api_name="ping", show_progress="hidden")  # health check
        timer.tick(h.status, None, [status, timer], queue=False, **private)

        run_index.click(**index_io, api_name="predict_index", **model_events).success(
            **inside_io, api_name="attention_after_index", **private, **model_events)
        index.change(**index_io, api_name="predict_index_on_change", trigger_mode="always_last", **private,
                     **model_events).success(**inside_io, api_name="attention_after_change", **private, **model_events)
        prev_btn.click(lambda i: h.step_index(i, -1), index, index, queue=False, **private)
        next_btn.click(lambda i: h.step_index(i, 1), index, index, queue=False, **private)
        rand_btn.click(h.random_index, None, index, api_name="random_index", queue=False)
        run_upload.click(**upload_io, api_name="predict_image", **model_events).success(
            **inside_io, api_name="attention_after_upload", **private, **model_events)
        upload.upload(**upload_io, api_name="predict_on_upload", **private, **model_events).success(
            **inside_io, api_name="attention_after_upload_event", **private, **model_events)
        gr.on([layer.input, head.input], **inside_io, api_name="attention", trigger_mode="always_last",
              **model_events)

        preset.input(h.label_text, preset, label_box, queue=False, **private).then(
            **labels_io, api_name="apply_label_preset", **private, **model_events)
        tpl_preset.input(h.template_text, tpl_preset, tpl_box, queue=False, **private).then(
            **labels_io, api_name="apply_template_set", **private, **model_events)
        gr.on([label_box.change, tpl_box.change], h.check_labels, [label_box, tpl_box], check, queue=False,
              trigger_mode="always_last", **private)
        apply_btn.click(**labels_io, api_name="set_labels", **model_events)
        sim_btn.click(h.similarity, state, sim_plot, api_name="label_similarity", **model_events)
        prompt_box.change(h.tokens, prompt_box, [token_table, token_note], api_name="tokens", queue=False,
                          trigger_mode="always_last")
        demo.load(h.tokens, prompt_box, [token_table, token_note], queue=False, **private)

        depth.release(**arch_io, api_name="architecture", **model_events)
        arch_tab.select(**arch_io, api_name="architecture_on_tab", **private, **model_events)
    return demo


def launch_kwargs() -> dict:
    """Server settings for `demo.launch()` (host and port come from GRADIO_SERVER_NAME/PORT)."""
    return dict(theme=gr.themes.Soft(), css=CSS, max_file_size=MAX_BYTES, show_error=False,
                enable_monitoring=False, share=False)


def main() -> None:
    """Start the Space: load the model in the background, serve the page at once."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runtime = Runtime(from_env())
    runtime.start()
    demo = build_app(runtime)
    demo.queue(max_size=64, default_concurrency_limit=1)
    demo.launch(**launch_kwargs())
