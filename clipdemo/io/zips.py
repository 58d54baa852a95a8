"""Zips from strangers, opened safely: every member checked before any is read (a safe name, sizes, a compression
ratio no zip bomb gets under), read in memory only and never past its limit; any failure is a Refusal naming the
file. Batches, Predict's examples and labelled sets all open zips here."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from PIL import Image

from ..core.words import Refusal
from .images import MAX_BYTES, ImageError, open_image

__all__ = ["open_zip", "checked_members", "read_member", "member_image", "MAX_ZIP_BYTES", "MAX_RATIO"]

MAX_ZIP_BYTES = 256 * 2**20  # all members of a zip together, uncompressed
MAX_RATIO = 100  # uncompressed / compressed size of one member; images hardly compress, bombs do by ~1000x
_JUNK = ("__MACOSX/", ".DS_Store", "Thumbs.db")  # what zip tools add on their own: skipped, not refused


def checked_members(zf: zipfile.ZipFile, limit: int, max_total: int = MAX_ZIP_BYTES) -> list[zipfile.ZipInfo]:
    """The members of a zip worth reading (folders and what zip tools add on their own left out), every one checked
    before any is read: a safe name, at most `limit` of them, none over MAX_BYTES, no compression ratio a zip bomb
    would need, all together at most `max_total` bytes; a Refusal naming the first that is not."""
    infos = [i for i in zf.infolist() if not i.is_dir() and not any(j in i.filename for j in _JUNK)
             and not PurePosixPath(i.filename).name.startswith("._")]
    if len(infos) > limit:
        raise Refusal("batch_many", len(infos), limit)
    total = 0
    for info in infos:
        name = info.filename
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise Refusal("zip_unsafe_name", repr(name))
        if info.file_size > MAX_BYTES:
            raise Refusal("zip_member_big", name, MAX_BYTES // 2**20)
        if info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise Refusal("zip_ratio", name, MAX_RATIO)
        total += info.file_size
        if total > max_total:
            raise Refusal("zip_total", max_total // 2**20)
    return infos


@contextmanager
def open_zip(path: str | Path, name: str) -> Iterator[zipfile.ZipFile]:
    """A zip opened for reading. Any failure to open it is a Refusal naming `name`, whatever zipfile raised: a
    damaged directory, a member flagged UTF-8 whose name is not, a truncated file."""
    try:
        zf = zipfile.ZipFile(path)
    except Exception as exc:  # noqa: BLE001 - untrusted bytes: BadZipFile, UnicodeDecodeError, ValueError, OSError...
        raise Refusal("zip_bad", name, exc) from None
    with zf:
        yield zf


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int = MAX_BYTES) -> bytes:
    """A checked member's bytes, never more than `limit` whatever its header says; a Refusal when unreadable."""
    try:
        with zf.open(info) as member:
            data = member.read(limit + 1)  # the header's sizes may lie: never read past the limit
    except Exception as exc:  # noqa: BLE001 - untrusted bytes: encrypted, unsupported, damaged, a bad name...
        raise Refusal("zip_unreadable", info.filename, exc) from None
    if len(data) > limit:
        raise Refusal("zip_member_big", info.filename, max(limit // 2**20, 1))
    return data


def member_image(zf: zipfile.ZipFile, info: zipfile.ZipInfo, fit: int) -> Image.Image:
    """A checked member decoded as an image reduced to what a model of input resolution `fit` keeps."""
    try:
        return open_image(read_member(zf, info), fit=fit)
    except ImageError as exc:
        raise Refusal("zip_not_image", info.filename, exc.text) from None
