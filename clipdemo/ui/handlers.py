"""The Space's event handlers: plain methods over a shared `Runtime`, each behind a named API endpoint.

Holds: `LabelState` (a visitor's labels and templates, kept in `gr.State`) and `Handlers` (predict,
labels, inside-the-model views, architecture, status). Core errors become `gr.Error` sentences here.
Layout and wiring live in `clipdemo.ui.app`; evaluation in `clipdemo.ui.evaluation`.
"""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from PIL import Image

from .. import figures, views
from ..data import TEST_SIZE, DataError
from ..images import MAX_BYTES, ImageError, open_image
from ..inside import cls_attention_map, label_similarity, prompt_tokens, vision_attention
from ..introspect import config_card, module_tree, parameter_tree, tower_summary
from ..presets import LABEL_PRESETS, TEMPLATE_SETS
from ..prompts import (CONTEXT_LENGTH, LabelSet, PromptError, build_prompts, clean_labels, clean_templates,
                       parse_label_text)
from ..runtime import ModelUnavailable, Runtime
from ..service import LRU, Prediction

__all__ = ["LabelState", "Handlers"]

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
    def model_service(self, progress):
        """The loaded model service, waiting (with a progress note) while it loads; gr.Error if it cannot."""
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
        return ({lab: p for lab, p in pred.top}, views.bar_chart(pred), "\n".join(pred.lines()),
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
        zs = self.model_service(progress)
        self._ensure_text(zs, state, progress)
        feat = zs.cifar_feature(int(index), image, len(data))  # [D]: stored, or encoded once and stored
        pred = zs.classify(feat, state.labels, state.templates, _k(top_k), true_label)
        pixels = zs.pixels(image)  # [3, R, R], for showing what the model sees
        return (views.enlarge(image), views.input_view(pixels),
                *self._outputs(pred, f"CIFAR-100 test image #{int(index)}"), {"kind": "index", "index": int(index)})

    def predict_image(self, upload: dict | str | None, top_k: float, state: LabelState, progress=gr.Progress()):
        """Classify an uploaded image (a file Gradio received) against the session's labels.

        The event runs with `preprocess=False`: `upload` is Gradio's raw file record, and the bytes are
        decoded here by `open_image` (allow-listed formats, pixel budget), never by the framework.
        """
        state = state or LabelState()
        record = upload if isinstance(upload, dict) else {"path": upload}
        try:
            if record.get("path"):
                path = _uploaded_file(record["path"])
                image = open_image(path)
            elif str(record.get("url") or "").startswith("data:"):
                image = open_image(decode_data_url(record["url"]))
                path = str(views.results_dir() / f"inline-{uuid.uuid4().hex[:12]}.png")
                image.save(path)  # kept (an hour at most) for this session's attention view
            elif record.get("url"):
                raise gr.Error("Only images uploaded to this page can be classified.")
            else:
                raise gr.Error("Upload an image first (file, webcam or clipboard).")
        except ImageError as exc:
            raise gr.Error(str(exc)) from None
        zs = self.model_service(progress)
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
        zs = self.model_service(progress)
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
            labels, templates = _parse_editors(label_text, template_text)
        except PromptError as exc:
            return f"⚠️ {views.md_text(str(exc))}"
        note = f" ({len(labels.dropped_duplicates)} duplicate(s) will be dropped)" if labels.dropped_duplicates else ""
        return (f"✓ {len(labels.labels)} labels × {len(templates)} template(s) = "
                f"{len(labels.labels) * len(templates)} prompts{note}. Press **Apply** to use them.")

    def set_labels(self, label_text: str, template_text: str, state: LabelState, progress=gr.Progress()):
        """Validate and activate a label set for this session; encodes its text features once."""
        try:
            labels, templates = _parse_editors(label_text, template_text)
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
        zs = self.model_service(progress)
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
        return line, gr.Timer(active=not self.rt.settled)  # poll until the backend choice is shown too


def decode_data_url(url: str) -> bytes:
    """The bytes of a base64 `data:` URL, refusing one larger than the upload limit before decoding it."""
    import base64
    import binascii

    header, _, payload = url.partition(",")
    if not header.endswith(";base64"):
        raise ImageError("Inline images must be base64 data: URLs.")
    if len(payload) > (MAX_BYTES * 4) // 3 + 4:
        raise ImageError(f"The image is over {MAX_BYTES / 2**20:.0f} MB; the limit is {MAX_BYTES / 2**20:.0f} MB.")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("The inline image is not valid base64.") from None


def _uploaded_file(path: str) -> str:
    """`path` if it lies in Gradio's upload folder, else a refusal that says nothing about the path."""
    root = Path(gr.utils.get_upload_folder()).resolve()
    try:
        resolved = Path(path).resolve()
    except (OSError, ValueError, TypeError):
        resolved = None
    if resolved is None or not resolved.is_relative_to(root):
        raise gr.Error("Only images uploaded to this page can be classified.")
    return str(resolved)


def _parse_editors(label_text: str, template_text: str) -> tuple[LabelSet, tuple[str, ...]]:
    """The label and template editors' text, validated (every prompt within 77 tokens); PromptError if not.

    Labels: one per line, or comma-separated; templates: one per line (commas belong to a template).
    """
    labels = clean_labels(parse_label_text(label_text))
    templates = clean_templates([ln for ln in (template_text or "").splitlines() if ln.strip()])
    build_prompts(labels.labels, templates)
    return labels, templates


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


