"""From a weights name to a loaded model: `load_model`, the one entry point for every weight source.

Holds `load_model` (a registered source fetched and verified, a checkpoint file in any of the three
formats, or seeded random weights) and `load_checkpoint`. What a model is lives in `clipdemo.core.model`;
where files come from in `clipdemo.weights.sources` and `.download`; how they are read in `.formats`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from ..core.model import (DEFAULT_MODEL, PRESETS, ClipConfig, LoadedModel, WeightsError, WeightsInfo,
                          build_from_state_dict, build_random, place_on, preprocess_for, random_preset, resolve_device)
from ..core.words import ProgressFn, Text
from .download import Hub, fetch
from .formats import read_checkpoint
from .sources import WEIGHT_SOURCES, WeightSource, known_release, sha256_file

__all__ = ["load_model", "load_checkpoint", "default_cache"]

log = logging.getLogger(__name__)
def default_cache() -> Path:
    """Where downloaded weights and stored features go unless CLIPDEMO_CACHE says otherwise (read when asked)."""
    return Path("~/.cache/clipdemo").expanduser()


def load_checkpoint(path: Path, device: torch.device) -> tuple[torch.nn.Module, ClipConfig]:
    """Build a CLIP model from a TorchScript archive (the official format), a safetensors file (open_clip's, on
    the Hub) or a torch.save state dict, told apart by their bytes."""
    return build_from_state_dict(read_checkpoint(path), device)


def load_model(weights: str = DEFAULT_MODEL, *, device: str | torch.device = "auto", cache_dir: Path | None = None,
               allow_download: bool = True, seed: int = 0, progress: ProgressFn | None = None,
               sources: dict[str, WeightSource] = WEIGHT_SOURCES, hub: Hub | None = None) -> LoadedModel:
    """Load CLIP for inference.

    Args:
        weights: a name in `sources` (fetched and verified), "random" (ViT-B/32 with seeded random weights;
            "random:tiny" for the tiny preset), or a path to a checkpoint file.
        device: "auto", "cpu", "cuda", "zerogpu" or a torch.device. fp32 on CPU, fp16 on CUDA.
        cache_dir: where downloads are kept (default: `default_cache()`).
        sources: the weight-source registry to use (tests pass their own).
        hub: the Hugging Face Hub and its cache, looked in first (the Space's preloaded files are there; default:
            `Hub()`).
    Returns:
        LoadedModel. Raises WeightsError (what was tried, how to fix it) or a Refusal (a device there is not).
    """
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    if (preset := random_preset(weights)) is not None:
        if preset not in PRESETS:
            raise WeightsError("weights_random_preset", repr(preset), ", ".join(PRESETS))
        config = PRESETS[preset]
        model = place_on(build_random(config, seed), dev)
        info = WeightsInfo("random" if preset == DEFAULT_MODEL else f"random:{preset}",
                           f"seeded random init of {preset} (seed={seed})", None, trained=False)
        return LoadedModel(model, preprocess_for(config), dev, config, info)
    if weights in sources:
        path, mirror = fetch(sources[weights], cache_dir or default_cache(), hub=hub or Hub(), allow_download=allow_download, progress=progress)
        name, origin, digest = weights, mirror.where, mirror.sha256  # fetch hashed the bytes against this pin
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError("weights_unknown", repr(weights), ", ".join([*sources, "random"]))
        name, origin, digest = path.name, str(path), sha256_file(path)
    if progress:
        progress(0, 0, Text("loading_file", path.name))
    model, config = load_checkpoint(path, dev)
    log.info("loaded %s from %s on %s", name, origin, dev)
    return LoadedModel(model, preprocess_for(config), dev, config,
                       WeightsInfo(name, origin, digest, trained=True, release=known_release(digest)))
