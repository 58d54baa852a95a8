"""A store of CIFAR-100 image features for one set of weights: fill lazily, save, load.

Keyed by the weights' identity and precision, so a store never answers for other weights; saved atomically and
loaded with `torch.load(weights_only=True)`. Label changes never touch it (image features do not depend on labels or
templates). It is also the search index.
"""

from __future__ import annotations

import os
import tempfile
import threading
from pathlib import Path

import torch

from ..core import search
from ..core.words import Refusal

__all__ = ["ImageFeatureStore", "FeatureFileError", "default_path"]

FORMAT = "clipdemo-image-features-v1"


class FeatureFileError(Refusal):
    """A features file that does not belong to these weights, or is not a features file."""


def default_path(cache_dir: Path, key: str, precision: str) -> Path:
    """Where the CIFAR-100 test features for weights with this key (their SHA-256, or a digest of a seeded random
    init's identity), computed in `precision` (the service's `features_precision`), live."""
    return Path(cache_dir) / f"cifar100-test-features-{key[:16]}-{precision}.pt"


class ImageFeatureStore:
    """Image features by dataset index for one weights identity; thread-safe; bounded by `size`."""

    def __init__(self, identity: str, size: int, dim: int):
        self.identity = identity
        self.features = torch.zeros(size, dim)  # [N, D] normalised rows where filled
        self.filled = torch.zeros(size, dtype=torch.bool)  # [N]
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return int(self.filled.sum())

    def get(self, index: int) -> torch.Tensor | None:
        """The stored `[D]` feature of image `index`, or None."""
        with self._lock:
            return self.features[index].clone() if self.filled[index] else None

    def put(self, indices: list[int] | torch.Tensor, feats: torch.Tensor) -> None:
        """Store `[B, D]` normalised features for `indices`."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        with self._lock:
            self.features[idx] = feats.float()
            self.filled[idx] = True

    def merge(self, other: ImageFeatureStore) -> int:
        """Fill the rows `other` has and this store lacks (rows already here are kept); returns how many."""
        if other.identity != self.identity or other.features.shape != self.features.shape:
            raise FeatureFileError("features_merge")
        with self._lock:
            new = other.filled & ~self.filled  # [N]
            self.features[new] = other.features[new]
            self.filled |= new
            return int(new.sum())

    def nearest(self, query: torch.Tensor, k: int) -> tuple[list[int], list[float]]:
        """The `k` stored rows nearest to `query` `[D]` (exact: `clipdemo.core.search.nearest`), among those filled
        so far; (indices, cosines), best first."""
        with self._lock:
            return search.nearest(self.features, query, k, self.filled)

    def missing(self, indices: list[int]) -> list[int]:
        with self._lock:
            return [i for i in indices if not self.filled[i]]

    def gather(self, indices: list[int]) -> torch.Tensor:
        """`[B, D]` features of `indices`, all of which must be filled."""
        with self._lock:
            idx = torch.as_tensor(indices, dtype=torch.long)
            if not bool(self.filled[idx].all()):
                raise KeyError("some requested image features are not stored")
            return self.features[idx].clone()

    def save(self, path: Path) -> Path:
        """Write the store atomically (temp file, then rename)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            blob = {"format": FORMAT, "identity": self.identity, "features": self.features.clone(),
                    "filled": self.filled.clone()}
        fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".part", dir=path.parent)
        os.close(fd)
        try:
            torch.save(blob, tmp)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return path

    @classmethod
    def load(cls, path: Path, identity: str) -> ImageFeatureStore:
        """Read a store saved by `save`; FeatureFileError unless it was made with weights `identity`."""
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # untrusted file: any unpickling failure is "not a features file"
            raise FeatureFileError("features_unreadable", Path(path).name, exc) from None
        if not isinstance(blob, dict) or blob.get("format") != FORMAT:
            raise FeatureFileError("features_not_ours", Path(path).name)
        if blob["identity"] != identity:
            raise FeatureFileError("features_other_weights", Path(path).name, blob["identity"][:24])
        feats, filled = blob["features"], blob["filled"]
        store = cls(identity, feats.shape[0], feats.shape[1])
        store.features, store.filled = feats.float(), filled.bool()
        return store
