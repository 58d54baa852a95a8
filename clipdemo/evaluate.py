"""Batch work over the CIFAR-100 test split: encoding images into the feature store, and evaluation.

Holds: `encode_split` (DataLoader-batched image encoding into the `ImageFeatureStore`, preprocessing in
worker processes so it overlaps with the model), `select_indices` (first N, stratified, all), `score`
(metrics from features alone, so they can be checked by hand), `evaluate`, `EvalResult` and the
published figures quoted beside results. Probabilities come from `clipdemo.engine`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset

from . import engine
from .data import Cifar100
from .presets import CLASS_NAME_SPELLINGS, LABEL_PRESETS, TEMPLATE_SETS
from .progress import Cancelled, ProgressFn
from .scheduler import Priority
from .service import ZeroShot

__all__ = ["encode_split", "Cancelled", "select_indices", "score", "evaluate", "EvalResult", "PUBLISHED", "SUBSETS",
           "TEMPLATE_CHOICES", "template_settings", "class_names"]


class _Preprocessed(Dataset):
    """CIFAR-100 images by index, preprocessed for the model: item -> (`[3, R, R]` pixels, index)."""

    def __init__(self, data: Cifar100, indices: list[int], preprocess: Callable):
        self.data, self.indices, self.preprocess = data, indices, preprocess

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        index = self.indices[i]
        return self.preprocess(self.data.image(index)), index


def encode_split(zs: ZeroShot, data: Cifar100, indices: list[int], *, batch_size: int = 64, workers: int = 0,
                 progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None,
                 priority: Priority = Priority.INTERACTIVE) -> int:
    """Encode the images of `indices` not yet in the store; returns how many were encoded.

    Batches of `batch_size` go through the current image backend, each one model call at `priority`
    (the app's evaluation passes BULK with small batches); `workers` processes (0: none) decode and
    preprocess the next batches meanwhile. Raises Cancelled when `should_stop()` says so.
    """
    store = zs.cifar_store(len(data))
    todo = store.missing(list(indices))
    if not todo:
        return 0
    loader = DataLoader(_Preprocessed(data, todo, zs.loaded.preprocess), batch_size=batch_size, shuffle=False,
                        num_workers=workers, persistent_workers=False)
    done, start = 0, time.perf_counter()
    for pixels, idx in loader:  # pixels: [b, 3, R, R]
        if should_stop and should_stop():
            raise Cancelled(f"stopped after {done} of {len(todo)} images")
        store.put(idx, zs.encode_pixels(pixels, priority))  # [b, D]
        done += len(idx)
        if progress:
            rate = done / max(time.perf_counter() - start, 1e-9)
            progress(done, len(todo), f"encoding images ({rate:.0f} images/s, {(len(todo) - done) / rate:.0f} s left)")
    return done


# -- evaluation ------------------------------------------------------------------------------------

# Published zero-shot CIFAR-100 figures for ViT-B/32 (quoted, not measured here), by template setting.
PUBLISHED: dict[str, tuple[str, ...]] = {
    "cifar18": ("65.1% top-1: CLIP paper (Radford et al., 2021), Table 11, 18-template ensemble",
                "64.5% top-1 / 88.8% top-5: LAION clip_benchmark"),
    "single": ('about 62% top-1: reproductions with "a photo of a {}" (openai/CLIP issue #153)',),
}
SUBSETS = ("first", "per-class", "all")
# What "templates" may be chosen for an evaluation: one template set, or both side by side.
TEMPLATE_CHOICES: dict[str, tuple[str, ...]] = {"single": ("single",), "cifar18": ("cifar18",),
                                                "both": ("single", "cifar18")}


def template_settings(choice: str) -> tuple[str, ...]:
    """The template-set keys behind an evaluation's `choice`; ValueError lists the valid choices."""
    if choice not in TEMPLATE_CHOICES:
        raise ValueError(f"Unknown templates {choice!r}; choose one of: {', '.join(TEMPLATE_CHOICES)}.")
    return TEMPLATE_CHOICES[choice]


def class_names(spelling: str) -> tuple[str, ...]:
    """CIFAR-100's class names in the preset `spelling`; ValueError lists the valid spellings."""
    if spelling not in CLASS_NAME_SPELLINGS:
        raise ValueError(f"Unknown class names {spelling!r}; choose one of: {', '.join(CLASS_NAME_SPELLINGS)}.")
    return LABEL_PRESETS[spelling].labels


def select_indices(targets: list[int], mode: str, n: int = 1000, seed: int = 0) -> list[int]:
    """Which test images to evaluate: the `first` n, a seeded stratified sample of n `per-class`, or `all`."""
    if mode == "all":
        return list(range(len(targets)))
    if mode == "first":
        if not 1 <= n <= len(targets):
            raise ValueError(f"Choose between 1 and {len(targets)} images, not {n}.")
        return list(range(n))
    if mode == "per-class":
        by_class: dict[int, list[int]] = {}
        for i, t in enumerate(targets):
            by_class.setdefault(t, []).append(i)
        smallest = min(len(v) for v in by_class.values())
        if not 1 <= n <= smallest:
            raise ValueError(f"Choose between 1 and {smallest} images per class, not {n}.")
        import random

        rng = random.Random(seed)
        return sorted(i for c in sorted(by_class) for i in rng.sample(by_class[c], n))
    raise ValueError(f"Unknown subset {mode!r}; choose one of: {', '.join(SUBSETS)}.")


@dataclass(frozen=True)
class EvalResult:
    """Zero-shot accuracy of one template setting over a set of test images."""

    setting: str
    classes: tuple[str, ...]
    indices: torch.Tensor  # [N] dataset indices
    targets: torch.Tensor  # [N] true class
    predicted: torch.Tensor  # [N] top-1 class
    confidence: torch.Tensor  # [N] top-1 probability
    top5_hit: torch.Tensor  # [N] bool
    images_per_s: float

    @property
    def n(self) -> int:
        return int(self.targets.numel())

    @property
    def top1(self) -> float:
        return float((self.predicted == self.targets).float().mean())

    @property
    def top5(self) -> float:
        return float(self.top5_hit.float().mean())

    @property
    def per_class(self) -> list[float | None]:
        """Top-1 accuracy of each class among the evaluated images (None where a class has none)."""
        out: list[float | None] = []
        for c in range(len(self.classes)):
            mask = self.targets == c
            out.append(float((self.predicted[mask] == c).float().mean()) if mask.any() else None)
        return out

    @property
    def mean_per_class(self) -> float:
        vals = [v for v in self.per_class if v is not None]
        return sum(vals) / len(vals)

    @property
    def confusion(self) -> torch.Tensor:
        """`[C, C]` counts: row = true class, column = predicted class."""
        c = len(self.classes)
        return torch.bincount(self.targets * c + self.predicted, minlength=c * c).reshape(c, c)

    def confused_pairs(self, k: int = 10) -> list[tuple[int, int, int]]:
        """The k most frequent (true, predicted, count) mistakes."""
        conf = self.confusion.clone()
        conf.fill_diagonal_(0)
        counts, flat = conf.flatten().topk(min(k, conf.numel()))
        c = len(self.classes)
        return [(int(f) // c, int(f) % c, int(n)) for n, f in zip(counts, flat) if n > 0]

    def worst_mistakes(self, k: int = 12) -> list[tuple[int, int, int, float]]:
        """The k most confident wrong predictions: (dataset index, true, predicted, probability)."""
        wrong = (self.predicted != self.targets).nonzero().flatten()
        order = wrong[self.confidence[wrong].argsort(descending=True)][:k]
        return [(int(self.indices[i]), int(self.targets[i]), int(self.predicted[i]), float(self.confidence[i]))
                for i in order]

    def summary(self) -> dict:
        return {"setting": self.setting, "images": self.n, "top1": self.top1, "top5": self.top5,
                "mean_per_class": self.mean_per_class, "images_per_s": self.images_per_s}

    def as_dict(self) -> dict:
        return {**self.summary(), "published": list(PUBLISHED.get(self.setting, ())),
                "per_class": dict(zip(self.classes, self.per_class)),
                "confused_pairs": [{"true": self.classes[t], "predicted": self.classes[p], "count": n}
                                   for t, p, n in self.confused_pairs(20)],
                "predictions": [{"index": int(i), "true": self.classes[t], "predicted": self.classes[p],
                                 "probability": float(q)}
                                for i, t, p, q in zip(self.indices, self.targets, self.predicted, self.confidence)]}


def score(image_feats: torch.Tensor, targets: torch.Tensor, text_feats: torch.Tensor, *, setting: str,
          classes: tuple[str, ...], indices: torch.Tensor | None = None, images_per_s: float = 0.0) -> EvalResult:
    """Score `[N, D]` image features against `[C, D]` class text features (both normalised)."""
    probs = engine.probabilities(image_feats, text_feats)  # [N, C]
    conf, pred = probs.max(dim=-1)  # [N], [N]
    top5 = probs.topk(min(5, probs.shape[1]), dim=-1).indices  # [N, 5]
    hit5 = (top5 == targets[:, None]).any(dim=-1)  # [N]
    idx = torch.arange(len(targets)) if indices is None else indices
    return EvalResult(setting, tuple(classes), idx, targets, pred, conf, hit5, images_per_s)


def evaluate(zs: ZeroShot, data: Cifar100, indices: list[int], settings: tuple[str, ...], *,
             classes: tuple[str, ...] | None = None, batch_size: int = 64, workers: int = 0,
             progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None,
             priority: Priority = Priority.INTERACTIVE) -> list[EvalResult]:
    """Zero-shot accuracy on `indices` for each template setting in `settings` ("single", "cifar18").

    Image features come from the store (encoded once, shared by every setting and later runs); only
    the text side is computed per setting. `images_per_s` counts the encoding when there was any.
    """
    classes = tuple(classes or data.classes)
    if len(classes) != len(data.classes):
        raise ValueError(f"Evaluation needs one label per CIFAR-100 class ({len(data.classes)}), got {len(classes)}.")
    start = time.perf_counter()
    encoded = encode_split(zs, data, indices, batch_size=batch_size, workers=workers, progress=progress,
                           should_stop=should_stop, priority=priority)
    feats = zs.cifar.gather(indices)  # [N, D]
    targets = torch.tensor([data.target(i) for i in indices])  # [N]
    rate = (encoded or len(indices)) / max(time.perf_counter() - start, 1e-9)
    results = []
    for key in settings:
        text = zs.text_features(classes, TEMPLATE_SETS[key].templates)  # [C, D]
        results.append(score(feats, targets, text, setting=key, classes=classes,
                             indices=torch.tensor(indices), images_per_s=rate))
    return results
