"""CIFAR-100's test split through `torchvision.datasets.CIFAR100`, as PIL images and true labels.

No model code. Nothing is read or downloaded at import.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..core import checks
from ..core.words import Refusal

__all__ = ["DataError", "DataUnavailable", "Cifar100", "open_cifar100", "open_cifar10"]

log = logging.getLogger(__name__)


class DataError(Refusal):
    """The dataset is missing or corrupt; the sentence says what to do."""


class DataUnavailable(DataError):
    """The dataset could not be opened or fetched (the sentence holds server paths and URLs: for the log)."""


@dataclass(frozen=True)
class Cifar100:
    """The CIFAR-100 test split: `len()` images, `image(i)` as 32x32 RGB PIL, `target(i)` as a class index."""

    dataset: object  # torchvision.datasets.CIFAR100(train=False)
    root: Path

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.dataset.classes)

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def targets(self) -> list[int]:
        """The true fine class of every image, in order."""
        return list(self.dataset.targets)

    def image(self, index: int) -> Image.Image:
        """The 32x32 RGB test image at `index` (checked: a Refusal names the range)."""
        return Image.fromarray(self.dataset.data[checks.cifar_index(index, len(self))])  # data: [N, 32, 32, 3] uint8

    def target(self, index: int) -> int:
        """The true fine class index of image `index`."""
        return int(self.dataset.targets[checks.cifar_index(index, len(self))])

    def true_label(self, index: int) -> str:
        """The true class name of image `index` (torchvision's spelling)."""
        return self.classes[self.target(index)]


def open_cifar100(root: Path, *, download: bool = False) -> Cifar100:
    """Open the CIFAR-100 test split under `root` (downloading it first when `download`).

    Raises DataError naming the root and what to put there when the files are missing or corrupt.
    """
    from torchvision.datasets import CIFAR100

    root = Path(root).expanduser()
    try:
        ds = CIFAR100(root=str(root), train=False, download=download)
    except Exception as exc:  # torchvision raises RuntimeError (missing/corrupt) or URLError/OSError (download)
        reason = str(exc).split(" You can use download=True")[0].rstrip(".")  # torchvision's own hint misleads here
        raise DataUnavailable("cifar_missing", root, reason, root) from exc
    log.info("opened CIFAR-100 test split under %s (%d images)", root, len(ds))
    return Cifar100(ds, root)


def open_cifar10(root: Path) -> Cifar100 | None:
    """The CIFAR-10 test split under `root` (same wrapper: `image`, `target`, `classes`), or None when absent or
    corrupt; never downloaded (only the self-check uses it)."""
    from torchvision.datasets import CIFAR10

    try:
        return Cifar100(CIFAR10(root=str(Path(root).expanduser()), train=False, download=False), Path(root))
    except Exception:  # noqa: BLE001 - torchvision raises RuntimeError for missing or corrupt files
        return None
