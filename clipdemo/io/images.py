"""Opening untrusted images safely: an allow-list of formats, a pixel budget, any mode to RGB.

Decoding is done here, never by the web framework, so every input obeys the same rules. No model code.
"""

from __future__ import annotations

import base64
import binascii
import io
import threading
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from ..core.words import Refusal

__all__ = ["image_source", "image_from_reference", "ImageError", "open_image", "fit_to_model", "decode_data_url",
           "inside_folder", "ALLOWED_FORMATS", "IMAGE_SUFFIXES", "MAX_PIXELS", "MAX_BYTES", "DECODE_SLOTS"]

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP")
IMAGE_SUFFIXES = frozenset({".jpg", *(f".{fmt.lower()}" for fmt in ALLOWED_FORMATS)})  # JPEG's are .jpg or .jpeg
MAX_PIXELS = 40_000_000  # ~ 6300 x 6300; checked from the header, before any pixel is decoded
MAX_BYTES = 20 * 1024 * 1024
# Images decoded at once across the process (a full frame of MAX_PIXELS is 120 MB as RGB, twice that while a mode
# is converted): requests beyond this wait their turn, so memory stays bounded however many arrive together.
DECODE_SLOTS = 2
_DECODING = threading.BoundedSemaphore(DECODE_SLOTS)


class ImageError(Refusal):
    """The input is not an image this app accepts; the sentence says why."""


def _to_rgb(img: Image.Image, fit: int | None = None) -> Image.Image:
    """Any PIL mode to RGB, reduced with `fit_to_model` first when `fit` is given (so the conversions below work
    on the small image); transparency is composited on white."""
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        img = img.point(lambda v: v * (1 / 256)).convert("L")  # 16-bit grey -> 8-bit
    if img.mode in ("1", "CMYK", "YCbCr", "LAB", "HSV", "F"):
        img = img.convert("RGB")  # modes PIL does not resize smoothly (or at all)
    if fit:
        img = fit_to_model(img, fit)
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img if img.mode == "RGB" else img.convert("RGB")


def open_image(source: str | Path | bytes, *, fit: int | None = None, max_pixels: int = MAX_PIXELS,
               max_bytes: int = MAX_BYTES) -> Image.Image:
    """Decode `source` (a file path or the file's bytes) into an RGB image.

    Applies EXIF orientation, takes the first frame of animations, composites alpha on white. With `fit` (the
    model's input resolution R), the image is reduced as it is decoded to what the model's preprocessing keeps
    of it: shorter side R (bicubic, as CLIP's `Resize`), then the centre R x R (its `CenterCrop`), so a
    20-megapixel upload is kept as 150 KB and the model's input is unchanged. JPEGs are decoded at a reduced
    scale (`Image.draft`, at least 2R a side); other formats are decoded whole and reduced at once. At most
    DECODE_SLOTS images are decoded at a time across the process: a full-size frame exists only in there.
    Raises ImageError for files that are too large, not images, of a refused format, over the pixel
    budget, or truncated.
    """
    if isinstance(source, (bytes, bytearray)):
        if len(source) > max_bytes:
            raise ImageError("image_big", f"{len(source) / 2**20:.1f}", f"{max_bytes / 2**20:.0f}")
        data = bytes(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageError("image_no_file", path.name)
        if path.stat().st_size > max_bytes:
            raise ImageError("image_big", f"{path.stat().st_size / 2**20:.1f}", f"{max_bytes / 2**20:.0f}")
        data = path.read_bytes()
    if not data:
        raise ImageError("image_empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except UnidentifiedImageError:
        raise ImageError("image_format", ", ".join(ALLOWED_FORMATS)) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("image_pixels", f"{max_pixels / 1e6:.0f}") from None
    width, height = img.size
    if width * height > max_pixels:
        raise ImageError("image_size_pixels", width, height, f"{max_pixels / 1e6:.0f}")
    if width < 1 or height < 1:
        raise ImageError("image_no_pixels")
    try:
        with _DECODING:
            img.seek(0)  # first frame of an animation
            if fit and img.format == "JPEG":
                img.draft(img.mode, (2 * fit, 2 * fit))  # a DCT-scaled decode, still >= 2R a side
            img.load()
            img = ImageOps.exif_transpose(img)
            return _to_rgb(img, fit)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageError("image_corrupt", exc) from None


def fit_to_model(img: Image.Image, fit: int) -> Image.Image:
    """What CLIP's preprocessing keeps of `img`: shorter side `fit` (bicubic, torchvision's `Resize(fit)` rule),
    then the centre `fit` x `fit` (its `CenterCrop`). An image already smaller is returned as it is; the model's
    own preprocessing then gives exactly what it gives the original."""
    w, h = img.size
    if min(w, h) <= fit:
        return img
    size = (fit, int(fit * h / w)) if w <= h else (int(fit * w / h), fit)  # [W, H], as torchvision computes it
    img = img.resize(size, Image.Resampling.BICUBIC)
    left, top = int(round((size[0] - fit) / 2.0)), int(round((size[1] - fit) / 2.0))
    return img.crop((left, top, left + fit, top + fit))


def decode_data_url(url: str, max_bytes: int = MAX_BYTES) -> bytes:
    """The bytes of a base64 `data:` URL, refusing one larger than `max_bytes` before decoding it."""
    header, _, payload = url.partition(",")
    if not header.endswith(";base64"):
        raise ImageError("image_not_base64_url")
    if len(payload) > (max_bytes * 4) // 3 + 4:
        raise ImageError("image_over", f"{max_bytes / 2**20:.0f}", f"{max_bytes / 2**20:.0f}")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ImageError("image_bad_base64") from None


def inside_folder(path: str, root: str | Path) -> Path | None:
    """`path` resolved, if it lies inside `root` (links resolved too); None otherwise, whatever the reason."""
    try:
        resolved = Path(path).resolve()
        return resolved if resolved.is_relative_to(Path(root).resolve()) else None
    except (OSError, ValueError, TypeError):
        return None




def image_source(ref: object, upload_root: str | Path) -> Path | bytes:
    """Where the image a caller sent is: the bytes of a base64 `data:` URL, or a file uploaded to this server
    (its path, or Gradio's file record) that lies inside `upload_root`. Web addresses are refused without any
    request (nothing is ever fetched on a caller's behalf); so is every other path. ImageError says why."""
    if isinstance(ref, dict):
        ref = ref.get("path") or ref.get("url") or ""
    if not isinstance(ref, str) or not ref.strip():
        raise ImageError("image_give")
    ref = ref.strip()
    if ref.startswith("data:"):
        return decode_data_url(ref)
    if "://" in ref[:16]:
        raise ImageError("not_fetched")
    path = inside_folder(ref, upload_root)
    if path is None or not path.is_file():
        raise ImageError("image_not_uploaded")
    return path


def image_from_reference(ref: object, upload_root: str | Path, fit: int | None = None) -> Image.Image:
    """The image an API caller sent (see `image_source`), decoded (see `open_image`)."""
    return open_image(image_source(ref, upload_root), fit=fit)
