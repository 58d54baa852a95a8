"""The service layer: the one owner of model access, and of every cache of model-derived things.

Holds: `ZeroShot`, which owns one `LoadedModel` and runs every model call (classification, batch
encoding, attention traces, relevancy maps, torchinfo summaries, the ONNX export) through one gate, so two calls
never overlap on the CPU, each call being one of `clipdemo.accel`'s tasks (what ZeroGPU schedules); bounded LRUs keyed by the weights' identity (label text features, attention
traces, relevancy maps, tower summaries); the CIFAR-100 image feature store; and `Prediction`. Nothing outside this
module (and the pure core it calls: `accel`, `engine`, `inside`, `architecture`, `backends`) takes the gate or
touches `.model`; a test reads the source to keep it so. The math lives in those core modules.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from PIL import Image

from . import accel, architecture, backends, engine
from .accel import ComputePath
from .backends import ImageEncoder, eager_encoder
from .features import ImageFeatureStore
from .i18n import Refusal
from .inside import Explanation, VisionTrace
from .model import ClipConfig, LoadedModel, WeightsInfo
from .lru import LRU
from .prediction import Prediction
from .progress import ProgressFn
from .prompts import build_prompts, fill
from .scheduler import MAX_WAIT_S, MAX_WAITING, GateStats, ModelGate, Priority

__all__ = ["ZeroShot", "Prediction", "TEXT_CHUNK", "BULK_IMAGES", "BULK_AFTER_S"]

TEXT_CHUNK = accel.PATHS["cpu"].text_chunk  # prompts per model call on CPU (~0.3 s on 2 vCPUs); see accel.PATHS
BULK_IMAGES = accel.PATHS["cpu"].bulk_images  # images per model call in bulk work on CPU (~0.4 s on 2 vCPUs)
BULK_AFTER_S = 2.0  # label sets whose encoding should take longer than this run as bulk work
DEFAULT_TEXT_RATE = 1500.0  # prompt tokens/s before anything was measured (ViT-B/32 text tower, 2 vCPUs)


class ZeroShot:
    """Classify and look inside images with one shared model; safe to call from many threads."""

    def __init__(self, loaded: LoadedModel, *, path: ComputePath | None = None, text_cache_size: int = 32,
                 trace_cache_size: int = 32, summary_cache_size: int = 16, max_waiting: int = MAX_WAITING,
                 max_wait_s: float = MAX_WAIT_S):
        self.loaded = loaded
        self.path = path or accel.path_for(loaded.device.type)  # CPU, CUDA or ZeroGPU (accel.PATHS)
        self._engine = accel.Engine(loaded, eager_encoder(loaded.model))  # what the tasks run
        self._key = accel.register(self._engine)
        self._gate = ModelGate(max_waiting, max_wait_s)  # one model call at a time, interactive first (clipdemo.scheduler)
        self._inflight: dict[tuple, threading.Lock] = {}  # label sets being encoded now
        self._inflight_lock = threading.Lock()
        self._text_rate = DEFAULT_TEXT_RATE  # prompt tokens encoded per second, measured at each encoding
        self._text = LRU(text_cache_size)  # (identity, labels, templates) -> [L, D]
        self._traces = LRU(trace_cache_size)  # (identity, input key) -> VisionTrace
        self._summaries = LRU(summary_cache_size)  # (identity, tower, depth) -> TowerSummary
        self._explained = LRU(trace_cache_size)  # (identity, input key, label, labels, templates) -> Explanation
        self._store_lock = threading.Lock()
        self.encoder_note = "eager PyTorch"
        self.cifar: ImageFeatureStore | None = None  # CIFAR-100 test features for these weights

    @contextmanager
    def _model_call(self, priority: Priority = Priority.INTERACTIVE) -> Iterator[None]:
        """Hold the model for one call; every model call in the app passes through here (Busy when full)."""
        with self._gate.hold(priority):
            yield

    @property
    def gate_stats(self) -> GateStats:
        """The gate's counters (grants by priority, refusals, bulk chunks an interactive call waited through)."""
        return self._gate.stats

    @property
    def waiting(self) -> int:
        """Model calls waiting now."""
        return self._gate.waiting

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

    @property
    def threads(self) -> int:
        """CPU threads the model runs on (set at start-up from the CPU quota, see `clipdemo.cpus`)."""
        return torch.get_num_threads()

    @property
    def bulk_images(self) -> int:
        """Images per model call in bulk work on this path (small on CPU, so predictions go in between)."""
        return self.path.bulk_images

    # -- image backend ------------------------------------------------------------------------------
    @property
    def encoder(self) -> ImageEncoder:
        return self._engine.encoder

    def use_encoder(self, encoder: ImageEncoder, note: str) -> None:
        """Switch the image backend (between model calls)."""
        with self._model_call():
            self._engine.encoder, self.encoder_note = encoder, note

    def choose_backend(self, name: str, cache_dir: Path, exporter=None) -> str:
        """Pick the image backend `name` (parity-checked, see `backends.select`), use it, and say which.
        On a GPU path the backend stays eager PyTorch: ONNX Runtime is the CPU path's."""
        if not self.path.onnx:
            self.encoder_note = f"eager PyTorch ({str(self.dtype).removeprefix('torch.')})"
            return self.encoder_note
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
        """Cached label text features: `[n_labels, D]` normalised. Do not modify the result in place.

        Encoded in chunks of TEXT_CHUNK prompts, each one model call; a set that takes longer than
        BULK_AFTER_S to encode runs as bulk work, so visitors' predictions go in between its chunks.
        """
        key = self.text_key(labels, templates)
        feats = self._text.get(key)
        if feats is not None:
            return feats
        with self._encoding(key):  # one thread encodes a set; others asking for it wait and share the result
            feats = self._text.get(key)
            if feats is None:
                feats = self._encode_labels(tuple(labels), tuple(templates), progress)
                self._text.put(key, feats)
        return feats

    @contextmanager
    def _encoding(self, key: tuple) -> Iterator[None]:
        with self._inflight_lock:
            lock = self._inflight.setdefault(key, threading.Lock())
        with lock:
            yield
        with self._inflight_lock:
            if not lock.locked():
                self._inflight.pop(key, None)

    def _encode_labels(self, labels: tuple[str, ...], templates: tuple[str, ...],
                       progress: ProgressFn | None) -> torch.Tensor:
        tokens = engine.tokenize(build_prompts(labels, templates))  # validates; [P = L * T, 77]
        cost = int((tokens.argmax(dim=-1) + 1).sum())  # prompt tokens up to end-of-text (= prompts.prompt_cost)
        priority = Priority.BULK if self.text_seconds(cost) > BULK_AFTER_S else Priority.INTERACTIVE
        chunks, start, step = [], time.perf_counter(), self.path.text_chunk
        for first in range(0, len(tokens), step):
            with self._model_call(priority):
                chunks.append(accel.encode_prompts(self._key, tokens[first:first + step]))  # [b, D]
            if progress:
                progress(min(first + step, len(tokens)), len(tokens), "encoding prompts")
        self._text_rate = cost / max(time.perf_counter() - start, 1e-6)
        return engine.ensemble(torch.cat(chunks), len(labels), len(templates))  # [L, D]

    def text_seconds(self, cost: int) -> float:
        """About how long encoding prompts of `cost` tokens takes here (from the last encoding measured)."""
        return cost / self._text_rate

    def pixels(self, image: Image.Image) -> torch.Tensor:
        """The model's input for one RGB image: `[3, R, R]`."""
        return self.loaded.preprocess(image)

    def encode_pixels(self, pixels: torch.Tensor, priority: Priority = Priority.INTERACTIVE) -> torch.Tensor:
        """`[B, 3, R, R]` preprocessed pixels -> `[B, D]` normalised features, with the current backend.

        Bulk callers pass `Priority.BULK` and batches small enough to be one chunk (see BULK_IMAGES).
        """
        with self._model_call(priority):
            feats = accel.encode_images(self._key, pixels.to(self.dtype))  # [B, D]; fp16 pixels on a GPU path
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
        cosines, probs = (s[0] for s in engine.scores(image_feat[None], text))  # [L], [L]
        return Prediction(tuple(labels), tuple(probs.tolist()), tuple(engine.top_k(probs, tuple(labels), k)),
                          self.info, true_label, tuple(cosines.tolist()))

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
                trace = accel.attention(self._key, pixels[None])
            self._traces.put(cache_key, trace)
        return trace

    def explain(self, image: Image.Image, key: Hashable, label: str, labels: tuple[str, ...],
                templates: tuple[str, ...], versus: str | None = None) -> Explanation:
        """Why `image` (cached under `key`) matched `label` of the set: relevancy over its patches for the label's
        (ensemble) feature, and over the words of its first prompt (`inside.explain`); cached, bounded. With
        `versus`, the image map is where `label`'s relevancy exceeds `versus`'s: `relu(map - map_versus)`."""
        found = self._explain(image, key, label, labels, templates)
        if versus and versus != label:
            other = self._explain(image, key, versus, labels, templates).image
            found = dataclasses.replace(found, image=(found.image - other).clamp(min=0))  # [grid, grid]
        return found

    def _explain(self, image: Image.Image, key: Hashable, label: str, labels: tuple[str, ...],
                 templates: tuple[str, ...]) -> Explanation:
        if label not in labels:
            raise Refusal("explain_not_active", label)
        cache_key = (self.info.identity, key, label, tuple(labels), tuple(templates))
        found = self._explained.get(cache_key)
        if found is None:
            text = self.text_features(tuple(labels), tuple(templates))[labels.index(label)]  # [D], normalised
            tokens = engine.tokenize([fill(templates[0], label)])  # [1, 77]
            with self._model_call():
                found = accel.relevancy(self._key, self.pixels(image)[None], text, tokens)
            self._explained.put(cache_key, found)
        return found

    def tower_summary(self, tower: str, depth: int) -> architecture.TowerSummary:
        """torchinfo summary of one tower (runs a forward pass once per tower and depth; cached)."""
        architecture.check_summary_args(tower, depth)  # here, not in the GPU task: a bad input is the caller's
        key = (self.info.identity, tower, int(depth))
        summary = self._summaries.get(key)
        if summary is None:
            with self._model_call():
                summary = accel.tower_summary(self._key, tower, int(depth))
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
