"""CIFAR-100 test split access through `torchvision.datasets.CIFAR100`.

Holds: `DataError`, `Cifar100` (a thin, lazily opened wrapper returning PIL images and true labels)
and `open_cifar100`. Holds no model code. Nothing is read or downloaded at import.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

__all__ = ["DataError", "DataUnavailable", "Cifar100", "open_cifar100", "open_cifar10", "TEST_SIZE"]

log = logging.getLogger(__name__)
TEST_SIZE = 10_000


class DataError(RuntimeError):
    """The dataset is missing, corrupt, or an index is out of range; the message says what to do."""


class DataUnavailable(DataError):
    """The dataset could not be opened or fetched (the message holds server paths and URLs: for the log)."""


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

    def check_index(self, index: int) -> int:
        try:
            value = float(index)
        except (TypeError, ValueError):
            raise DataError(f"Image index must be a whole number, not {index!r}.") from None
        if isinstance(index, bool) or not value.is_integer():
            raise DataError(f"Image index must be a whole number, not {index!r}.")
        if not 0 <= value < len(self):
            raise DataError(f"Image index {int(value)} is out of range; the CIFAR-100 test split has indices "
                            f"0..{len(self) - 1}.")
        return int(value)

    def image(self, index: int) -> Image.Image:
        """The 32x32 RGB test image at `index`."""
        return Image.fromarray(self.dataset.data[self.check_index(index)])  # data: [N, 32, 32, 3] uint8

    def target(self, index: int) -> int:
        """The true fine class index of image `index`."""
        return int(self.dataset.targets[self.check_index(index)])


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
        raise DataUnavailable(
            f"CIFAR-100 is not available under {root}: {reason}. Put the extracted 'cifar-100-python/' folder "
            f"(files 'train', 'test', 'meta' from cifar-100-python.tar.gz) in {root}, or set CLIPDEMO_DATA "
            "to the folder that holds it, or allow downloads (CLIPDEMO_DOWNLOAD=1) on a machine with internet."
        ) from exc
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
