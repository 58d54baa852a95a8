"""The service layer: the one owner of model access, and of every cache of model-derived things.

Holds: `ZeroShot`, which owns one `LoadedModel` and runs every model call (classification, batch
encoding, attention traces, torchinfo summaries, the ONNX export) through one gate, so two calls
never overlap on the CPU; bounded LRUs keyed by the weights' identity (label text features, attention
traces, tower summaries); the CIFAR-100 image feature store; and `Prediction`. Nothing outside this
module (and the pure core it calls: `engine`, `inside`, `architecture`, `backends`) takes the gate or
touches `.model`; a test reads the source to keep it so. The math lives in those core modules.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image

from . import architecture, backends, engine
from .backends import ImageEncoder, eager_encoder
from .features import ImageFeatureStore
from .inside import VisionTrace, vision_attention
from .model import ClipConfig, LoadedModel, WeightsInfo
from .progress import ProgressFn

__all__ = ["ZeroShot", "Prediction", "LRU"]


class LRU:
    """A small thread-safe least-recently-used map with a fixed bound."""

    def __init__(self, maxsize: int):
        self.maxsize = maxsize
        self._data: OrderedDict[Hashable, object] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable):
        with self._lock:
            if key in self._data:
                self._data.move_to_end(key)
                return self._data[key]
            return None

    def put(self, key: Hashable, value: object) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._data

    def __len__(self) -> int:
        with self._lock:
            return len(self._data)


@dataclass(frozen=True)
class Prediction:
    """One image's result: probabilities over `labels`, and the top-k."""

    labels: tuple[str, ...]
    probs: tuple[float, ...]  # [n_labels], sums to 1
    top: tuple[tuple[str, float], ...]  # best first
    weights: WeightsInfo
    true_label: str | None = None

    @property
    def true_rank(self) -> int | None:
        """1-based rank of the true label among all labels, or None when unknown or not a label."""
        if self.true_label not in self.labels:
            return None
        p = self.probs[self.labels.index(self.true_label)]
        return 1 + sum(q > p for q in self.probs)

    @property
    def true_prob(self) -> float | None:
        return self.probs[self.labels.index(self.true_label)] if self.true_label in self.labels else None

    def lines(self) -> list[str]:
        """The notebook's text lines: `'            lion: 96.34%'`."""
        return [f"{label:>16s}: {100 * p:.2f}%" for label, p in self.top]

    def as_dict(self) -> dict:
        out = {"weights": {"name": self.weights.name, "sha256": self.weights.sha256, "trained": self.weights.trained},
               "top": [{"label": lab, "prob": p} for lab, p in self.top]}
        if self.true_label is not None:
            out.update(true_label=self.true_label, true_rank=self.true_rank, true_prob=self.true_prob)
        return out


class ZeroShot:
    """Classify and look inside images with one shared model; safe to call from many threads."""

    def __init__(self, loaded: LoadedModel, *, text_cache_size: int = 32, trace_cache_size: int = 32,
                 summary_cache_size: int = 16):
        self.loaded = loaded
        self._gate = threading.Lock()  # one model call at a time: overlapping calls only thrash 2 vCPUs
        self._text = LRU(text_cache_size)  # (identity, labels, templates) -> [L, D]
        self._traces = LRU(trace_cache_size)  # (identity, input key) -> VisionTrace
        self._summaries = LRU(summary_cache_size)  # (identity, tower, depth) -> TowerSummary
        self._store_lock = threading.Lock()
        self.encoder: ImageEncoder = eager_encoder(loaded.model)
        self.encoder_note = "eager PyTorch"
        self.cifar: ImageFeatureStore | None = None  # CIFAR-100 test features for these weights

    @contextmanager
    def _model_call(self) -> Iterator[None]:
        """Hold the model for one call; every model call in the app passes through here."""
        with self._gate:
            yield

    # -- identity and configuration (no model call) ----------------------------------------------
    @property
    def info(self) -> WeightsInfo:
        return self.loaded.info

    @property
    def config(self) -> ClipConfig:
        return self.loaded.config

    @property
    def device(self) -> torch.device:
        return self.loaded.device

    @property
    def dtype(self) -> torch.dtype:
        return self.loaded.dtype

    # -- image backend ------------------------------------------------------------------------------
    def use_encoder(self, encoder: ImageEncoder, note: str) -> None:
        """Switch the image backend (between model calls)."""
        with self._model_call():
            self.encoder, self.encoder_note = encoder, note

    def choose_backend(self, name: str, cache_dir: Path, exporter=None) -> str:
        """Pick the image backend `name` (parity-checked, see `backends.select`), use it, and say which."""
        encoder, note = backends.select(name, self.loaded.model, self.config.image_resolution, cache_dir,
                                        self.info.identity, exporter)
        self.use_encoder(encoder, note)
        return note

    def export_onnx(self, path: Path) -> Path:
        """Export the vision tower to ONNX at `path` (what the backend's child process runs)."""
        with self._model_call():
            return backends.export_onnx(self.loaded.model, self.config.image_resolution, path)

    # -- CIFAR-100 feature store ----------------------------------------------------------------------
    def cifar_store(self, size: int) -> ImageFeatureStore:
        """The CIFAR-100 feature store for these weights (created empty on first use, once)."""
        with self._store_lock:
            if self.cifar is None:
                self.cifar = ImageFeatureStore(self.info.identity, size, self.config.embed_dim)
            return self.cifar

    def add_stored_features(self, stored: ImageFeatureStore) -> int:
        """Merge features loaded from a file into the store; rows already computed are kept. Returns rows added."""
        return self.cifar_store(stored.features.shape[0]).merge(stored)

    # -- classification ---------------------------------------------------------------------------------
    def text_key(self, labels: tuple[str, ...], templates: tuple[str, ...]) -> tuple:
        return (self.info.identity, tuple(labels), tuple(templates))

    def has_text_features(self, labels: tuple[str, ...], templates: tuple[str, ...]) -> bool:
        return self.text_key(labels, templates) in self._text

    def text_features(self, labels: tuple[str, ...], templates: tuple[str, ...],
                      progress: ProgressFn | None = None) -> torch.Tensor:
        """Cached `engine.text_features`: `[n_labels, D]` normalised. Do not modify the result in place."""
        key = self.text_key(labels, templates)
        feats = self._text.get(key)
        if feats is None:
            with self._model_call():
                feats = self._text.get(key)  # another thread may have computed it meanwhile
                if feats is None:
                    feats = engine.text_features(self.loaded.model, tuple(labels), tuple(templates),
                                                 device=self.device, progress=progress)
                    self._text.put(key, feats)
        return feats

    def pixels(self, image: Image.Image) -> torch.Tensor:
        """The model's input for one RGB image: `[3, R, R]`."""
        return self.loaded.preprocess(image)

    def encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        """`[B, 3, R, R]` preprocessed pixels -> `[B, D]` normalised features, with the current backend."""
        with self._model_call():
            feats = self.encoder.encode(pixels)  # [B, D]
        return engine.normalise(feats)

    def image_features(self, images: list[Image.Image]) -> torch.Tensor:
        """`[B, D]` normalised features of RGB images."""
        return self.encode_pixels(torch.stack([self.pixels(im) for im in images]))  # [B, 3, R, R] -> [B, D]

    def cifar_feature(self, index: int, image: Image.Image, size: int) -> torch.Tensor:
        """`[D]` feature of CIFAR-100 test image `index`: from the store, or encoded once and stored."""
        store = self.cifar_store(size)
        feat = store.get(index)
        if feat is None:
            feat = self.image_features([image])[0]
            store.put([index], feat[None])
        return feat

    def classify(self, image_feat: torch.Tensor, labels: tuple[str, ...], templates: tuple[str, ...], k: int,
                 true_label: str | None = None) -> Prediction:
        """Score one image feature `[D]` against the labels' text features."""
        text = self.text_features(labels, templates)  # [L, D]
        probs = engine.probabilities(image_feat[None], text)[0]  # [L]
        return Prediction(tuple(labels), tuple(probs.tolist()), tuple(engine.top_k(probs, tuple(labels), k)),
                          self.info, true_label)

    def predict(self, image: Image.Image, labels: tuple[str, ...], templates: tuple[str, ...], k: int = 5,
                true_label: str | None = None) -> Prediction:
        """Classify one RGB image: the notebook's recipe, with text features cached."""
        self.text_features(labels, templates)  # validate prompts before spending an image forward pass
        return self.classify(self.image_features([image])[0], labels, templates, k, true_label)

    # -- looking inside -------------------------------------------------------------------------------------
    def vision_trace(self, image: Image.Image, key: Hashable) -> VisionTrace:
        """Every attention map of the vision tower for `image`, cached under `key` (what the image is)."""
        cache_key = (self.info.identity, key)
        trace = self._traces.get(cache_key)
        if trace is None:
            pixels = self.pixels(image)  # [3, R, R]
            with self._model_call():
                trace = vision_attention(self.loaded.model, pixels[None])
            self._traces.put(cache_key, trace)
        return trace

    def tower_summary(self, tower: str, depth: int) -> architecture.TowerSummary:
        """torchinfo summary of one tower (runs a forward pass once per tower and depth; cached)."""
        key = (self.info.identity, tower, int(depth))
        summary = self._summaries.get(key)
        if summary is None:
            with self._model_call():
                summary = architecture.tower_summary(self.loaded, tower, int(depth))
            self._summaries.put(key, summary)
        return summary

    def config_card(self) -> dict[str, object]:
        """The architecture derived from the weights (`architecture.config_card`)."""
        return architecture.config_card(self.loaded)

    def module_tree(self) -> str:
        """`print(model)`."""
        return architecture.module_tree(self.loaded)

    def parameter_tree(self) -> list[tuple[str, str, str, int]]:
        """Parameter counts as a hierarchy (`architecture.parameter_tree`)."""
        return architecture.parameter_tree(self.loaded)
