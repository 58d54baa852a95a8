"""Batch work over the CIFAR-100 test split: encoding images into the feature store, and evaluation.

Holds: `encode_split` (DataLoader-batched image encoding into the `ImageFeatureStore`, preprocessing in
worker processes so it overlaps with the model). The math of scoring lives in `clipdemo.engine`.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch.utils.data import DataLoader, Dataset

from .data import Cifar100
from .service import ZeroShot

__all__ = ["encode_split", "Cancelled"]

ProgressFn = Callable[[int, int, str], None]


class Cancelled(RuntimeError):
    """The caller asked to stop a long run."""


class _Preprocessed(Dataset):
    """CIFAR-100 images by index, preprocessed for the model: item -> (`[3, R, R]` pixels, index)."""

    def __init__(self, data: Cifar100, indices: list[int], preprocess: Callable):
        self.data, self.indices, self.preprocess = data, indices, preprocess

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int):
        index = self.indices[i]
        return self.preprocess(self.data.image(index)), index


def encode_split(zs: ZeroShot, data: Cifar100, indices: list[int], *, batch_size: int = 64, workers: int = 1,
                 progress: ProgressFn | None = None, should_stop: Callable[[], bool] | None = None) -> int:
    """Encode the images of `indices` not yet in the store; returns how many were encoded.

    Batches of `batch_size` go through the current image backend; `workers` processes (0: none)
    decode and preprocess the next batches meanwhile. Raises Cancelled when `should_stop()` says so.
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
        store.put(idx, zs.encode_pixels(pixels))  # [b, D]
        done += len(idx)
        if progress:
            rate = done / max(time.perf_counter() - start, 1e-9)
            progress(done, len(todo), f"encoding images ({rate:.0f} images/s, {(len(todo) - done) / rate:.0f} s left)")
    return done
