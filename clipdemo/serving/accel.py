"""Where model calls run: the compute paths (CPU, CUDA, ZeroGPU) and the model tasks ZeroGPU schedules.

On ZeroGPU a `spaces.GPU` function runs in a worker forked from the app's process: its arguments and result are
pickled, and nothing it changes reaches the app. So every model call is a `ModelCalls` task (CPU tensors in, CPU
tensors or plain data out) and every cache stays in the app's process (`clipdemo.serving.service`). Tasks are
wrapped once, before the server starts: ZeroGPU counts the decorated functions at launch. Nothing happens at import.
"""

from __future__ import annotations

import itertools
import math
import pickle
import weakref
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..core import architecture, zeroshot
from ..core.inside import Explanation, VisionTrace, explain, vision_attention
from ..core import multilingual
from ..core.model import LoadedModel
from .backends import ImageEncoder

__all__ = ["ComputePath", "PATHS", "path_for", "Engine", "ModelCalls", "tasks_for_host", "Contract", "TASK_START_S"]


@dataclass(frozen=True)
class ComputePath:
    """One way of running the model: where, in what precision, and with which image backends."""

    name: str  # "cpu", "cuda" or "zerogpu" (the CLIPDEMO_DEVICE values besides "auto")
    title: str  # what the status line says
    onnx: bool  # may the parity-checked ONNX Runtime image backend be chosen?
    load_before_launch: bool  # ZeroGPU: build the model and move it to CUDA before the server starts
    warm_up: bool  # may start-up run the model (encode the default labels) outside a visitor's request?
    text_chunk: int  # the most prompts in one model call when encoding labels
    bulk_images: int  # images per model call in bulk work (evaluation)
    # What one text model call may cost, in seconds at the tower's measured rate: prompts x the chunk's longest
    # prompt (each chunk is padded to its longest) x seconds per token (`zeroshot.cost_chunks`).
    text_chunk_s: float = 0.25


PATHS: dict[str, ComputePath] = {
    # A text chunk ~0.25 s (by its cost in tokens, whatever the prompts' length) and 8 images ~0.4 s on 2 vCPUs:
    # visitors' predictions go in between bulk chunks.
    "cpu": ComputePath("cpu", "CPU, fp32", onnx=True, load_before_launch=False, warm_up=True,
                       text_chunk=64, bulk_images=8),
    "cuda": ComputePath("cuda", "CUDA GPU, fp16 (as clip.load runs it)", onnx=False,
                        load_before_launch=False, warm_up=True, text_chunk=1024, bulk_images=256),
    # ZeroGPU: no ONNX Runtime and no torch.compile there (a GPU exists only inside the tasks); the model is
    # placed on CUDA at start-up, before launch (ZeroGPU emulates CUDA outside the tasks), fp16 as clip.load.
    # Each task is a GPU request with its own start-up, so calls are few and large (fp16 pixels: 256 images
    # are ~77 MB pickled to the worker).
    "zerogpu": ComputePath("zerogpu", "ZeroGPU (a shared GPU attached per request), fp16", onnx=False,
                           load_before_launch=True, warm_up=False, text_chunk=4096, bulk_images=256,
                           text_chunk_s=math.inf),  # a GPU request per call: by count only
}


def path_for(device: str) -> ComputePath:
    """The compute path of a resolved device setting ("cpu", "cuda", "cuda:1" or "zerogpu")."""
    if device == "zerogpu":
        return PATHS["zerogpu"]
    return PATHS["cuda"] if device.startswith("cuda") else PATHS["cpu"]


class Engine:
    """What the tasks run for one service: the loaded model, its current image encoder, and the multilingual text
    tower once it is loaded (None before)."""

    def __init__(self, loaded: LoadedModel, encoder: ImageEncoder):
        self.loaded = loaded
        self.encoder = encoder
        self.tower: multilingual.TextTower | None = None


# -- ZeroGPU durations (seconds a task may hold the GPU; shorter asks get a GPU sooner) ------------------------
TASK_START_S = 10  # a fresh ZeroGPU worker: CUDA init and moving ~300 MB of fp16 weights onto the GPU


def _image_seconds(_key: str, pixels: torch.Tensor) -> int:
    """Duration of `encode_images`: start-up plus ~200 images/s (far below a GPU's rate, so never cut off)."""
    return TASK_START_S + math.ceil(len(pixels) / 200)


def _prompt_seconds(_key: str, tokens: torch.Tensor, *_mask) -> int:
    """Duration of `encode_prompts`: start-up plus ~1,000 prompts/s."""
    return TASK_START_S + math.ceil(len(tokens) / 1000)


class ModelCalls:
    """Every model call of the app, each run by key on a registered `Engine`.

    `gpu` is `spaces.GPU` (or a stand-in with its signature): each task is wrapped in `gpu(duration=...)` once,
    here. With `zerogpu` (the host is a ZeroGPU Space), a CPU engine's calls (the Architecture tab's random
    stand-in while the real model loads) run in process: they need no GPU worker. The engines live as long as
    the services that registered them; a ZeroGPU worker, forked from this process, finds the engines
    registered before it was forked.
    """

    def __init__(self, gpu: Callable | None = None, *, zerogpu: bool = False):
        self._engines: weakref.WeakValueDictionary[str, Engine] = weakref.WeakValueDictionary()
        self._keys = itertools.count()
        plain = {"encode_images": (self._encode_images, _image_seconds),
                 "encode_prompts": (self._encode_prompts, _prompt_seconds),
                 "encode_multilingual": (self._encode_multilingual, _prompt_seconds),
                 "attention": (self._attention, TASK_START_S + 10),
                 "relevancy": (self._relevancy, TASK_START_S + 10),
                 "tower_summary": (self._tower_summary, TASK_START_S + 20)}
        self.wrapped, self.zerogpu = gpu is not None, zerogpu
        self._plain = {name: fn for name, (fn, _) in plain.items()}
        self._run = {name: gpu(duration=d)(fn) if gpu else fn for name, (fn, d) in plain.items()}

    def register(self, engine: Engine) -> str:
        """Register `engine`; returns its key (unique per service, also for equal weights)."""
        key = f"{engine.loaded.info.identity}#{next(self._keys)}"
        self._engines[key] = engine
        return key

    def engine(self, key: str) -> Engine:
        try:
            return self._engines[key]
        except KeyError:
            raise RuntimeError(f"no model is registered under {key!r} in this process") from None

    def _call(self, name: str, key: str, *args):
        on_cpu = self.zerogpu and key in self._engines and self._engines[key].loaded.device.type == "cpu"
        return (self._plain if on_cpu else self._run)[name](key, *args)

    # -- the tasks: what the service calls ----------------------------------------------------------------
    def encode_images(self, key: str, pixels: torch.Tensor) -> torch.Tensor:
        """`[B, 3, R, R]` preprocessed pixels -> `[B, D]` unnormalised float32 features on CPU (current backend)."""
        return self._call("encode_images", key, pixels)

    def encode_prompts(self, key: str, tokens: torch.Tensor) -> torch.Tensor:
        """`[P, 77]` tokens -> `[P, D]` normalised float32 features on CPU."""
        return self._call("encode_prompts", key, tokens)

    def encode_multilingual(self, key: str, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """`[P, T]` WordPiece ids and attention mask -> `[P, D]` normalised float32 features on CPU, by the
        multilingual text tower (a ZeroGPU task like the others)."""
        return self._call("encode_multilingual", key, ids, mask)

    def attention(self, key: str, pixels: torch.Tensor) -> VisionTrace:
        """Every attention map of the vision tower for one image `[1, 3, R, R]`, as float32 CPU tensors."""
        return self._call("attention", key, pixels)

    def relevancy(self, key: str, pixels: torch.Tensor, text_feature: torch.Tensor,
                  tokens: torch.Tensor | None) -> Explanation:
        """Why one image `[1, 3, R, R]` matched one label (`inside.explain`); float32 CPU tensors out."""
        return self._call("relevancy", key, pixels, text_feature, tokens)

    def tower_summary(self, key: str, tower: str, depth: int) -> architecture.TowerSummary:
        """torchinfo's summary of one tower (plain data; see `architecture.tower_summary`)."""
        return self._call("tower_summary", key, tower, depth)

    # -- what runs (in process, or in ZeroGPU's worker) ----------------------------------------------------
    def _encode_images(self, key: str, pixels: torch.Tensor) -> torch.Tensor:
        return self.engine(key).encoder.encode(pixels)

    def _encode_prompts(self, key: str, tokens: torch.Tensor) -> torch.Tensor:
        return zeroshot.prompt_features(self.engine(key).loaded.model, tokens)

    def _encode_multilingual(self, key: str, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        tower = self.engine(key).tower
        if tower is None:
            raise RuntimeError(f"the multilingual text tower of {key!r} is not loaded in this process")
        return multilingual.text_features(tower, ids, mask)

    def _attention(self, key: str, pixels: torch.Tensor) -> VisionTrace:
        trace = vision_attention(self.engine(key).loaded.model, pixels)
        return VisionTrace(trace.attentions.float().cpu(), tuple(b.float().cpu() for b in trace.block_outputs),
                           trace.features.float().cpu())

    def _relevancy(self, key: str, pixels: torch.Tensor, text_feature: torch.Tensor,
                   tokens: torch.Tensor | None) -> Explanation:
        out = explain(self.engine(key).loaded.model, pixels, text_feature, tokens)  # fp32 on CPU
        return Explanation(out.image.float().cpu(), out.words.float().cpu(), out.logit)

    def _tower_summary(self, key: str, tower: str, depth: int) -> architecture.TowerSummary:
        return architecture.tower_summary(self.engine(key).loaded, tower, depth)


def tasks_for_host() -> ModelCalls:
    """The tasks for this process: wrapped in `spaces.GPU` when the `spaces` package is installed (a no-op off
    ZeroGPU), else in process. The app makes them once, before the model loads and the server starts; the CLI
    never does (it does not pay for importing `spaces`, and gradio with it, on ZeroGPU)."""
    try:
        import spaces
        from spaces.config import Config
    except ImportError:
        return ModelCalls()
    return ModelCalls(gpu=spaces.GPU, zerogpu=bool(Config.zero_gpu))


class Contract:
    """A stand-in for `spaces.GPU` that runs a task in process but keeps ZeroGPU's contract: the arguments go
    in and the result comes out through pickle (ZeroGPU's worker is another process), the result holds no
    CUDA tensor (returning one hangs ZeroGPU), and each call's duration is evaluated and recorded in
    `calls` as (task name, seconds). Used by the tests and by `bench.gpu_check` on a real GPU."""

    def __init__(self):
        self.calls: list[tuple[str, int]] = []

    def __call__(self, task=None, *, duration=None, size=None):
        def wrap(fn):
            name = fn.__name__.lstrip("_")

            def run(*args, **kwargs):
                seconds = duration(*args, **kwargs) if callable(duration) else duration
                self.calls.append((name, seconds))
                self.before(name)
                args, kwargs = pickle.loads(pickle.dumps((args, kwargs)))
                out = fn(*args, **kwargs)
                fields = vars(out).values() if hasattr(out, "__dict__") else [out]
                tensors = [t for f in fields for t in (f if isinstance(f, tuple) else (f,)) if isinstance(t, torch.Tensor)]
                if any(t.device.type != "cpu" for t in tensors):
                    raise AssertionError(f"{name} returned a tensor on the GPU; ZeroGPU would hang")
                return pickle.loads(pickle.dumps(out))
            return run
        return wrap if task is None else wrap(task)

    def before(self, name: str) -> None:
        """Called before each task runs (a test may refuse here, as ZeroGPU does)."""
