"""Loading a CLIP model: one entry point, `load_model`, for every weight source.

Holds: `ClipConfig` (architecture hyper-parameters, derived from weights as `clip.model.build_model`
does, with named presets), `WeightsInfo` (where the weights came from), `LoadedModel` (model +
preprocess + device + dtype + info), `load_model`, `build_random` and `resolve_device`.
Holds no inference math (see `clipdemo.engine`), no download code (`clipdemo.download`) and no file
parsing (`clipdemo.checkpoints`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from ._clip import import_clip

from .progress import ProgressFn
from .checkpoints import read_checkpoint
from .download import fetch
from .weights import WEIGHT_SOURCES, WeightsError, WeightsInfo, known_release, sha256_file

__all__ = ["ClipConfig", "PRESETS", "WeightsInfo", "LoadedModel", "WeightsError", "load_model",
           "build_random", "resolve_device", "load_checkpoint", "random_preset"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipConfig:
    """CLIP ViT hyper-parameters: the arguments of `clip.model.CLIP`."""

    embed_dim: int = 512
    image_resolution: int = 224
    vision_layers: int = 12
    vision_width: int = 768
    vision_patch_size: int = 32
    context_length: int = 77
    vocab_size: int = 49408  # the BPE tokenizer's vocabulary; must stay 49408 for clip.tokenize
    transformer_width: int = 512
    transformer_heads: int = 8
    transformer_layers: int = 12

    @property
    def vision_heads(self) -> int:
        return self.vision_width // 64  # as clip.model.CLIP derives it

    @property
    def grid(self) -> int:
        return self.image_resolution // self.vision_patch_size

    @property
    def vision_tokens(self) -> int:
        return self.grid**2 + 1  # patches + class token

    @classmethod
    def from_state_dict(cls, sd: dict[str, torch.Tensor]) -> ClipConfig:
        """Derive the config from tensor shapes, as `clip.model.build_model` does (ViT only).

        Any checkpoint that lacks a tensor this reads, or has one of the wrong rank, is a WeightsError
        naming it: a malformed file must never surface as a KeyError or IndexError.
        """
        if "visual.proj" not in sd:
            raise WeightsError("Only CLIP ViT checkpoints are supported (no 'visual.proj' tensor found).")
        missing = [k for k in CONFIG_TENSORS if k not in sd]
        if missing:
            raise WeightsError(f"Not a complete CLIP ViT checkpoint: it has no tensor {', '.join(missing)}.")
        wrong = [f"{k} ({sd[k].dim()}-D, needs {rank}-D)" for k, rank in CONFIG_TENSORS.items() if sd[k].dim() != rank]
        if wrong:
            raise WeightsError(f"Not a CLIP ViT checkpoint: tensor {', '.join(wrong)}.")
        patch = sd["visual.conv1.weight"].shape[-1]
        grid = round((sd["visual.positional_embedding"].shape[0] - 1) ** 0.5)
        width = sd["ln_final.weight"].shape[0]
        return cls(
            embed_dim=sd["text_projection"].shape[1],
            image_resolution=patch * grid,
            vision_layers=len([k for k in sd if k.startswith("visual.") and k.endswith(".attn.in_proj_weight")]),
            vision_width=sd["visual.conv1.weight"].shape[0],
            vision_patch_size=patch,
            context_length=sd["positional_embedding"].shape[0],
            vocab_size=sd["token_embedding.weight"].shape[0],
            transformer_width=width,
            transformer_heads=width // 64,
            transformer_layers=len({k.split(".")[2] for k in sd if k.startswith("transformer.resblocks")}),
        )


# The tensors `ClipConfig.from_state_dict` reads, with the rank each must have.
CONFIG_TENSORS: dict[str, int] = {
    "visual.proj": 2, "visual.conv1.weight": 4, "visual.positional_embedding": 2, "ln_final.weight": 1,
    "text_projection": 2, "positional_embedding": 2, "token_embedding.weight": 2,
}


PRESETS: dict[str, ClipConfig] = {
    "ViT-B/32": ClipConfig(),
    # A made-up miniature for fast tests: same tokenizer and context, 2 layers, 64 wide.
    "tiny": ClipConfig(embed_dim=32, image_resolution=32, vision_layers=2, vision_width=64, vision_patch_size=16,
                       transformer_width=64, transformer_heads=1, transformer_layers=2),
}


@dataclass(frozen=True)
class LoadedModel:
    """A CLIP model ready for inference, with the preprocess that belongs to it."""

    model: torch.nn.Module  # clip.model.CLIP, in eval mode
    preprocess: Callable  # PIL.Image -> [3, R, R] float tensor
    device: torch.device
    config: ClipConfig
    info: WeightsInfo

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype


def resolve_device(name: str = "auto") -> torch.device:
    """`auto` -> cuda when available, else cpu; `cuda` without a GPU raises ValueError. `zerogpu` is cuda
    (ZeroGPU emulates it outside its GPU tasks, once `spaces` is imported)."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "zerogpu":
        if not torch.cuda.is_available():
            raise ValueError("ZeroGPU was asked for (CLIPDEMO_DEVICE=zerogpu, or SPACES_ZERO_GPU=true), but torch "
                             "sees no CUDA: this is not a ZeroGPU Space, or `spaces` was not imported first.")
        return torch.device("cuda")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("Device 'cuda' was asked for, but no CUDA GPU is available; use --device cpu.")
    if name == "cpu" or name.startswith("cuda"):
        return torch.device(name)
    raise ValueError(f"Unknown device {name!r}; choose auto, cpu, cuda or zerogpu.")


def _finish(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move to `device` in the dtype `clip.load` uses there: fp32 on CPU, fp16 on CUDA."""
    clip = import_clip()

    model = model.to(device)
    if device.type == "cpu":
        model.float()
    else:
        clip.model.convert_weights(model)
    return model.eval()


def _preprocess(config: ClipConfig) -> Callable:
    return import_clip().clip._transform(config.image_resolution)  # the exact transform clip.load returns


def build_random(config: ClipConfig = PRESETS["ViT-B/32"], seed: int = 0) -> torch.nn.Module:
    """A CLIP model of `config` with CLIP's own init, seeded; leaves the global RNG untouched."""
    clip = import_clip()

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        fields = dataclasses.asdict(config)
        return clip.model.CLIP(**fields).eval()


def build_from_state_dict(sd: dict[str, torch.Tensor], device: torch.device) -> tuple[torch.nn.Module, ClipConfig]:
    """The model `clip.load` / `clip.model.build_model` make from `sd`, without their extra copies.

    `build_model` first fills a fresh model with random values and then copies the weights in, and
    `clip.load` casts once more; here the module is built on the meta device (no memory, no init) and
    each tensor is cast straight to what `clip.load` ends with on `device`: the dtype `convert_weights`
    gives it (fp16 for conv/linear/attention/projection weights), then fp32 on CPU, so an fp32 file is
    rounded through fp16 exactly as `clip.load` rounds it. tests/test_model.py checks equality with clip.load.
    """
    clip = import_clip()
    config = ClipConfig.from_state_dict(sd)
    sd = {k: v for k, v in sd.items() if k not in ("input_resolution", "context_length", "vocab_size")}
    try:
        with torch.device("meta"):
            model = clip.model.CLIP(**dataclasses.asdict(config))
            clip.model.convert_weights(model)  # on meta tensors: only to learn each tensor's dtype under clip.load
    except Exception as exc:  # a config no CLIP can have (e.g. zero layers or heads): the file is malformed
        raise WeightsError(f"The checkpoint's shapes do not make a CLIP model ({config}): {exc}") from exc
    expected = model.state_dict()
    missing, unexpected = expected.keys() - sd.keys(), sd.keys() - expected.keys()
    if missing or unexpected:
        raise WeightsError(f"Not a complete CLIP ViT state dict: missing {sorted(missing)[:3]}, "
                           f"unexpected {sorted(unexpected)[:3]}.")
    for k in list(sd):
        want = expected[k]
        if tuple(sd[k].shape) != tuple(want.shape):
            raise WeightsError(f"Tensor {k} has shape {tuple(sd[k].shape)}, expected {tuple(want.shape)}.")
        t = sd[k].to(device=device, dtype=want.dtype)
        sd[k] = t.float() if device.type == "cpu" else t  # the source tensor is released as we go
    model.load_state_dict(sd, assign=True)
    mask = model.build_attention_mask().to(device)  # a plain attribute, so it was built on meta: rebuild it
    for block in model.transformer.resblocks:
        block.attn_mask = mask
    return model.eval(), config


def load_checkpoint(path: Path, device: torch.device) -> tuple[torch.nn.Module, ClipConfig]:
    """Build a CLIP model from a TorchScript archive (the official format), a safetensors file (open_clip's, on
    the Hub) or a torch.save state dict, told apart by their bytes."""
    return build_from_state_dict(read_checkpoint(path), device)


def random_preset(weights: str) -> str | None:
    """The preset a `random` / `random:<preset>` weights name asks for (ViT-B/32 by default); None for others."""
    if weights == "random" or weights.startswith("random:"):
        return weights.partition(":")[2] or "ViT-B/32"
    return None


def load_model(weights: str = "ViT-B/32", *, device: str | torch.device = "auto", cache_dir: Path | None = None,
               allow_download: bool = True, seed: int = 0, progress: ProgressFn | None = None,
               sources: dict | None = None, hf_cache: Path | None = None) -> LoadedModel:
    """Load CLIP for inference.

    Args:
        weights: a name in `WEIGHT_SOURCES` (downloaded and verified), "random" (ViT-B/32 with seeded
            random weights; "random:tiny" for the tiny preset), or a path to a checkpoint file.
        device: "auto", "cpu", "cuda" or a torch.device. fp32 on CPU, fp16 on CUDA.
        cache_dir: where downloads are kept (default ~/.cache/clipdemo).
        sources: the weight-source registry to use (default `WEIGHT_SOURCES`; tests pass their own).
        hf_cache: the Hugging Face cache to look in first (default: HF_HUB_CACHE / HF_HOME, as huggingface_hub).
    Returns:
        LoadedModel. Raises WeightsError (what was tried, how to fix it) or ValueError (bad device).
    """
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    sources = WEIGHT_SOURCES if sources is None else sources
    cache_dir = cache_dir or Path("~/.cache/clipdemo").expanduser()
    if (preset := random_preset(weights)) is not None:
        if preset not in PRESETS:
            raise WeightsError(f"Unknown random preset {preset!r}; choose one of: {', '.join(PRESETS)}.")
        config = PRESETS[preset]
        model = _finish(build_random(config, seed), dev)
        info = WeightsInfo("random" if preset == "ViT-B/32" else f"random:{preset}",
                           f"seeded random init of {preset} (seed={seed})", None, trained=False)
        return LoadedModel(model, _preprocess(config), dev, config, info)
    if weights in sources:
        path, mirror = fetch(sources[weights], cache_dir, hf_cache=hf_cache, allow_download=allow_download,
                             progress=progress)
        name, origin, digest = weights, mirror.where, mirror.sha256  # fetch hashed the bytes against this pin
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"Unknown weights {weights!r}: not a file and not one of "
                               f"{', '.join([*sources, 'random'])}.")
        name, origin, digest = path.name, str(path), sha256_file(path)
    if progress:
        progress(0, 0, f"loading {path.name}")
    model, config = load_checkpoint(path, dev)
    log.info("loaded %s from %s on %s", name, origin, dev)
    return LoadedModel(model, _preprocess(config), dev, config,
                       WeightsInfo(name, origin, digest, trained=True, release=known_release(digest)))
