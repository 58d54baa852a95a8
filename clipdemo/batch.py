"""Batches of images: reading many files, or a zip of images, safely; and classifying them together.

Holds `read_batch(paths, fit=R)` (image files and zips of images, at most MAX_BATCH images, each decoded one at
a time and reduced at once to what the model keeps of it, R x R: see `images.open_image`; every member of a zip is checked before any of that zip is read: no unsafe names, no member or total over its size limit, no
compression ratio a zip bomb would need; members are read in memory and never written anywhere;
BatchError says what was refused), `BatchItem` and `classify_batch` (the visitor's labels encoded
once, the images encoded in chunks as bulk work, so other visitors' predictions go in between). No
gradio.
"""

from __future__ import annotations

import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import torch
from PIL import Image

from . import engine
from .images import MAX_BYTES, ImageError, open_image
from .progress import ProgressFn
from .scheduler import Priority
from .service import ZeroShot

__all__ = ["BatchError", "BatchItem", "read_batch", "classify_batch", "MAX_BATCH", "MAX_ZIP_BYTES", "MAX_RATIO"]

MAX_BATCH = 64  # images in one batch
MAX_ZIP_BYTES = 256 * 2**20  # all members of a zip together, uncompressed
MAX_RATIO = 100  # uncompressed / compressed size of one member; images hardly compress, bombs do by ~1000x
_JUNK = ("__MACOSX/", ".DS_Store", "Thumbs.db")  # what zip tools add on their own: skipped, not refused


class BatchError(ValueError):
    """A batch was refused; the message is the sentence to show."""


@dataclass(frozen=True)
class BatchItem:
    """One classified image of a batch: its name and its results, best first."""

    name: str
    image: Image.Image
    top: tuple[tuple[str, float, float], ...]  # (label, probability, cosine), best first

    def predictions(self) -> list[dict]:
        """The results as the API, the CLI and the files give them: `[{label, score, cosine}]`, best first."""
        return [{"label": lab, "score": p, "cosine": c} for lab, p, c in self.top]


def _too_many(n: int) -> BatchError:
    return BatchError(f"Too many images: {n}; a batch holds at most {MAX_BATCH}.")


def _zip_members(path: Path, fit: int) -> list[tuple[str, Image.Image]]:
    with zipfile.ZipFile(path) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir() and not any(j in i.filename for j in _JUNK)
                 and not PurePosixPath(i.filename).name.startswith("._")]
        if len(infos) > MAX_BATCH:
            raise _too_many(len(infos))
        total = 0
        for info in infos:  # every member is checked before any is read
            name = info.filename
            parts = PurePosixPath(name.replace("\\", "/")).parts
            if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
                raise BatchError(f"The zip holds a member with an unsafe name ({name!r}); nothing was read.")
            if info.file_size > MAX_BYTES:
                raise BatchError(f"{name} in the zip is over {MAX_BYTES // 2**20} MB; the limit is "
                                 f"{MAX_BYTES // 2**20} MB an image.")
            if info.file_size > MAX_RATIO * max(info.compress_size, 1):
                raise BatchError(f"{name} in the zip unpacks to over {MAX_RATIO} times its packed size; "
                                 "such a zip (a zip bomb) is refused.")
            total += info.file_size
            if total > MAX_ZIP_BYTES:
                raise BatchError(f"The zip unpacks to over {MAX_ZIP_BYTES // 2**20} MB; that is the limit.")
        items = []
        for info in infos:
            try:
                with zf.open(info) as member:
                    data = member.read(MAX_BYTES + 1)  # the header's sizes may lie: never read past the limit
            except (RuntimeError, NotImplementedError, zlib.error, EOFError, OSError, zipfile.BadZipFile) as exc:
                raise BatchError(f"{info.filename} in the zip cannot be read (encrypted, an unsupported "
                                 f"compression, or damaged): {exc}") from None
            if len(data) > MAX_BYTES:
                raise BatchError(f"{info.filename} in the zip is over {MAX_BYTES // 2**20} MB.")
            try:
                items.append((info.filename, open_image(data, fit=fit)))
            except ImageError as exc:
                raise BatchError(f"{info.filename} in the zip is not an image this app reads: {exc}") from None
        return items


def read_batch(paths: list[str | Path], names: list[str] | None = None, *, fit: int) -> list[tuple[str, Image.Image]]:
    """`(name, RGB image)` for every image among `paths` (image files, or zips of images), each reduced to what a
    model of input resolution `fit` keeps of it; BatchError or ImageError, naming the file, for anything else.
    `names` are what to call the files (default: theirs)."""
    items: list[tuple[str, Image.Image]] = []
    for i, raw in enumerate(paths):
        path = Path(raw)
        name = names[i] if names else path.name
        if zipfile.is_zipfile(path):
            try:
                items += _zip_members(path, fit)
            except zipfile.BadZipFile as exc:
                raise BatchError(f"{name} is not a readable zip: {exc}") from None
        else:
            try:
                items.append((name, open_image(path, fit=fit)))
            except ImageError as exc:
                raise BatchError(f"{name} is not an image this app reads: {exc}") from None
        if len(items) > MAX_BATCH:
            raise _too_many(len(items))
    if not items:
        raise BatchError("Give at least one image (image files, or a zip of images).")
    return items


def classify_batch(zs: ZeroShot, items: list[tuple[str, Image.Image]], labels: tuple[str, ...],
                   templates: tuple[str, ...], k: int = 5, progress: ProgressFn | None = None) -> list[BatchItem]:
    """Every image against the labels: the labels' text features once (cached), the images in chunks of
    `zs.bulk_images`, each chunk one bulk model call once there is more than one chunk."""
    k = engine.check_top_k(k)
    text = zs.text_features(labels, templates)  # [L, D]
    step = zs.bulk_images
    priority = Priority.BULK if len(items) > step else Priority.INTERACTIVE
    out: list[BatchItem] = []
    for first in range(0, len(items), step):
        chunk = items[first:first + step]
        feats = zs.encode_pixels(torch.stack([zs.pixels(im) for _, im in chunk]), priority)  # [b, D]
        cosines, probs = engine.scores(feats, text)  # [b, L], [b, L]
        for (name, image), p, c in zip(chunk, probs, cosines):
            order = torch.argsort(p, descending=True)[:k].tolist()
            out.append(BatchItem(name, image, tuple((labels[j], float(p[j]), float(c[j])) for j in order)))
        if progress:
            progress(len(out), len(items), "classifying images")
    return out
