"""The app's process-wide resources: the model service (loaded in the background) and the dataset.

Holds: `Runtime`, which loads the model on a thread (so the page is served meanwhile) through
`clipdemo.startup`, reports load progress and failures as a `ModelStatus` with a `ModelState`, opens
CIFAR-100 on first use, encodes the default label set once the model is ready, and, on the real
weights and data, runs the cheap self-check (`clipdemo.selfcheck`) in the background. Shared by every
session; holds nothing per user (per-session label sets live in the UI's `gr.State`). No gradio here,
and no model calls: those go through the `ZeroShot` service it hands out.
"""

from __future__ import annotations

import enum
import importlib
import logging
import threading
import time
from dataclasses import dataclass

from . import selfcheck, startup
from ._clip import import_clip
from .data import Cifar100, DataError, DataUnavailable, open_cifar100
from .model import PRESETS, ClipConfig, LoadedModel, WeightsError, load_model, random_preset
from .presets import LABEL_PRESETS, TEMPLATE_SETS
from .service import DEFAULT_TEXT_RATE, ZeroShot
from .settings import Settings

__all__ = ["Runtime", "ModelState", "ModelStatus", "ModelUnavailable", "ModelFailed"]

log = logging.getLogger(__name__)
DATA_RETRY_S = 60.0  # after a failed dataset open, wait this long before trying (and maybe downloading) again
# What the start-up thread imports on its way (weights formats, the Hub client, the image backend, the dataset,
# torchinfo for the Architecture tab), imported by `start` before the thread begins: two threads importing one
# module at once can each see it half made (clip; torch's ONNX registry, which torchvision fills).
BACKGROUND_IMPORTS = ("torchvision.datasets", "huggingface_hub", "huggingface_hub.errors", "safetensors.torch",
                      "onnxruntime", "torchinfo", "tqdm.auto")


def preload_imports() -> None:
    """Import, in this thread, everything the start-up thread would import lazily (see BACKGROUND_IMPORTS)."""
    import_clip()
    for name in BACKGROUND_IMPORTS:
        importlib.import_module(name)


class ModelUnavailable(RuntimeError):
    """The model is still loading or failed to load; the message says which and what to do."""


class ModelFailed(ModelUnavailable):
    """The model failed to load (the message holds server paths and URLs: for the log)."""


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
    message: str
    fraction: float | None = None  # load progress 0..1 when known


class Runtime:
    """Owns the shared model service and dataset; thread-safe; created once per process."""

    def __init__(self, settings: Settings, *, loaded: LoadedModel | None = None):
        self.settings = settings
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None
        self._zs: ZeroShot | None = (ZeroShot(loaded, max_waiting=settings.max_waiting, max_wait_s=settings.max_wait_s)
                                     if loaded is not None else None)
        self._status = (ModelStatus(ModelState.READY, loaded.info.label) if loaded is not None
                        else ModelStatus(ModelState.IDLE, "not started"))
        if loaded is not None:
            self._ready.set()
        self._arch: ZeroShot | None = None
        self._data: Cifar100 | None = None
        self.checks: list[selfcheck.Check] | None = None  # the self-check's results, on the real files only
        self._data_error: tuple[float, str] | None = None

    # -- model ---------------------------------------------------------------------------------
    def start(self, *, wait_for_model: bool = False) -> None:
        """Begin loading the model (idempotent): on a background thread, so the page is served meanwhile, or,
        with `wait_for_model` (ZeroGPU: the model must be on CUDA before the server starts), here, with only
        the work after it (image backend, stored features, dataset) left to the thread."""
        with self._lock:
            if self._thread is not None or self._ready.is_set():
                return
            self._status = ModelStatus(ModelState.LOADING, f"loading {self.settings.weights} weights…", 0.0)
            preload_imports()  # before any second thread exists
            if wait_for_model:
                if self._load_model():
                    self._thread = threading.Thread(target=self._after_load, name="clipdemo-start", daemon=True)
                    self._thread.start()
                return
            self._thread = threading.Thread(target=self._load, name="clipdemo-load", daemon=True)
            self._thread.start()

    def _progress(self, done: int, total: int, what: str) -> None:
        frac = done / total if total else None
        pct = f" {100 * frac:.0f}%" if frac is not None else ""
        self._status = ModelStatus(ModelState.LOADING, f"{what}{pct}", frac)

    def _load(self) -> None:
        if self._load_model():
            self._after_load()

    def _load_model(self) -> bool:
        """Load the weights and make the service; always ends in READY or FAILED. True when READY."""
        try:
            zs = startup.open_service(self.settings, progress=self._progress)
            if zs.path.warm_up:  # not on ZeroGPU: there a GPU exists only inside a visitor's request
                self._status = ModelStatus(ModelState.LOADING, "encoding the default labels…", None)
                zs.text_features(LABEL_PRESETS["cifar100"].labels, TEMPLATE_SETS["single"].templates)
        except (WeightsError, ValueError, OSError, RuntimeError) as exc:
            self._fail(str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - the load must always end in a final state
            log.exception("unexpected error while loading the model")
            self._fail(f"unexpected {type(exc).__name__} while loading the weights: {exc}")
            return False
        self._zs = zs
        self._arch = None  # the stand-in random model, if one was built meanwhile, is no longer needed
        self._status = ModelStatus(ModelState.READY, zs.info.label)
        log.info("model ready: %s on %s", zs.info.label, zs.path.title)
        self._ready.set()
        return True

    def _after_load(self) -> None:
        """The start-up work after the model: the image backend, stored features, the dataset, the self-check."""
        startup.speed_up(self._zs, self.settings)
        try:
            self.dataset()  # open (or download) CIFAR-100 now rather than on a visitor's first click
        except DataError as exc:
            log.warning("%s", exc)
            return
        self._self_check()

    def _self_check(self) -> None:
        """On the real weights and data only, and where start-up may run the model: the cheap self-check
        (`selfcheck.cheap_checks`), as bulk work. A failure to run is logged and shown, never raised."""
        zs = self._zs
        if not zs.path.warm_up or selfcheck.not_real_weights(zs.info) or selfcheck.not_real_data(self.settings.data_root):
            return
        try:
            self.checks = selfcheck.cheap_checks(zs, self._data)
            log.info("self-check:\n%s", selfcheck.table(self.checks))
        except Exception as exc:  # noqa: BLE001 - a self-check must never take the Space down
            log.exception("the self-check could not run")
            self.checks = [selfcheck.Check("self-check", "-", f"could not run: {exc}", "-", False)]

    def _fail(self, message: str) -> None:
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
        """The loaded service, waiting up to `timeout` s; ModelUnavailable says why when there is none."""
        if self._zs is None and self._thread is None:
            self.start()
        self._ready.wait(timeout)
        if self._zs is not None:
            return self._zs
        st = self._status
        if st.state is ModelState.FAILED:
            raise ModelFailed(f"The model could not be loaded: {st.message}")
        raise ModelUnavailable(f"The model is still loading ({st.message}); try again in a few seconds.")

    def text_seconds(self, cost: int) -> float:
        """About how long encoding prompts of `cost` tokens takes (measured once the model has encoded some)."""
        return self._zs.text_seconds(cost) if self._zs is not None else cost / DEFAULT_TEXT_RATE

    def architecture_service(self) -> ZeroShot:
        """The loaded service, or, while there is none, ViT-B/32 with random weights (same architecture)."""
        if self._zs is not None:
            return self._zs
        with self._lock:
            if self._arch is None:
                self._arch = ZeroShot(load_model("random", device="cpu", seed=self.settings.seed))
            return self._arch

    def config(self) -> ClipConfig:
        """The architecture of the loaded model, or of the weights being loaded when it is known before
        (a named source or a random preset); ViT-B/32's otherwise."""
        if self._zs is not None:
            return self._zs.config
        return PRESETS.get(random_preset(self.settings.weights) or "", PRESETS["ViT-B/32"])

    # -- dataset -------------------------------------------------------------------------------
    def dataset(self) -> Cifar100:
        """The CIFAR-100 test split, opened on first use; DataError explains when it is unavailable."""
        with self._lock:
            if self._data is not None:
                return self._data
            if self._data_error and time.monotonic() - self._data_error[0] < DATA_RETRY_S:
                raise DataUnavailable(self._data_error[1])
            try:
                self._data = open_cifar100(self.settings.data_root, download=self.settings.allow_download)
            except DataError as exc:
                self._data_error = (time.monotonic(), str(exc))
                raise
            return self._data
