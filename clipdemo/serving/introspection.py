"""Looking inside the model: attention traces, relevancy maps, torchinfo summaries and the ONNX export.

`Introspection` borrows the service's model through its gate (`ZeroShot.call`), so a view never overlaps a
prediction, and keeps its own bounded caches keyed by the weights' identity. The math is `core.inside`'s and
`core.architecture`'s. The service only encodes; `zs.inside` is this.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from PIL import Image

from ..core import checks, zeroshot
from ..core.architecture import TowerSummary
from ..core.inside import Explanation, VisionTrace
from ..core.labels import CLIP, LabelSet, fill
from ..core.words import Refusal
from . import backends
from .lru import LRU

if TYPE_CHECKING:
    from .service import ZeroShot

__all__ = ["Introspection"]


class Introspection:
    """Attention, relevancy, tower summaries and the ONNX export of one service's model, through its gate."""

    def __init__(self, zs: ZeroShot, trace_cache_size: int = 32, summary_cache_size: int = 16):
        self.zs = zs
        self._traces = LRU(trace_cache_size)  # (identity, input key) -> VisionTrace
        self._summaries = LRU(summary_cache_size)  # (identity, tower, depth) -> TowerSummary
        self._explained = LRU(trace_cache_size)  # (identity, input key, label, label set) -> Explanation

    def export_onnx(self, path: Path) -> Path:
        """Export the vision tower to ONNX at `path` (what the backend's child process runs)."""
        with self.zs.model_call():
            return backends.export_onnx(self.zs.loaded.model, self.zs.loaded.config.image_resolution, path)

    def vision_trace(self, image: Image.Image, key: Hashable) -> VisionTrace:
        """Every attention map of the vision tower for `image`, cached under `key` (what the image is)."""
        cache_key = (self.zs.loaded.info.identity, key)
        trace = self._traces.get(cache_key)
        if trace is None:
            pixels = self.zs.pixels(image)  # [3, R, R]
            trace = self.zs.call("attention", pixels[None])
            self._traces.put(cache_key, trace)
        return trace

    def explain(self, image: Image.Image, key: Hashable, label: str, label_set: LabelSet,
                versus: str | None = None) -> Explanation:
        """Why `image` (cached under `key`) matched `label` of the set: relevancy over its patches for the label's
        (ensemble) feature, and over the words of its first prompt (`inside.explain`); cached, bounded. With
        `versus`, the image map is where `label`'s relevancy exceeds `versus`'s: `relu(map - map_versus)`."""
        found = self._explain(image, key, label, label_set)
        if versus and versus != label:
            other = self._explain(image, key, versus, label_set).image
            found = dataclasses.replace(found, image=(found.image - other).clamp(min=0))  # [grid, grid]
        return found

    def _explain(self, image: Image.Image, key: Hashable, label: str, label_set: LabelSet) -> Explanation:
        if label not in label_set.labels:
            raise Refusal("explain_not_active", label)
        text = self.zs.text_features(label_set)[label_set.labels.index(label)]  # [D], normalised
        words = fill(label_set.templates[0], label) if label_set.encoder == CLIP else None  # CLIP's words only
        return self._relevancy(image, key, text, words, (label, label_set))

    def explain_prompt(self, image: Image.Image, key: Hashable, prompt: str) -> Explanation:
        """Why `image` (cached under `key`) matched one prompt as typed (a search query): relevancy over its
        patches and over the prompt's words; cached, bounded."""
        return self._relevancy(image, key, self.zs.prompt_features((prompt,))[0], prompt, prompt)

    def _relevancy(self, image: Image.Image, key: Hashable, text: torch.Tensor, prompt: str | None,
                   what: Hashable) -> Explanation:
        """The relevancy map of `image` for the text feature `text` `[D]` (the words: `prompt`'s through CLIP's
        text tower; None: no words), cached under (weights, `key`, `what`)."""
        cache_key = (self.zs.loaded.info.identity, key, what)
        found = self._explained.get(cache_key)
        if found is None:
            tokens = zeroshot.tokenize([prompt]) if prompt is not None else None  # [1, 77]
            found = self.zs.call("relevancy", self.zs.pixels(image)[None], text, tokens)
            self._explained.put(cache_key, found)
        return found

    def tower_summary(self, tower: str, depth: int) -> TowerSummary:
        """torchinfo summary of one tower (runs a forward pass once per tower and depth; cached). A bad tower or
        depth is refused here (`clipdemo.core.checks`), before any GPU task: a bad input is the caller's."""
        tower, depth = checks.tower(tower), checks.summary_depth(depth)
        key = (self.zs.loaded.info.identity, tower, depth)
        summary = self._summaries.get(key)
        if summary is None:
            summary = self.zs.call("tower_summary", tower, depth)
            self._summaries.put(key, summary)
        return summary
