"""The app's process-wide resources: the model service (loaded in the background) and the dataset.

Start-up (the model load, the parity-checked image backend, whose ONNX export runs in a child process) runs on a
thread, so the page is served meanwhile. Shared by every session; holds nothing per user. No gradio here, and no
model calls: those go through the `ZeroShot` service it hands out.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core.clip_package import import_clip
from ..core.labels import CLIP, LabelSet
from ..core.model import DEFAULT_MODEL, PRESETS, ClipConfig, LoadedModel, random_preset
from ..core.multilingual import LoadedTower
from ..core.words import Progress, ProgressFn, Refusal, Text
from ..io.cifar import Cifar100, DataError, DataUnavailable, open_cifar100
from ..weights.load import load_model, load_tower
from . import accel
from .accel import ModelCalls
from .cpus import cpu_threads
from .features import FeatureFileError, ImageFeatureStore
from .scheduler import Priority
from .service import DEFAULT_TOKEN_RATES, ZeroShot
from .settings import Settings, to_env

__all__ = ["Runtime", "ModelState", "ModelStatus", "ModelFailed", "IndexStatus", "open_service",
           "speed_up", "export_in_child", "preload_imports", "BACKGROUND_IMPORTS"]

log = logging.getLogger(__name__)
DATA_RETRY_S = 60.0  # after a failed dataset open, wait this long before trying (and maybe downloading) again
EXPORT_TIMEOUT_S = 600
INDEX_SAVE_EVERY_S = 60.0  # while the search index builds, its features are saved this often (and at the end)
# What the start-up thread imports on its way (weights formats, the Hub client, the image backend, the dataset,
# torchinfo for the Architecture tab), imported by `Runtime.start` before the thread begins: two threads
# importing one module at once can each see it half made (clip; torch's ONNX registry, which torchvision fills).
BACKGROUND_IMPORTS = ("torchvision.datasets", "huggingface_hub", "huggingface_hub.errors", "safetensors.torch",
                      "onnxruntime", "torchinfo", "tqdm.auto")


def preload_imports() -> None:
    """Import, in this thread, everything the start-up thread would import lazily (see BACKGROUND_IMPORTS)."""
    import_clip()
    for name in BACKGROUND_IMPORTS:
        importlib.import_module(name)


# -- start-up steps, shared by the CLI and the app -------------------------------------------------------------
def release_freed_memory() -> None:
    """Hand memory freed by loading (temporary copies of the weights) back to the OS (glibc only)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc: nothing to do
        pass


def open_service(settings: Settings, progress: ProgressFn | None = None, tasks: ModelCalls | None = None) -> ZeroShot:
    """Set the CPU threads and load the weights `settings` name; WeightsError (or another Refusal) says why not."""
    torch.set_num_threads(settings.threads or cpu_threads())
    loaded = load_model(settings.weights, device=settings.device, cache_dir=settings.cache_dir,
                        allow_download=settings.allow_download, seed=settings.seed, progress=progress,
                        hub=settings.hub)
    release_freed_memory()
    path = accel.PATHS["zerogpu"] if settings.device == "zerogpu" else accel.path_for(loaded.device.type)
    return ZeroShot(loaded, tasks=tasks, path=path, max_waiting=settings.max_waiting, max_wait_s=settings.max_wait_s,
                    tower_loader=tower_loader(settings, loaded))


def tower_loader(settings: Settings, loaded: LoadedModel) -> Callable[[ProgressFn | None], LoadedTower]:
    """How the service loads the multilingual text tower on first use: as `settings` say (cache, downloads, the
    Hub, the seed of random weights), beside the image model `loaded`."""
    def load(progress: ProgressFn | None) -> LoadedTower:
        found = load_tower(loaded, cache_dir=settings.cache_dir, allow_download=settings.allow_download,
                           seed=settings.seed, progress=progress, hub=settings.hub)
        release_freed_memory()  # the files' tensors, once copied into the tower
        return found
    return load


def export_in_child(settings: Settings, path: Path) -> None:
    """Run `python -m clipdemo export-onnx` in a child process: its temporary copies of the weights
    never count against this process's memory. RuntimeError with the child's last line if it fails."""
    child = dataclasses.replace(settings, allow_download=False, device="cpu")  # the parent fetched the weights
    cmd = [sys.executable, "-m", "clipdemo", "export-onnx", "--onnx", str(path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=EXPORT_TIMEOUT_S,
                          env={**os.environ, **to_env(child)})
    if done.returncode != 0:
        raise RuntimeError(f"export failed: {(done.stderr or done.stdout).strip().splitlines()[-1:]}")


def speed_up(zs: ZeroShot, settings: Settings, *, stored_features: bool = True) -> str:
    """Choose the image backend (exported in a child process, parity-checked) and, with `stored_features`,
    merge the saved CIFAR-100 features into the service's store; returns the backend's note. Never raises
    for a bad cache file."""
    note = zs.choose_backend(settings.backend, settings.cache_dir, lambda p: export_in_child(settings, p))
    release_freed_memory()  # the export's temporary buffers
    log.info("image encoder: %s", note)
    path = zs.features_path(settings.cache_dir)
    if stored_features and path.is_file():
        try:
            added = zs.add_stored_features(ImageFeatureStore.load(path, zs.features_identity))
            log.info("loaded %d stored CIFAR-100 image features from %s", added, path)
        except FeatureFileError as exc:
            log.warning("ignoring %s", exc)
    return note


# -- the app's runtime ------------------------------------------------------------------------------------------
class ModelFailed(Refusal):
    """The model failed to load (the sentence holds server paths and URLs: for the log)."""


class ModelState(enum.Enum):
    """Where the shared model is in its life."""

    IDLE = "idle"  # not started
    LOADING = "loading"
    READY = "ready"
    FAILED = "failed"


@dataclass(frozen=True)
class ModelStatus:
    """A snapshot of the model's state for status lines."""

    state: ModelState
    message: Text  # what is being done, or why it failed (said in the reader's language)
    fraction: float | None = None  # load progress 0..1 when known


@dataclass(frozen=True)
class IndexStatus:
    """How much of CIFAR-100's test split search covers: `covered` of `total` images have stored features;
    `building` while the background build runs, at `rate` images/s (None before a batch is done)."""

    covered: int
    total: int
    building: bool = False
    rate: float | None = None

    @property
    def complete(self) -> bool:
        return self.total > 0 and self.covered >= self.total

    @property
    def seconds_left(self) -> float | None:
        """About how long the build needs for the rest (None when it is not building or has no rate yet)."""
        if not self.building or not self.rate:
            return None
        return (self.total - self.covered) / self.rate


class Runtime:
    """Owns the shared model service and dataset; thread-safe; created once per process."""

    def __init__(self, settings: Settings, *, loaded: LoadedModel | None = None, tasks: ModelCalls | None = None,
                 self_check: Callable[[ZeroShot, Cifar100, Settings], list] | None = None):
        """`loaded`: a model already loaded (tests); `tasks`: the model tasks (the app passes the spaces.GPU-wrapped
        ones, `accel.tasks_for_host()`); `self_check`: run after start-up, its results kept in `checks`."""
        self.settings = settings
        self.tasks = tasks or ModelCalls()
        self._self_check_fn = self_check
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._zs: ZeroShot | None = None
        self._status = ModelStatus(ModelState.IDLE, Text("not_started"))
        if loaded is not None:
            self._zs = ZeroShot(loaded, tasks=self.tasks, max_waiting=settings.max_waiting,
                                max_wait_s=settings.max_wait_s, tower_loader=tower_loader(settings, loaded))
            self._status = ModelStatus(ModelState.READY, loaded.info.label)
            self._ready.set()
        self._arch: ZeroShot | None = None
        self._data: Cifar100 | None = None
        self.checks: list | None = None  # the self-check's results (`self_check`'s), when it ran
        self._data_error: tuple[float, DataError] | None = None
        self._index_thread: threading.Thread | None = None
        self._index_rate: float | None = None
        self._index_in_request = threading.Lock()  # held while a visitor's request builds the index (ZeroGPU)

    # -- model ---------------------------------------------------------------------------------
    @classmethod
    def for_host(cls, settings: Settings, self_check: Callable | None = None) -> Runtime:
        """The app's runtime: its model tasks wrapped in `spaces.GPU` when that package is installed (a no-op off
        ZeroGPU; made before the model loads and the server starts, as ZeroGPU requires)."""
        return cls(settings, tasks=accel.tasks_for_host(), self_check=self_check)

    def start(self, *, wait_for_model: bool | None = None) -> None:
        """Begin loading the model (idempotent): on a background thread, so the page is served meanwhile, or,
        with `wait_for_model` (by default where the compute path says so: on ZeroGPU the model must be on CUDA
        before the server starts), here, with only the work after it (image backend, stored features, dataset)
        left to the thread."""
        if wait_for_model is None:
            wait_for_model = accel.path_for(self.settings.device).load_before_launch
        with self._lock:
            if self._thread is not None or self._ready.is_set():
                return
            self._status = ModelStatus(ModelState.LOADING, Text("loading_weights", self.settings.weights), 0.0)
            preload_imports()  # before any second thread exists
            if wait_for_model:
                if self._load_model():
                    self._thread = threading.Thread(target=self._after_load, name="clipdemo-start", daemon=True)
                    self._thread.start()
                return
            self._thread = threading.Thread(target=self._load, name="clipdemo-load", daemon=True)
            self._thread.start()

    def _progress(self, step: Progress) -> None:
        done, total, what = step
        frac = done / total if total else None
        self._status = ModelStatus(ModelState.LOADING, what if frac is None else Text("percent_done", what,
                                                                                        f"{100 * frac:.0f}"), frac)

    def _load(self) -> None:
        if self._load_model():
            self._after_load()

    def _load_model(self) -> bool:
        """Load the weights and make the service; always ends in READY or FAILED. True when READY."""
        try:
            zs = open_service(self.settings, progress=self._progress, tasks=self.tasks)
            if zs.path.load_before_launch:  # ZeroGPU: a GPU worker is forked with what the process holds then
                self._load_tower_now(zs)
            if zs.path.warm_up:  # not on ZeroGPU: there a GPU exists only inside a visitor's request
                self._status = ModelStatus(ModelState.LOADING, Text("encoding_default_labels"), None)
                zs.text_features(LabelSet.preset())
        except Refusal as exc:
            self._fail(exc.text)
            return False
        except (OSError, RuntimeError, ValueError) as exc:
            self._fail(Text("load_error", exc))
            return False
        except Exception as exc:  # noqa: BLE001 - the load must always end in a final state
            log.exception("unexpected error while loading the model")
            self._fail(Text("load_unexpected", type(exc).__name__, exc))
            return False
        self._zs = zs
        self._arch = None  # the stand-in random model, if one was built meanwhile, is no longer needed
        self._status = ModelStatus(ModelState.READY, zs.loaded.info.label)
        log.info("model ready: %s on %s", zs.loaded.info.label, zs.path.title)
        self._ready.set()
        return True

    def _load_tower_now(self, zs: ZeroShot) -> None:
        """Load the multilingual text tower at start-up (on ZeroGPU, where its weights must be on CUDA before the
        server starts, as the image model's). One that cannot be loaded is said at each use from then on (it is
        never loaded later there); the English tower works on."""
        try:
            zs.tower(self._progress)
        except Refusal as exc:
            log.warning("the multilingual text tower is not loaded: %s", exc)
            zs.hold_tower_failure(exc)

    def _after_load(self) -> None:
        """The start-up work after the model: the image backend, stored features, the dataset, the self-check."""
        speed_up(self._zs, self.settings)
        try:
            self.dataset()  # open (or download) CIFAR-100 now rather than on a visitor's first click
        except DataError as exc:
            log.warning("%s", exc)
            return
        if self.settings.search_index and self._zs.path.warm_up:  # on ZeroGPU the first search builds it
            self.build_index()
        if self._self_check_fn is not None:  # it decides whether to run, and never raises (see its docstring)
            self.checks = self._self_check_fn(self._zs, self._data, self.settings)

    def _fail(self, message: Text) -> None:
        log.error("model not loaded: %s", message)
        self._status = ModelStatus(ModelState.FAILED, message)
        self._ready.set()

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

    @property
    def ready(self) -> bool:
        return self._status.state is ModelState.READY

    def service(self, timeout: float = 0.0) -> ZeroShot:
        """The loaded service, waiting up to `timeout` s; a Refusal (ModelFailed when loading failed) says why when there is none."""
        if self._zs is None and self._thread is None:
            self.start()
        self._ready.wait(timeout)
        if self._zs is not None:
            return self._zs
        st = self._status
        if st.state is ModelState.FAILED:
            raise ModelFailed("model_failed", st.message)
        raise Refusal("model_loading", st.message)

    def text_seconds(self, cost: int) -> float:
        """About how long encoding prompts of `cost` tokens takes (measured once the model has encoded some)."""
        return self._zs.text_seconds(cost) if self._zs is not None else cost / DEFAULT_TOKEN_RATES[CLIP]

    def architecture_service(self) -> ZeroShot:
        """The loaded service, or, while there is none, ViT-B/32 with random weights (same architecture)."""
        if self._zs is not None:
            return self._zs
        with self._lock:
            if self._arch is None:
                self._arch = ZeroShot(load_model("random", device="cpu", seed=self.settings.seed), tasks=self.tasks)
            return self._arch

    def config(self) -> ClipConfig:
        """The architecture of the loaded model, or of the weights being loaded when it is known before
        (a named source or a random preset); ViT-B/32's otherwise."""
        if self._zs is not None:
            return self._zs.loaded.config
        return PRESETS.get(random_preset(self.settings.weights) or "", PRESETS[DEFAULT_MODEL])

    # -- the search index ------------------------------------------------------------------------
    def build_index(self) -> None:
        """Encode every CIFAR-100 test image the feature store lacks, on a thread of its own, as background work
        (the gate runs its chunks when visitors leave the model alone: `Priority.BACKGROUND`); saved with the store
        (keyed by the weights and the precision) every INDEX_SAVE_EVERY_S and at the end, so a restart does not
        redo it. Idempotent."""
        zs, data = self.service(), self.dataset()
        with self._lock:
            if self._index_thread is not None and self._index_thread.is_alive():
                return
            self._index_thread = threading.Thread(target=self._build_index, args=(zs, data), name="clipdemo-index",
                                                  daemon=True)
            self._index_thread.start()

    def _build_index(self, zs: ZeroShot, data: Cifar100) -> None:
        try:
            done = self._fill_index(zs, data, Priority.BACKGROUND)
            log.info("search index: %d CIFAR-100 test images encoded (%d new)", len(zs.cifar), done)
        except Exception:  # noqa: BLE001 - a background job: search covers what was stored; the log says why
            log.exception("the search index stopped with %d of %d images stored", len(zs.cifar_store(len(data))),
                          len(data))

    def _fill_index(self, zs: ZeroShot, data: Cifar100, priority: Priority, progress: ProgressFn | None = None) -> int:
        """The index's one loop (the background thread's and a request's): every test image the store lacks,
        through `fill_store` at `priority`, its rate kept for the status, saved every INDEX_SAVE_EVERY_S and at
        the end (random weights too: their identity keys the file). Returns how many were done."""
        path = zs.features_path(self.settings.cache_dir)
        start = saved = time.perf_counter()
        done = 0
        for done in zs.fill_store(data, list(range(len(data))), priority=priority):
            now = time.perf_counter()
            self._index_rate = done / max(now - start, 1e-9)
            if progress:
                progress(Progress(len(zs.cifar), len(data), Text("progress_index")))
            if now - saved > INDEX_SAVE_EVERY_S:
                zs.cifar.save(path)
                saved = now
        if done:
            zs.cifar.save(path)
        return done

    def build_index_in_request(self, progress: ProgressFn | None = None) -> None:
        """Where the model may run only inside a visitor's request (ZeroGPU: `ComputePath.warm_up` is off), no
        thread builds the index at start-up: the first search does, here, in its request, in bulk chunks (each one
        GPU task of 256 images; about 15 s for the 10,000 on a large GPU), then saves it. A search that comes while
        another request builds it searches what is there. Elsewhere, and with the index off, nothing to do."""
        zs, data = self.service(), self.dataset()
        if not self.settings.search_index or zs.path.warm_up or len(zs.cifar_store(len(data))) >= len(data):
            return
        if not self._index_in_request.acquire(blocking=False):
            return
        try:
            self._fill_index(zs, data, Priority.BULK, progress)
        finally:
            self._index_in_request.release()

    def index_status(self) -> IndexStatus:
        """How much search covers now (nothing before the model and the dataset are there)."""
        zs, data = self._zs, self._data
        if zs is None or data is None:
            return IndexStatus(0, 0)
        building = (self._index_thread is not None and self._index_thread.is_alive()) or self._index_in_request.locked()
        return IndexStatus(len(zs.cifar) if zs.cifar is not None else 0, len(data), building, self._index_rate)

    def wait_for_index(self, timeout: float | None = None) -> None:
        """Wait for the background index build to end (tests, benchmarks)."""
        if self._index_thread is not None:
            self._index_thread.join(timeout)

    # -- dataset -------------------------------------------------------------------------------
    def dataset(self) -> Cifar100:
        """The CIFAR-100 test split, opened on first use; DataError explains when it is unavailable."""
        with self._lock:
            if self._data is not None:
                return self._data
            if self._data_error and time.monotonic() - self._data_error[0] < DATA_RETRY_S:
                failed = self._data_error[1]
                raise DataUnavailable(failed.key, *failed.text.values)
            try:
                self._data = open_cifar100(self.settings.data_root, download=self.settings.allow_download)
            except DataError as exc:
                self._data_error = (time.monotonic(), exc)
                raise
            return self._data
