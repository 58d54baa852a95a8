"""From a weights name to a loaded model: `load_model`, the one entry point for every weight source.

A registered source is fetched and verified, a checkpoint file is read in any of the three formats, or seeded random
weights are built; the multilingual text tower is random beside random image weights.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import torch

from ..core.model import (DEFAULT_MODEL, PRESETS, ClipConfig, LoadedModel, WeightsError, WeightsInfo,
                          build_from_state_dict, build_random, place_on, preprocess_for, random_preset, resolve_device)
from ..core.labels import MULTILINGUAL
from ..core.multilingual import (TOWER_PRESETS, LoadedTower, TextTower, WordPieces, build_from_state_dicts,
                                 standin_vocabulary)
from ..core.multilingual import build_random as build_tower
from ..core.words import Progress, ProgressFn, Text
from .download import Hub, fetch
from .formats import read_checkpoint
from .sources import (TOWER_ROLES, TOWER_SOURCES, WEIGHT_SOURCES, TowerSource, WeightSource, known_release,
                      sha256_file)

__all__ = ["load_model", "load_checkpoint", "load_tower", "default_cache"]

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
        progress(Progress(0, 0, Text("loading_file", path.name)))
    model, config = load_checkpoint(path, dev)
    log.info("loaded %s from %s on %s", name, origin, dev)
    return LoadedModel(model, preprocess_for(config), dev, config,
                       WeightsInfo(name, origin, digest, trained=True, release=known_release(digest)))


def load_tower(image: LoadedModel, *, cache_dir: Path | None = None, allow_download: bool = True, seed: int = 0,
               progress: ProgressFn | None = None, sources: dict[str, TowerSource] = TOWER_SOURCES,
               hub: Hub | None = None, name: str = MULTILINGUAL) -> LoadedTower:
    """The multilingual text tower that goes with the image model `image`, on its device and in its dtype.

    Beside image weights other than the release the registered tower was aligned with (`TowerSource.aligned_with`:
    OpenAI's ViT-B/32, verified by SHA-256), such as random weights or the tests' tiny CLIP, a random tower of the
    image model's width (seeded; "tiny" beside the tiny CLIP) over a stand-in vocabulary of the real one's size:
    aligned with nothing, and said so. Beside that release, the registered tower's files (`sources[name]`: the Hub
    files at a pinned revision, each verified by its SHA-256, from the Hugging Face cache `preload_from_hub` fills,
    else downloaded when allowed). A tower whose width is not the image model's is a WeightsError: its features
    could not be compared with the images'.
    """
    source = sources[name]
    if image.info.release != source.aligned_with:
        config = next((c for c in TOWER_PRESETS.values() if c.embed_dim == image.config.embed_dim), None)
        if config is None:
            raise WeightsError("ml_width", image.config.embed_dim, ", ".join(
                str(c.embed_dim) for c in TOWER_PRESETS.values()))
        if progress:
            progress(Progress(0, 0, Text("ml_building")))
        model = build_tower(config, seed).to(image.device)
        info = WeightsInfo(f"random {name}", f"seeded random init (seed={seed}), stand-in vocabulary", None,
                           trained=False)
        return LoadedTower(_in_dtype(model, image), WordPieces(standin_vocabulary(config.vocab_size)), model.config,
                           info)
    paths, used = {}, {}
    for role in TOWER_ROLES:
        try:
            paths[role], used[role] = fetch(source.files[role], cache_dir or default_cache(), hub=hub or Hub(),
                                            allow_download=allow_download, progress=progress)
        except WeightsError as exc:  # what was tried (fetch's own fix is for the image weights), and the tower's fixes
            tried = exc.text.values[3] if exc.key == "weights_tried" else exc.text
            raise WeightsError("ml_unavailable", source.files[role].name, tried) from exc
    if progress:
        progress(Progress(0, 0, Text("loading_file", paths["bert"].name)))
    model = build_from_state_dicts(read_checkpoint(paths["bert"]), read_checkpoint(paths["dense"]))
    if model.config.embed_dim != image.config.embed_dim:
        raise WeightsError("ml_width", image.config.embed_dim, model.config.embed_dim)
    digest = hashlib.sha256(" ".join(m.sha256 for m in used.values()).encode()).hexdigest()  # the files together
    info = WeightsInfo(name, used["bert"].where, digest, trained=True)
    log.info("loaded the %s text tower from %s on %s", name, info.origin, image.device)
    tokenizer = WordPieces(str(paths["vocab"]), model.config.max_tokens)
    return LoadedTower(_in_dtype(model.to(image.device), image), tokenizer, model.config, info)


def _in_dtype(tower: TextTower, image: LoadedModel) -> TextTower:
    """The tower in the image model's dtype: fp32 on CPU, fp16 on CUDA (as `clip.load` runs CLIP there)."""
    return tower.to(image.dtype).eval()
