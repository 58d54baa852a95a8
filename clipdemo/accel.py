"""Where model calls run: the compute paths (CPU, CUDA, ZeroGPU) and the GPU tasks ZeroGPU schedules.

On ZeroGPU (Hugging Face's shared GPUs) a GPU is attached only while a function decorated with
`spaces.GPU` runs, and that function runs in a forked worker process: its arguments and result are
pickled, and nothing it changes reaches the app's process. So every model call of the app is one of
the module-level tasks here: it takes a registered engine's key and CPU tensors, and returns CPU
tensors (or plain data); the service (`clipdemo.service`) keeps every cache in the app's process and
decides when to call. Off ZeroGPU, `spaces.GPU` returns the function unchanged, so on CPU and on a
plain CUDA GPU the same tasks run in process at no cost: the CPU path is today's path.

Holds: `PATHS` (the compute paths as data), `path_for(device setting)`, `Engine` and `register`
(what the tasks run, by key), the tasks `encode_images`, `encode_prompts`, `attention`,
`tower_summary`, `relevancy`, their ZeroGPU durations, and `use_spaces()`, which wraps every task in
`spaces.GPU`. The app calls it before the model is loaded and the server starts (ZeroGPU counts the
decorated functions at launch); the CLI never does, so it does not pay for importing `spaces` (and
gradio with it). Nothing happens at import.
"""

from __future__ import annotations

import itertools
import math
import pickle
import weakref
from dataclasses import dataclass

import torch

from . import architecture, engine
from .backends import ImageEncoder
from .inside import Explanation, VisionTrace, explain, vision_attention
from .model import LoadedModel

__all__ = ["ComputePath", "PATHS", "path_for", "Engine", "register", "Task", "TASKS", "use_spaces", "Contract",
           "encode_images", "encode_prompts", "attention", "tower_summary", "relevancy", "image_seconds",
           "prompt_seconds"]


@dataclass(frozen=True)
class ComputePath:
    """One way of running the model: where, in what precision, and with which image backends."""

    name: str  # "cpu", "cuda" or "zerogpu" (the CLIPDEMO_DEVICE values besides "auto")
    title: str  # what the status line says
    onnx: bool  # may the parity-checked ONNX Runtime image backend be chosen?
    load_before_launch: bool  # ZeroGPU: build the model and move it to CUDA before the server starts
    warm_up: bool  # may start-up run the model (encode the default labels) outside a visitor's request?
    text_chunk: int  # prompts per model call when encoding labels
    bulk_images: int  # images per model call in bulk work (evaluation)


PATHS: dict[str, ComputePath] = {
    # 64 prompts ~0.3 s and 8 images ~0.4 s on 2 vCPUs: visitors' predictions go in between bulk chunks.
    "cpu": ComputePath("cpu", "CPU, fp32", onnx=True, load_before_launch=False, warm_up=True,
                       text_chunk=64, bulk_images=8),
    "cuda": ComputePath("cuda", "CUDA GPU, fp16 (as clip.load runs it)", onnx=False,
                        load_before_launch=False, warm_up=True, text_chunk=1024, bulk_images=256),
    # ZeroGPU: no ONNX Runtime and no torch.compile there (a GPU exists only inside the tasks); the model is
    # placed on CUDA at start-up, before launch (ZeroGPU emulates CUDA outside the tasks), fp16 as clip.load.
    # Each task is a GPU request with its own start-up, so calls are few and large (fp16 pixels: 256 images
    # are ~77 MB pickled to the worker).
    "zerogpu": ComputePath("zerogpu", "ZeroGPU (a shared GPU attached per request), fp16", onnx=False,
                           load_before_launch=True, warm_up=False, text_chunk=4096, bulk_images=256),
}


def path_for(device: str) -> ComputePath:
    """The compute path of a resolved device setting ("cpu", "cuda", "cuda:1" or "zerogpu")."""
    if device == "zerogpu":
        return PATHS["zerogpu"]
    return PATHS["cuda"] if device.startswith("cuda") else PATHS["cpu"]


class Engine:
    """What the tasks run for one service: the loaded model and its current image encoder."""

    def __init__(self, loaded: LoadedModel, encoder: ImageEncoder):
        self.loaded = loaded
        self.encoder = encoder


# key -> Engine. Weak: an engine lives as long as the service that owns it. A ZeroGPU worker is forked from
# this process and sees the engines registered before the fork (the model is loaded before launch there).
_ENGINES: weakref.WeakValueDictionary[str, Engine] = weakref.WeakValueDictionary()
_KEYS = itertools.count()


def register(engine_: Engine) -> str:
    """Register `engine_` for the tasks; returns its key (unique per service, also for equal weights)."""
    key = f"{engine_.loaded.info.identity}#{next(_KEYS)}"
    _ENGINES[key] = engine_
    return key


def _engine(key: str) -> Engine:
    try:
        return _ENGINES[key]
    except KeyError:
        raise RuntimeError(f"no model is registered under {key!r} in this process") from None


# -- ZeroGPU durations (seconds a task may hold the GPU; shorter asks get a GPU sooner) ------------------------
TASK_START_S = 10  # a fresh ZeroGPU worker: CUDA init and moving ~300 MB of fp16 weights onto the GPU


def image_seconds(_key: str, pixels: torch.Tensor) -> int:
    """Duration for `encode_images`: start-up plus ~200 images/s (far below a GPU's rate, so never cut off)."""
    return TASK_START_S + math.ceil(len(pixels) / 200)


def prompt_seconds(_key: str, tokens: torch.Tensor) -> int:
    """Duration for `encode_prompts`: start-up plus ~1,000 prompts/s."""
    return TASK_START_S + math.ceil(len(tokens) / 1000)


class Task:
    """A model call that ZeroGPU may schedule: `fn` as it is, or wrapped in `spaces.GPU(duration=...)`."""

    def __init__(self, fn, duration):
        self.fn, self.duration, self.run = fn, duration, fn
        self.wrapped = False  # True once wrapped (off ZeroGPU, spaces.GPU returns `fn` itself)
        self.__name__, self.__doc__ = fn.__name__, fn.__doc__

    def __call__(self, key: str, *args, **kwargs):
        if _ZEROGPU[0] and key in _ENGINES and _ENGINES[key].loaded.device.type == "cpu":
            return self.fn(key, *args, **kwargs)  # a CPU model (the architecture stand-in) needs no GPU worker
        return self.run(key, *args, **kwargs)

    def wrap(self, gpu) -> None:
        """Run `fn` wrapped in the decorator `gpu` (`spaces.GPU`, or a test's stand-in) from now on."""
        self.run, self.wrapped = gpu(duration=self.duration)(self.fn), True


TASKS: dict[str, Task] = {}
_ZEROGPU = [False]  # set by use_spaces: running on ZeroGPU, where wrapped tasks run in a forked GPU worker


def _task(duration):
    def make(fn) -> Task:
        TASKS[fn.__name__] = Task(fn, duration)
        return TASKS[fn.__name__]

    return make


class Contract:
    """A stand-in for `spaces.GPU` that runs a task in process but keeps ZeroGPU's contract: the arguments go
    in and the result comes out through pickle (ZeroGPU's worker is another process), the result holds no
    CUDA tensor (returning one hangs ZeroGPU), and each call's duration is evaluated and recorded in
    `calls` as (task name, seconds). Used by the tests and by `bench.gpu_check` on a real GPU."""

    def __init__(self):
        self.calls: list[tuple[str, int]] = []

    def __call__(self, task=None, *, duration=None, size=None):
        def wrap(fn):
            def run(*args, **kwargs):
                seconds = duration(*args, **kwargs) if callable(duration) else duration
                self.calls.append((fn.__name__, seconds))
                self.before(fn.__name__)
                args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))
                out = fn(*args, **kwargs)
                fields = vars(out).values() if hasattr(out, "__dict__") else [out]
                tensors = [t for f in fields for t in (f if isinstance(f, tuple) else (f,)) if isinstance(t, torch.Tensor)]
                if any(t.device.type != "cpu" for t in tensors):
                    raise AssertionError(f"{fn.__name__} returned a tensor on the GPU; ZeroGPU would hang")
                return pickle.loads(pickle.dumps(out))
            return run
        return wrap if task is None else wrap(task)

    def before(self, name: str) -> None:
        """Called before each task runs (a test may refuse here, as ZeroGPU does)."""


def use_spaces() -> bool:
    """Wrap every task in `spaces.GPU` (once); False when the `spaces` package is not installed."""
    try:
        import spaces
        from spaces.config import Config
    except ImportError:
        return False
    _ZEROGPU[0] = bool(Config.zero_gpu)
    for task in TASKS.values():
        if not task.wrapped:
            task.wrap(spaces.GPU)
    return True


# -- the tasks: every model call of the app -----------------------------------------------------------------
@_task(duration=image_seconds)
def encode_images(key: str, pixels: torch.Tensor) -> torch.Tensor:
    """`[B, 3, R, R]` preprocessed pixels -> `[B, D]` unnormalised float32 features on CPU (current backend)."""
    return _engine(key).encoder.encode(pixels)


@_task(duration=prompt_seconds)
def encode_prompts(key: str, tokens: torch.Tensor) -> torch.Tensor:
    """`[P, 77]` tokens -> `[P, D]` normalised float32 features on CPU."""
    return engine.prompt_features(_engine(key).loaded.model, tokens)


@_task(duration=TASK_START_S + 10)
def attention(key: str, pixels: torch.Tensor) -> VisionTrace:
    """Every attention map of the vision tower for one image `[1, 3, R, R]`, as float32 CPU tensors."""
    trace = vision_attention(_engine(key).loaded.model, pixels)
    return VisionTrace(trace.attentions.float().cpu(), tuple(b.float().cpu() for b in trace.block_outputs),
                       trace.features.float().cpu())


@_task(duration=TASK_START_S + 10)
def relevancy(key: str, pixels: torch.Tensor, text_feature: torch.Tensor, tokens: torch.Tensor) -> Explanation:
    """Why one image `[1, 3, R, R]` matched one label (`inside.explain`): one backward pass per tower, in the
    model's dtype (fp32 on CPU); float32 CPU tensors out."""
    out = explain(_engine(key).loaded.model, pixels, text_feature, tokens)
    return Explanation(out.image.float().cpu(), out.words.float().cpu(), out.logit)


@_task(duration=TASK_START_S + 20)
def tower_summary(key: str, tower: str, depth: int) -> architecture.TowerSummary:
    """torchinfo's summary of one tower (plain data; see `architecture.tower_summary`)."""
    return architecture.tower_summary(_engine(key).loaded, tower, depth)
