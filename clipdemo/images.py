"""Opening untrusted images safely: an allow-list of formats, a pixel budget, any mode to RGB.

Holds: `ImageError`, `open_image` (a path or bytes -> RGB PIL image), `decode_data_url` (a base64
`data:` URL -> bytes, size-checked first), `inside_folder` (a path only if it lies in an allowed folder)
and the limits. Holds no model code. Decoding is done here, never by the web framework, so every input
obeys the same rules.
"""

from __future__ import annotations

import base64
import binascii
import io
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["image_from_reference", "NOT_FETCHED", "ImageError", "open_image", "decode_data_url", "inside_folder", "ALLOWED_FORMATS", "MAX_PIXELS",
           "MAX_BYTES"]

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")
MAX_PIXELS = 40_000_000  # ~ 6300 x 6300; checked from the header, before any pixel is decoded
MAX_BYTES = 20 * 1024 * 1024


class ImageError(ValueError):
    """The input is not an image this app accepts; the message says why."""


def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode to RGB; transparency is composited on white."""
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = img.point(lambda v: v * (1 / 256)).convert("L")  # 16-bit grey -> 8-bit
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def open_image(source: str | Path | bytes, *, max_pixels: int = MAX_PIXELS, max_bytes: int = MAX_BYTES) -> Image.Image:
    """Decode `source` (a file path or the file's bytes) into an RGB image.

    Applies EXIF orientation, takes the first frame of animations, composites alpha on white.
    Raises ImageError for files that are too large, not images, of a refused format, over the pixel
    budget, or truncated.
    """
    if isinstance(source, (bytes, bytearray)):
        if len(source) > max_bytes:
            raise ImageError(f"The image is {len(source) / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB.")
        data = bytes(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"No image file at {path.name!s}.")
        if path.stat().st_size > max_bytes:
            raise ImageError(f"The image is {path.stat().st_size / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB.")
        data = path.read_bytes()
    if not data:
        raise ImageError("The file is empty.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        raise ImageError(f"This file is not an image in an accepted format ({', '.join(ALLOWED_FORMATS)}).") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError(f"The image has too many pixels; the limit is {max_pixels / 1e6:.0f} megapixels.") from None
    width, height = img.size
    if width * height > max_pixels:
        raise ImageError(f"The image is {width}x{height} pixels; the limit is {max_pixels / 1e6:.0f} megapixels.")
    if width < 1 or height < 1:
        raise ImageError("The image has no pixels.")
    try:
        img.seek(0)  # first frame of an animation
        img.load()
        img = ImageOps.exif_transpose(img)
        return _to_rgb(img)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError(f"The image could not be decoded (truncated or corrupt): {exc}") from None


def decode_data_url(url: str, max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of a base64 `data:` URL, refusing one larger than `max_bytes` before decoding it."""
    header, _, payload = url.partition(",")
    if not header.endswith(";base64"):
        raise ImageError("Inline images must be base64 data: URLs.")
    if len(payload) > (max_bytes * 4) // 3 + 4:
        raise ImageError(f"The image is over {max_bytes / 2**20:.0f} MB; the limit is {max_bytes / 2**20:.0f} MB.")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("The inline image is not valid base64.") from None


def inside_folder(path: str, root: str | Path) -> Path | None:
    """`path` resolved, if it lies inside `root` (links resolved too); None otherwise, whatever the reason."""
    try:
        resolved = Path(path).resolve()
        return resolved if resolved.is_relative_to(Path(root).resolve()) else None
    except (OSError, ValueError, TypeError):
        return None


NOT_FETCHED = ("Images given as web addresses are not fetched: send the image itself, as a base64 data: URL "
               "or as a file uploaded to this Space.")


def image_from_reference(ref: object, upload_root: str | Path) -> Image.Image:
    """The image an API caller sent: a base64 `data:` URL, or a file uploaded to this server (its path, or
    Gradio's file record) that lies inside `upload_root`. Web addresses are refused without any request
    (nothing is ever fetched on a caller's behalf); so is every other path. ImageError says why."""
    if isinstance(ref, dict):
        ref = ref.get("path") or ref.get("url") or ""
    if not isinstance(ref, str) or not ref.strip():
        raise ImageError("Give an image: a base64 data: URL, or a file uploaded to this Space.")
    ref = ref.strip()
    if ref.startswith("data:"):
        return open_image(decode_data_url(ref))
    if "://" in ref[:16]:
        raise ImageError(NOT_FETCHED)
    path = inside_folder(ref, upload_root)
    if path is None or not path.is_file():
        raise ImageError("Only images uploaded to this Space (or sent as data: URLs) can be classified.")
    return open_image(path)
