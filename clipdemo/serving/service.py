"""The service: the gated encoder, the one owner of model access.

`ZeroShot` owns one `LoadedModel` and encodes: label sets (cached, in chunks by cost), search prompts, images and
the CIFAR-100 feature store, each model call one of its `ModelCalls` (what ZeroGPU schedules,
`clipdemo.serving.accel`) through one gate (`clipdemo.serving.scheduler`), so two calls never overlap on the
CPU. Looking inside the model is `zs.inside` (`clipdemo.serving.introspection`), through the same gate; turning
features into answers is `tasks.classify.answer`'s. The tasks and the shells call this, never the model: the
import contracts keep them away from the tasks and the gate.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from ..core import zeroshot
from ..core.labels import CLIP, MULTILINGUAL, LabelSet, PromptError, prompt_where
from ..core.model import LoadedModel, WeightsError
from ..core.multilingual import LoadedTower
from ..core.words import Progress, ProgressFn, Refusal, Text
from ..io.cifar import Cifar100
from ..weights.load import load_tower
from . import accel, backends
from .accel import ComputePath, ModelCalls
from .backends import ImageEncoder, eager_encoder
from .features import ImageFeatureStore, default_path
from .introspection import Introspection
from .lru import LRU
from .scheduler import MAX_WAIT_S, MAX_WAITING, GateStats, ModelGate, Priority

__all__ = ["ZeroShot", "LRU", "Priority", "BULK_AFTER_S", "TOWER_RETRY_S", "DEFAULT_TOKEN_RATES"]

BULK_AFTER_S = 2.0  # label sets whose encoding should take longer than this run as bulk work
TOWER_RETRY_S = 60.0  # after a failed load of the multilingual tower, its sentence is said this long before a retry
# Padded prompt tokens per second of each text tower before any chunk was measured (ViT-B/32's text tower and the
# multilingual DistilBERT on 2 vCPUs: 1,400 to 1,800 measured, taken low so the first chunks are not too long).
DEFAULT_TOKEN_RATES = {CLIP: 1200.0, MULTILINGUAL: 1200.0}
_RATE_WEIGHT = 0.3  # each measured chunk moves a tower's rate this far towards what it measured


class _Preprocessed(Dataset):
    """CIFAR-100 images by index, preprocessed for the model: item -> (`[3, R, R]` pixels, index)."""

    def __init__(self, data: Cifar100, indices: list[int], preprocess):
        self.data, self.indices, self.preprocess = data, indices, preprocess

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        index = self.indices[i]
        return self.preprocess(self.data.image(index)), index


class ZeroShot:
    """Classify and look inside images with one shared model; safe to call from many threads."""

    def __init__(self, loaded: LoadedModel, *, tasks: ModelCalls | None = None, path: ComputePath | None = None,
                 text_cache_size: int = 32, trace_cache_size: int = 32, summary_cache_size: int = 16,
                 max_waiting: int = MAX_WAITING, max_wait_s: float = MAX_WAIT_S,
                 tower_loader: Callable[[ProgressFn | None], LoadedTower] | None = None):
        """`tower_loader(progress)`: loads the multilingual text tower, on first use (default: `load_tower` for
        this model with no download: the runtime passes one that follows the settings)."""
        self.loaded = loaded
        self._tower_loader = tower_loader or (lambda progress: load_tower(loaded, allow_download=False,
                                                                          progress=progress))
        self._tower: LoadedTower | None = None
        self._tower_lock = threading.Lock()
        self._tower_failed: tuple[float, Refusal] | None = None  # when and why the last load failed
        self._tokenizing = threading.Lock()  # the tower's fast tokenizer is not for two threads at once
        self.path = path or accel.path_for(loaded.device.type)  # CPU, CUDA or ZeroGPU (accel.PATHS)
        self._tasks = tasks or ModelCalls()  # in process unless the app passes the spaces.GPU-wrapped ones
        self._engine = accel.Engine(loaded, eager_encoder(loaded.model))  # what the tasks run
        self._key = self._tasks.register(self._engine)
        self._gate = ModelGate(max_waiting, max_wait_s)  # one model call at a time, interactive first
        self._inflight: dict[LabelSet, threading.Lock] = {}  # label sets being encoded now
        self._inflight_lock = threading.Lock()
        self._token_rates = dict(DEFAULT_TOKEN_RATES)  # tower -> padded prompt tokens/s, measured at each chunk
        self._text = LRU(text_cache_size)  # (identity, label set) -> [L, D]
        self._queries = LRU(4 * text_cache_size)  # (identity, prompts) -> [n, D]: search queries
        # looking inside the model (attention, relevancy, tower summaries, the ONNX export), through this gate
        self.inside = Introspection(self, trace_cache_size, summary_cache_size)
        self._store_lock = threading.Lock()
        self.encoder_note = "eager PyTorch"
        self.cifar: ImageFeatureStore | None = None  # CIFAR-100 test features for these weights

    @contextmanager
    def model_call(self, priority: Priority = Priority.INTERACTIVE) -> Iterator[None]:
        """Hold the model for one call; every model call in the app passes through here (a "busy" Refusal when full)."""
        with self._gate.hold(priority):
            yield

    def call(self, task: str, *args, priority: Priority = Priority.INTERACTIVE):
        """Run one of the model tasks (`ModelCalls`) on these weights through the gate: how `Introspection`
        borrows the model."""
        with self.model_call(priority):
            return getattr(self._tasks, task)(self._key, *args)

    @property
    def gate_stats(self) -> GateStats:
        """The gate's counters (grants by priority, refusals, bulk chunks an interactive call waited through)."""
        return self._gate.stats

    @property
    def waiting(self) -> int:
        """Model calls waiting now."""
        return self._gate.waiting

    @property
    def threads(self) -> int:
        """CPU threads the model runs on (set at start-up from the CPU quota, see `clipdemo.serving.cpus`)."""
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
        with self.model_call():
            self._engine.encoder, self.encoder_note = encoder, note

    def choose_backend(self, name: str, cache_dir: Path, exporter=None) -> str:
        """Pick the image backend `name` (parity-checked, see `backends.select`), use it, and say which.
        On a GPU path the backend stays eager PyTorch: ONNX Runtime is the CPU path's."""
        if not self.path.onnx:
            self.encoder_note = f"eager PyTorch ({str(self.loaded.dtype).removeprefix('torch.')})"
            return self.encoder_note
        encoder, note = backends.select(name, self.loaded.model, self.loaded.config.image_resolution, cache_dir,
                                        self.loaded.info.identity, exporter)
        self.use_encoder(encoder, note)
        return note

    # -- CIFAR-100 feature store ----------------------------------------------------------------------
    @property
    def features_precision(self) -> str:
        """What the stored image features are computed in: the model's dtype ("float32" on CPU, "float16" on
        CUDA), or an approximate encoder's name (bf16). Part of the store's key: features from another
        precision are not these (fp16 differs from fp32 in the third decimal of a probability)."""
        return str(self.loaded.dtype).removeprefix("torch.") if self.encoder.exact else self.encoder.name

    @property
    def features_identity(self) -> str:
        """The feature store's key: the weights' identity and the precision."""
        return f"{self.loaded.info.identity} {self.features_precision}"

    def features_path(self, cache_dir: Path) -> Path:
        """Where this service's CIFAR-100 features are saved: keyed by the weights' SHA-256, or for seeded random
        weights by their identity (preset and seed) and the torch version that initialised them."""
        info = self.loaded.info
        key = info.sha256 or hashlib.sha256(f"{info.identity} torch {torch.__version__}".encode()).hexdigest()
        return default_path(cache_dir, key, self.features_precision)

    def cifar_store(self, size: int) -> ImageFeatureStore:
        """The CIFAR-100 feature store for these weights and this precision (created empty on first use, once)."""
        with self._store_lock:
            if self.cifar is None:
                self.cifar = ImageFeatureStore(self.features_identity, size, self.loaded.config.embed_dim)
            return self.cifar

    def add_stored_features(self, stored: ImageFeatureStore) -> int:
        """Merge features loaded from a file into the store; rows already computed are kept. Returns rows added."""
        return self.cifar_store(stored.features.shape[0]).merge(stored)

    # -- the text side: one path, the one the app runs --------------------------------------------------
    def has_text_features(self, label_set: LabelSet) -> bool:
        return (self.loaded.info.identity, label_set) in self._text

    def text_features(self, label_set: LabelSet, progress: ProgressFn | None = None) -> torch.Tensor:
        """One normalised feature per label: `[n_labels, D]`, cached. Do not modify the result in place.

        The prompts are tokenised, encoded in chunks by cost (`_encode_prompts`; each chunk one model call:
        `zeroshot.prompt_features`) and ensembled per label (`zeroshot.ensemble`). A set that should take longer
        than BULK_AFTER_S runs as bulk work, so visitors' predictions go in between its chunks. One thread
        encodes a set; others asking for it meanwhile wait and share the result.
        """
        key = (self.loaded.info.identity, label_set)
        feats = self._text.get(key)
        if feats is not None:
            return feats
        with self._encoding(label_set):
            feats = self._text.get(key)
            if feats is None:
                feats = self._encode_labels(label_set, progress)
                self._text.put(key, feats)
        return feats

    @contextmanager
    def _encoding(self, label_set: LabelSet) -> Iterator[None]:
        with self._inflight_lock:
            lock = self._inflight.setdefault(label_set, threading.Lock())
        with lock:
            yield
        with self._inflight_lock:
            if not lock.locked():
                self._inflight.pop(label_set, None)

    def _encode_labels(self, label_set: LabelSet, progress: ProgressFn | None) -> torch.Tensor:
        cost = label_set.cost if label_set.encoder == CLIP else self._tower_cost(label_set, progress)
        priority = Priority.BULK if self.text_seconds(cost, label_set.encoder) > BULK_AFTER_S else Priority.INTERACTIVE
        prompts = tuple(label_set.prompts())
        feats = self._encode_prompts(prompts, priority, progress, label_set.encoder)  # [P = L * T, D]
        return zeroshot.ensemble(feats, len(label_set.labels), len(label_set.templates))  # [L, D]

    def _tower_cost(self, label_set: LabelSet, progress: ProgressFn | None) -> int:
        """The set's prompt tokens under the multilingual tower's tokenizer; PromptError for a prompt over its
        limit (naming it) or a set over the prompt budget: nothing is cut short."""
        tower = self.tower(progress)
        with self._tokenizing:
            counts = tower.tokenizer.counts(label_set.prompts())
        for i, n in enumerate(counts):
            if n > tower.config.max_tokens:
                where = prompt_where(i, len(label_set.templates))
                raise PromptError("prompt_long_tower", where, n, tower.config.max_tokens)
        if (cost := sum(counts)) > tower.config.prompt_budget:
            raise PromptError("budget_tower", f"{cost:,}", f"{tower.config.prompt_budget:,}")
        return cost

    def chunk_budget(self, encoder: str = CLIP) -> float:
        """What one text model call may cost on this path, in padded prompt tokens: the path's `text_chunk_s` at
        the tower's measured rate."""
        return self.path.text_chunk_s * self._token_rates[encoder]

    def _encode_prompts(self, prompts: tuple[str, ...], priority: Priority, progress: ProgressFn | None = None,
                        encoder: str = CLIP) -> torch.Tensor:
        """The one text encoder: prompts tokenised by the chosen text tower's tokenizer and encoded in chunks by
        cost (`zeroshot.cost_chunks`: prompts x the chunk's longest within `chunk_budget`, so a chunk of long
        prompts is short and visitors wait behind at most one), each chunk one model call (CLIP's:
        `zeroshot.prompt_features`; the multilingual tower's: `ModelCalls.encode_multilingual`): `[P, D]` normalised."""
        if encoder == CLIP:
            tokens = zeroshot.tokenize(list(prompts))  # [P, 77]
            lengths = zeroshot.token_lengths(tokens)
            batch = lambda part: (tokens[part],)  # noqa: E731 - [b, 77]
            task = self._tasks.encode_prompts
        else:
            with self._tokenizing:
                ids, mask = self.tower(progress).tokenizer(list(prompts))  # [P, T], [P, T]: padded to the longest
            lengths = mask.sum(dim=-1).tolist()

            def batch(part: slice) -> tuple[torch.Tensor, torch.Tensor]:
                longest = max(lengths[part])  # padding is on the right: the chunk keeps its longest prompt's width
                return ids[part, :longest], mask[part, :longest]  # [b, T'], [b, T']
            task = self._tasks.encode_multilingual
        chunks, done = [], 0
        for part in zeroshot.cost_chunks(lengths, self.chunk_budget(encoder), self.path.text_chunk):
            args = batch(part)
            with self.model_call(priority):
                start = time.perf_counter()
                chunks.append(task(self._key, *args))  # [b, D]
                self._measured(encoder, (part.stop - part.start) * max(lengths[part]), time.perf_counter() - start)
            done = part.stop
            if progress:
                progress(Progress(done, len(prompts), Text("progress_encoding_prompts")))
        return torch.cat(chunks)

    def _measured(self, encoder: str, tokens: int, seconds: float) -> None:
        """A text chunk of `tokens` padded tokens took `seconds`: the tower's rate moves towards it."""
        rate = tokens / max(seconds, 1e-6)
        self._token_rates[encoder] += _RATE_WEIGHT * (rate - self._token_rates[encoder])

    def prompt_features(self, prompts: tuple[str, ...]) -> torch.Tensor:
        """Normalised features of a few prompts as typed, by CLIP's own text tower (search queries, each checked to
        fit its 77 tokens): `[n, D]`, cached. Do not modify the result in place."""
        key = (self.loaded.info.identity, tuple(prompts))
        feats = self._queries.get(key)
        if feats is None:
            feats = self._encode_prompts(tuple(prompts), Priority.INTERACTIVE)
            self._queries.put(key, feats)
        return feats

    # -- the multilingual text tower: loaded on first use --------------------------------------------------
    @property
    def tower_loaded(self) -> LoadedTower | None:
        """The multilingual tower when it has been loaded (None before its first use)."""
        return self._tower

    def tower(self, progress: ProgressFn | None = None) -> LoadedTower:
        """The multilingual text tower, loaded on first use (once: others asking meanwhile wait for it) and handed
        to the engine the tasks run. A WeightsError says why it cannot be loaded, and how to fix it; after a
        failure the same sentence is said for TOWER_RETRY_S before a load is tried again (a host without network
        does not make every request wait for its timeouts)."""
        if self._tower is None:
            with self._tower_lock:
                if self._tower is None:
                    if self._tower_failed and time.monotonic() - self._tower_failed[0] < TOWER_RETRY_S:
                        raise self._tower_failed[1]
                    try:
                        tower = self._tower_loader(progress)
                    except Refusal as exc:
                        self._tower_failed = (time.monotonic(), exc)
                        raise
                    self._engine.tower = tower.model
                    self._tower = tower
        return self._tower

    def hold_tower_failure(self, exc: Refusal) -> None:
        """Where the tower can only be loaded before the server starts (ZeroGPU: a GPU worker is forked with what
        the process holds then) and that failed: say so from now on, never load it later."""
        self._tower_failed = (math.inf, WeightsError("ml_tower_late", exc.text))  # at +inf: never retried

    def text_seconds(self, cost: int, encoder: str = CLIP) -> float:
        """About how long encoding prompts of `cost` tokens takes here (at the tower's measured rate)."""
        return cost / self._token_rates[encoder]

    # -- the image side ------------------------------------------------------------------------------
    def pixels(self, image: Image.Image) -> torch.Tensor:
        """The model's input for one RGB image: `[3, R, R]`."""
        return self.loaded.preprocess(image)

    def encode_pixels(self, pixels: torch.Tensor, priority: Priority = Priority.INTERACTIVE) -> torch.Tensor:
        """`[B, 3, R, R]` preprocessed pixels -> `[B, D]` normalised features, with the current backend.

        Bulk callers pass `Priority.BULK` and batches small enough to be one chunk (see `bulk_images`).
        """
        with self.model_call(priority):
            feats = self._tasks.encode_images(self._key, pixels.to(self.loaded.dtype))  # [B, D]; fp16 on a GPU path
        return zeroshot.normalise(feats)

    def image_features(self, images: list[Image.Image], priority: Priority = Priority.INTERACTIVE,
                       progress: ProgressFn | None = None, what: Text | None = None) -> torch.Tensor:
        """`[B, D]` normalised features of RGB images, in chunks of `bulk_images`, each one model call at
        `priority` (in bulk work visitors' calls go in between); a `Progress` (done of B, `what`) after each chunk."""
        chunks, step = [], self.bulk_images
        for first in range(0, len(images), step):
            pixels = torch.stack([self.pixels(im) for im in images[first:first + step]])  # [b, 3, R, R]
            chunks.append(self.encode_pixels(pixels, priority))  # [b, D]
            if progress:
                progress(Progress(min(first + step, len(images)), len(images), what))
        return torch.cat(chunks)

    def fill_store(self, data: Cifar100, indices: list[int], *, batch_size: int | None = None, workers: int = 0,
                   priority: Priority = Priority.BULK) -> Iterator[int]:
        """Encode the images of `indices` that the CIFAR-100 store lacks, in batches of `batch_size` (default: the
        path's bulk size, so each batch is one short bulk model call), preprocessed by `workers` DataLoader
        processes (0: in this one), and store them (skipping any another job stored meanwhile); yields how many of
        them are done after each batch. A caller that stops iterating stops it there (what it encoded is kept).
        The one loop that fills the store: the evaluation, the search index and the CLI's `features` and `search`
        all run it."""
        store = self.cifar_store(len(data))
        todo = store.missing(indices)
        if not todo:
            return
        loader = DataLoader(_Preprocessed(data, todo, self.loaded.preprocess), batch_size=batch_size or self.bulk_images,
                            shuffle=False, num_workers=workers, persistent_workers=False)
        done = 0
        for pixels, idx in loader:  # pixels: [b, 3, R, R]
            # another job may have stored some of these meanwhile (an evaluation, a prediction, the other loop)
            missing = set(store.missing(idx.tolist()))
            fresh = [j for j, index in enumerate(idx.tolist()) if index in missing]
            if fresh:
                store.put(idx[fresh], self.encode_pixels(pixels[fresh], priority))  # [b', D]
            done += len(idx)
            yield done

    def cifar_feature(self, index: int, image: Image.Image, size: int) -> torch.Tensor:
        """`[D]` feature of CIFAR-100 test image `index`: from the store, or encoded once and stored."""
        store = self.cifar_store(size)
        feat = store.get(index)
        if feat is None:
            feat = self.image_features([image])[0]
            store.put([index], feat[None])
        return feat
