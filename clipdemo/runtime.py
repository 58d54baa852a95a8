"""The app's process-wide resources: the model (loaded in the background) and the dataset.

Holds: `Runtime`, which starts loading the model on a thread (so the page is served meanwhile),
reports load progress and failures as plain status values, opens CIFAR-100 on first use, and
encodes the default label set once the model is ready. Shared by every session; holds nothing
per user (per-session label sets live in the UI's `gr.State`). No gradio here.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import torch

from . import backends
from .data import Cifar100, DataError, open_cifar100
from .features import FeatureFileError, ImageFeatureStore, default_path
from .model import LoadedModel, WeightsError, load_model
from .presets import LABEL_PRESETS, TEMPLATE_SETS
from .service import ZeroShot
from .settings import Settings

__all__ = ["Runtime", "ModelStatus", "ModelUnavailable"]

log = logging.getLogger(__name__)
DATA_RETRY_S = 60.0  # after a failed dataset open, wait this long before trying (and maybe downloading) again


def release_freed_memory() -> None:
    """Hand memory freed by loading (temporary copies of the weights) back to the OS (glibc only)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


class ModelUnavailable(RuntimeError):
    """The model is still loading or failed to load; the message says which and what to do."""


@dataclass(frozen=True)
class ModelStatus:
    """A snapshot of the model's state for status lines."""

    state: str  # "idle", "loading", "ready" or "failed"
    message: str
    fraction: float | None = None  # load progress 0..1 when known


class Runtime:
    """Owns the shared model and dataset; thread-safe; created once per process."""

    def __init__(self, settings: Settings, *, loaded: LoadedModel | None = None):
        self.settings = settings
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._zs: ZeroShot | None = ZeroShot(loaded) if loaded is not None else None
        self._status = ModelStatus("ready", loaded.info.label) if loaded is not None else ModelStatus("idle", "not started")
        if loaded is not None:
            self._ready.set()
        self._arch: LoadedModel | None = None
        self._data: Cifar100 | None = None
        self._data_error: tuple[float, str] | None = None

    # -- model ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Begin loading the model on a background thread (idempotent)."""
        with self._lock:
            if self._thread is not None or self._ready.is_set():
                return
            self._status = ModelStatus("loading", f"loading {self.settings.weights} weights…", 0.0)
            self._thread = threading.Thread(target=self._load, name="clipdemo-load", daemon=True)
            self._thread.start()

    def _progress(self, done: int, total: int, what: str) -> None:
        frac = done / total if total else None
        pct = f" {100 * frac:.0f}%" if frac is not None else ""
        self._status = ModelStatus("loading", f"{what}{pct}", frac)

    def _load(self) -> None:
        s = self.settings
        torch.set_num_threads(s.threads or backends.cpu_threads())
        try:
            loaded = load_model(s.weights, device=s.device, cache_dir=s.cache_dir, allow_download=s.allow_download,
                                seed=s.seed, progress=self._progress)
            release_freed_memory()
            zs = ZeroShot(loaded)
            self._status = ModelStatus("loading", "encoding the default labels…", None)
            zs.text_features(LABEL_PRESETS["cifar100"].labels, TEMPLATE_SETS["single"].templates)
        except (WeightsError, ValueError, OSError, RuntimeError) as exc:
            log.error("model not loaded: %s", exc)
            self._status = ModelStatus("failed", str(exc))
            self._ready.set()
            return
        self._zs = zs
        self._arch = None  # the stand-in random model, if one was built meanwhile, is no longer needed
        self._status = ModelStatus("ready", loaded.info.label)
        log.info("model ready: %s", loaded.info.label)
        self._ready.set()
        self._speed_up(zs)
        try:
            self.dataset()  # open (or download) CIFAR-100 now rather than on a visitor's first click
        except DataError as exc:
            log.warning("%s", exc)

    def _export_in_child(self, path) -> None:
        """Run the ONNX export in a child process: its temporary copies of the weights stay out of the server."""
        s = self.settings
        cmd = [sys.executable, "-m", "clipdemo", "export-onnx", "--weights", s.weights, "--device", "cpu",
               "--out", str(path)]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "CLIPDEMO_SEED": str(s.seed),
                                   "CLIPDEMO_CACHE": str(s.cache_dir), "CLIPDEMO_DOWNLOAD": "0"})
        if done.returncode != 0:
            raise RuntimeError(f"export failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")

    def _speed_up(self, zs: ZeroShot) -> None:
        """Pick the image backend (parity-checked) and load stored CIFAR-100 features, after the model is ready."""
        loaded = zs.loaded
        encoder, note = backends.select(self.settings.backend, loaded.model, loaded.config.image_resolution,
                                        self.settings.cache_dir, loaded.info.identity, self._export_in_child)
        zs.use_encoder(encoder, note)
        release_freed_memory()  # the ONNX export's temporary buffers
        log.info("image encoder: %s", note)
        path = default_path(self.settings.cache_dir, loaded.info.sha256)
        if path is not None and path.is_file():
            try:
                zs.cifar = ImageFeatureStore.load(path, loaded.info.identity)
                log.info("loaded %d stored CIFAR-100 image features from %s", len(zs.cifar), path)
            except FeatureFileError as exc:
                log.warning("ignoring %s", exc)

    @property
    def settled(self) -> bool:
        """True once start-up work (model, backend choice, stored features, dataset) is over, or never began."""
        return self._thread is None or not self._thread.is_alive()

    def settle(self, timeout: float | None = None) -> None:
        """Wait for all start-up work (model, backend choice, stored features, dataset) to finish."""
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def status(self) -> ModelStatus:
        return self._status

    def service(self, timeout: float = 0.0) -> ZeroShot:
        """The loaded service, waiting up to `timeout` s; ModelUnavailable says why when there is none."""
        if self._zs is None and self._thread is None:
            self.start()
        self._ready.wait(timeout)
        if self._zs is not None:
            return self._zs
        st = self._status
        if st.state == "failed":
            raise ModelUnavailable(f"The model could not be loaded: {st.message}")
        raise ModelUnavailable(f"The model is still loading ({st.message}); try again in a few seconds.")

    def architecture_model(self) -> LoadedModel:
        """The loaded model, or, while there is none, ViT-B/32 with random weights (same architecture)."""
        if self._zs is not None:
            return self._zs.loaded
        with self._lock:
            if self._arch is None:
                self._arch = load_model("random", device="cpu", seed=self.settings.seed)
            return self._arch

    # -- dataset -------------------------------------------------------------------------------
    def dataset(self) -> Cifar100:
        """The CIFAR-100 test split, opened on first use; DataError explains when it is unavailable."""
        with self._lock:
            if self._data is not None:
                return self._data
            if self._data_error and time.monotonic() - self._data_error[0] < DATA_RETRY_S:
                raise DataError(self._data_error[1])
            try:
                self._data = open_cifar100(self.settings.data_root, download=self.settings.allow_download)
            except DataError as exc:
                self._data_error = (time.monotonic(), str(exc))
                raise
            return self._data
