"""A corpus of hostile and unusual image files, generated (nothing is shipped), with what each should give."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _exif_rotated() -> bytes:
    img = Image.new("RGB", (40, 20), (200, 30, 30))
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90° clockwise to display
    return _save(img, "JPEG", exif=exif.tobytes())


def _animated_gif() -> bytes:
    frames = [Image.new("RGB", (16, 16), c) for c in ((255, 0, 0), (0, 0, 255))]
    return _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)


def _png_bomb(width: int = 30_000, height: int = 30_000) -> bytes:
    """A valid 1x1 PNG whose header claims width x height pixels: tiny on disk, huge if decoded."""
    png = bytearray(_save(Image.new("L", (1, 1)), "PNG"))
    ihdr = struct.pack(">II", width, height) + png[24:29]  # keep bit depth, colour type, etc.
    png[16:29] = ihdr
    png[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return bytes(png)


def _p_transparent() -> bytes:
    img = Image.new("P", (8, 8), 0)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    return _save(img, "PNG", transparency=0)  # palette index 0 (every pixel) is transparent


def good_files() -> dict[str, tuple[str, bytes, tuple[int, int, int] | None]]:
    """name -> (file name, bytes, expected RGB of pixel (0, 0) after decoding, or None to skip that check)."""
    return {
        "cmyk": ("cmyk.jpg", _save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=100), None),
        "p_transparent": ("p.png", _p_transparent(), (255, 255, 255)),
        "la": ("la.png", _save(Image.new("LA", (8, 8), (0, 0)), "PNG"), (255, 255, 255)),
        "rgba_half": ("rgba.png", _save(Image.new("RGBA", (8, 8), (0, 0, 0, 128)), "PNG"), (127, 127, 127)),
        "i16": ("i16.png", _save(Image.new("I;16", (8, 8), 65535), "PNG"), (255, 255, 255)),
        "bit1": ("bit.png", _save(Image.new("1", (8, 8), 1), "PNG"), (255, 255, 255)),
        "grey": ("grey.png", _save(Image.new("L", (8, 8), 77), "PNG"), (77, 77, 77)),
        "webp": ("x.webp", _save(Image.new("RGB", (8, 8), (0, 128, 0)), "WEBP", lossless=True), (0, 128, 0)),
        "bmp": ("x.bmp", _save(Image.new("RGB", (8, 8), (0, 0, 200)), "BMP"), (0, 0, 200)),
        "exif_rotated": ("rot.jpg", _exif_rotated(), None),
        "animated_gif": ("anim.gif", _animated_gif(), (255, 0, 0)),
        "png_named_jpg": ("really-a-png.jpg", _save(Image.new("RGB", (8, 8), (9, 9, 9)), "PNG"), (9, 9, 9)),
    }


def bad_files() -> dict[str, tuple[str, bytes, str]]:
    """name -> (file name, bytes, the error message the app must give)."""
    png = _save(Image.new("RGB", (64, 64), (1, 2, 3)), "PNG")
    jpg = _save(Image.effect_noise((64, 64), 50).convert("RGB"), "JPEG")
    return {
        "truncated_png": ("t.png", png[: len(png) // 2], "could not be decoded"),
        "truncated_jpeg": ("t.jpg", jpg[: len(jpg) // 2], "could not be decoded"),
        "text_named_png": ("notes.png", b"just some text, not an image\n" * 10, "not an image in an accepted format"),
        "random_bytes": ("r.jpg", bytes(range(256)) * 8, "not an image in an accepted format"),
        "svg": ("x.svg", b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script>'
                         b"</svg>", "not an image in an accepted format"),
        "tiff": ("x.tiff", _save(Image.new("RGB", (8, 8)), "TIFF"), "not an image in an accepted format"),
        "pixel_bomb": ("bomb.png", _png_bomb(), "the limit is 40 megapixels"),
        "empty": ("empty.png", b"", "empty"),
    }
