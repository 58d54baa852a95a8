"""What a CLIP model is, as data: its architecture, its weights' identity, and the model built from tensors.

`ClipConfig` is derived from a checkpoint's tensor shapes, as `clip.model.build_model` derives them. Where weights
come from and how files are read is `clipdemo.weights`; the math over a model is `clipdemo.core.zeroshot` and
`clipdemo.core.inside`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .clip_package import import_clip
from .words import Refusal, Text

__all__ = ["ClipConfig", "PRESETS", "DEFAULT_MODEL", "WeightsInfo", "LoadedModel", "WeightsError", "resolve_device",
           "build_random", "build_from_state_dict", "place_on", "preprocess_for", "random_preset"]

DEFAULT_MODEL = "ViT-B/32"  # the model the app loads unless told otherwise (CLIPDEMO_WEIGHTS)


class WeightsError(Refusal):
    """Weights could not be obtained or loaded; the sentence says what was tried and how to fix it."""


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
            raise WeightsError("weights_not_vit")
        missing = [k for k in CONFIG_TENSORS if k not in sd]
        if missing:
            raise WeightsError("weights_missing_tensor", ", ".join(missing))
        wrong = [f"{k} ({sd[k].dim()}-D, needs {rank}-D)" for k, rank in CONFIG_TENSORS.items() if sd[k].dim() != rank]
        if wrong:
            raise WeightsError("weights_bad_rank", ", ".join(wrong))
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
    DEFAULT_MODEL: ClipConfig(),
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
    """`auto` -> cuda when available, else cpu; `cuda` without a GPU is a Refusal. `zerogpu` is cuda
    (ZeroGPU emulates it outside its GPU tasks, once `spaces` is imported)."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "zerogpu":
        if not torch.cuda.is_available():
            raise Refusal("device_no_zerogpu")
        return torch.device("cuda")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise Refusal("device_no_cuda")
    if name == "cpu" or name.startswith("cuda"):
        return torch.device(name)
    raise Refusal("device_unknown", repr(name))


def place_on(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move to `device` in the dtype `clip.load` uses there: fp32 on CPU, fp16 on CUDA."""
    clip = import_clip()

    model = model.to(device)
    if device.type == "cpu":
        model.float()
    else:
        clip.model.convert_weights(model)
    return model.eval()


def preprocess_for(config: ClipConfig) -> Callable:
    """PIL image -> `[3, R, R]` tensor: the exact transform `clip.load` returns for this resolution."""
    return import_clip().clip._transform(config.image_resolution)


def build_random(config: ClipConfig = PRESETS[DEFAULT_MODEL], seed: int = 0) -> torch.nn.Module:
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
        raise WeightsError("weights_bad_shapes", config, exc) from exc
    expected = model.state_dict()
    missing, unexpected = expected.keys() - sd.keys(), sd.keys() - expected.keys()
    if missing or unexpected:
        raise WeightsError("weights_incomplete", sorted(missing)[:3], sorted(unexpected)[:3])
    for k in list(sd):
        want = expected[k]
        if tuple(sd[k].shape) != tuple(want.shape):
            raise WeightsError("weights_tensor_shape", k, tuple(sd[k].shape), tuple(want.shape))
        t = sd[k].to(device=device, dtype=want.dtype)
        sd[k] = t.float() if device.type == "cpu" else t  # the source tensor is released as we go
    model.load_state_dict(sd, assign=True)
    mask = model.build_attention_mask().to(device)  # a plain attribute, so it was built on meta: rebuild it
    for block in model.transformer.resblocks:
        block.attn_mask = mask
    return model.eval(), config


@dataclass(frozen=True)
class WeightsInfo:
    """Where the loaded weights came from."""

    name: str  # "ViT-B/32", "random", or the checkpoint file name
    origin: str  # URL, path, or "seeded random init (seed=0)"
    sha256: str | None  # of the checkpoint file; None for random weights
    trained: bool  # False only for random weights; a file's training is known only when it is `verified`
    release: str | None = None  # the known release this file's SHA-256 is (weights.sources.KNOWN_RELEASES), if any

    @property
    def verified(self) -> bool:
        """True only for a file whose SHA-256 is a known release: only then do published figures apply."""
        return self.release is not None

    @property
    def identity(self) -> str:
        """A stable key for caches of anything computed from these weights."""
        return f"sha256:{self.sha256}" if self.sha256 else f"{self.name}:{self.origin}"

    def as_json(self) -> dict:
        """The weights as every JSON answer gives them (the CLI's, a Prediction's)."""
        return {"name": self.name, "sha256": self.sha256, "trained": self.trained, "verified": self.verified}

    @property
    def label(self) -> Text:
        """One line for status bars and CLI headers: only what is known about the weights (`str()` in English)."""
        if not self.trained:
            return Text("weights_random", self.name)
        if self.verified:
            return Text("weights_verified", self.release)
        return Text("weights_unverified", self.name, (self.sha256 or "?")[:12])


def random_preset(weights: str) -> str | None:
    """The preset a `random` / `random:<preset>` weights name asks for (ViT-B/32 by default); None for others."""
    if weights == "random" or weights.startswith("random:"):
        return weights.partition(":")[2] or DEFAULT_MODEL
    return None
