"""What clipdemo is checked with, never used by the app: stand-ins made locally, and the notebook's recipe.

Nothing here is real data; `notebook_top5` is the classic CLIP notebook's code as written there, the reference the
app's results and speed are measured against. It lives in the package, not in tests/, because the tests, the
benchmarks (bench/) and checks run outside the suite all import it from `clipdemo.fakes`.
"""

from __future__ import annotations

import hashlib
import pickle
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

from .core.clip_package import import_clip
from .core.labels import CIFAR100_CLASSES, CIFAR100_SUPERCLASSES
from .core.model import DEFAULT_MODEL, PRESETS, build_random

__all__ = ["write_cifar100", "cifar_checksums", "write_full_size_checkpoint", "fake_target", "notebook_top5"]


def fake_target(i: int) -> int:
    """The class of synthetic image `i`: index 15 is class 43, 'lion', as in the notebook."""
    return (i * 37 + 43 - 15 * 37) % 100


def write_cifar100(root: Path, n_test: int = 10_000, n_train: int = 100, seed: int = 0) -> dict[str, str]:
    """Write `root/cifar-100-python/{train,test,meta}` in torchvision's format; returns md5 per file.

    Pixels are seeded noise over a class-coloured background, so images of one class look alike.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)

    def batch(n: int, name: str) -> dict:
        fine = [fake_target(i) for i in range(n)]
        base = np.array([[(c * 53) % 256, (c * 97) % 256, (c * 151) % 256] for c in fine], dtype=np.int16)
        noise = rng.integers(-40, 40, size=(n, 3, 1024), dtype=np.int16)
        data = np.clip(base[:, :, None] + noise, 0, 255).astype(np.uint8).reshape(n, 3072)  # [N, 3*32*32] CHW
        return {"filenames": [f"img_{i}.png" for i in range(n)], "batch_label": name,
                "fine_labels": fine, "coarse_labels": [c % 20 for c in fine], "data": data}

    files = {
        "test": batch(n_test, "testing batch 1 of 1"),
        "train": batch(n_train, "training batch 1 of 1"),
        "meta": {"fine_label_names": list(CIFAR100_CLASSES),
                 "coarse_label_names": [c.replace(" ", "_") for c in CIFAR100_SUPERCLASSES]},
    }
    md5 = {}
    for name, obj in files.items():
        blob = pickle.dumps(obj, protocol=2)
        (folder / name).write_bytes(blob)
        md5[name] = hashlib.md5(blob).hexdigest()
    return md5


@contextmanager
def cifar_checksums(md5: dict[str, str]):
    """Point torchvision's CIFAR-100 integrity check at these md5 sums (the check itself still runs)."""
    from torchvision.datasets import CIFAR100

    saved = CIFAR100.train_list, CIFAR100.test_list, CIFAR100.meta
    CIFAR100.train_list = [["train", md5["train"]]]
    CIFAR100.test_list = [["test", md5["test"]]]
    CIFAR100.meta = {**CIFAR100.meta, "md5": md5["meta"]}
    try:
        yield
    finally:
        CIFAR100.train_list, CIFAR100.test_list, CIFAR100.meta = saved


def write_full_size_checkpoint(path: Path, seed: int = 0) -> Path:
    """ViT-B/32 with seeded random weights, fp16, saved as a TorchScript archive like OpenAI's file."""
    import warnings

    clip = import_clip()
    model = build_random(PRESETS[DEFAULT_MODEL], seed)
    image = torch.zeros(1, 3, 224, 224)
    text = clip.tokenize(["a photo of a cat"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with torch.no_grad():
            traced = torch.jit.trace(model, (image, text), check_trace=False)
        torch.jit.save(traced.half(), str(path))  # fp16 tensors, as the official checkpoint stores them
    return Path(path)


def notebook_top5(model, preprocess, image, classes, device="cpu") -> tuple[list[tuple[str, float]], torch.Tensor]:
    """The notebook's top-5 `[(label, probability)]` and its full `[n_classes]` probability row."""
    clip = import_clip()
    image_input = preprocess(image).unsqueeze(0).to(device)
    text_inputs = torch.cat([clip.tokenize(f"a photo of a {c}") for c in classes]).to(device)
    with torch.no_grad():
        image_features = model.encode_image(image_input)
        text_features = model.encode_text(text_inputs)
    image_features /= image_features.norm(dim=-1, keepdim=True)
    text_features /= text_features.norm(dim=-1, keepdim=True)
    similarity = (100.0 * image_features @ text_features.T).softmax(dim=-1)
    values, indices = similarity[0].topk(5)
    return [(classes[i], float(v)) for v, i in zip(values.tolist(), indices.tolist())], similarity[0]


def dying_scorer():
    """A bulk `Scorer` for Ray whose actor process dies at its first batch, once in a run: the first actor to create
    `<cache_dir>/bulk-die-once` exits at once, as a killed worker would (tests/test_bulk.py)."""
    import os

    from .tasks.bulk_ray import Scorer

    class DyingScorer(Scorer):
        def __init__(self, cfg, *args, **kwargs):
            super().__init__(cfg, *args, **kwargs)
            self.marker = Path(cfg.cache_dir) / "bulk-die-once"

        def __call__(self, batch):
            try:
                os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
            except FileExistsError:
                return super().__call__(batch)
            os._exit(1)  # no cleanup, no exception: the process is gone mid-batch

    return DyingScorer
