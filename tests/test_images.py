"""Image decoding on its own: every mode to RGB, EXIF, animations, refusals (see tests/corpus.py)."""

import io

import pytest
import torch
from PIL import Image

from clipdemo.io.images import ImageError, open_image
from corpus import bad_files, good_files


@pytest.mark.parametrize("name", sorted(good_files()))
def test_good_files_become_rgb(name):
    _, data, pixel = good_files()[name]
    img = open_image(data)
    assert img.mode == "RGB"
    if pixel is not None:
        assert img.getpixel((0, 0)) == pytest.approx(pixel, abs=2)


def test_exif_orientation_and_cmyk():
    assert open_image(good_files()["exif_rotated"][1]).size == (20, 40)  # 40x20 stored, shown rotated
    r, g, b = open_image(good_files()["cmyk"][1]).getpixel((0, 0))
    assert r > 200 and g < 60 and b < 60  # CMYK (0, 255, 255, 0) is red


@pytest.mark.parametrize("name", sorted(bad_files()))
def test_bad_files_are_refused_with_their_reason(name):
    _, data, message = bad_files()[name]
    with pytest.raises(ImageError, match=message):
        open_image(data)


def test_size_limits(tmp_path):
    with pytest.raises(ImageError, match="the limit is 1 MB"):
        open_image(b"x" * 2_000_000, max_bytes=1_000_000)
    path = tmp_path / "big.png"
    path.write_bytes(b"x" * 2_000_000)
    with pytest.raises(ImageError, match="the limit is 1 MB"):
        open_image(path, max_bytes=1_000_000)
    with pytest.raises(ImageError, match="No image file at nothing.png"):
        open_image(tmp_path / "nothing.png")


def _encoded(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("size", [(3000, 2000), (300, 2000)])
@pytest.mark.parametrize("mode", ["RGB", "P"])
def test_a_png_reduced_on_decoding_gives_the_model_exactly_the_same_input(size, mode):
    """`fit` keeps of an image what CLIP's preprocessing keeps: the model's input is the same, bit for bit."""
    from clipdemo.core.model import PRESETS, preprocess_for
    pre = preprocess_for(PRESETS["ViT-B/32"])  # clip's own transform
    img = Image.effect_mandelbrot(size, (-2, -1.2, 1, 1.2), 80).convert("RGB")
    data = _encoded(img if mode == "RGB" else img.convert("P", palette=Image.Palette.ADAPTIVE), "PNG")
    small = open_image(data, fit=224)
    assert small.size == (224, 224) and small.mode == "RGB"
    assert torch.equal(pre(small), pre(open_image(data)))


@pytest.mark.parametrize("kind", ["jpeg", "rgba"])
def test_a_jpeg_or_a_transparent_image_reduced_on_decoding_is_within_a_level_on_average(kind):
    """A JPEG is decoded at a reduced scale (`draft`) and a transparent image reduced before its white background
    goes in: the model's input differs from the full decode's by under a hundredth on average (about 0.7 of
    one 8-bit level), a few levels at most."""
    from clipdemo.core.model import PRESETS, preprocess_for
    pre = preprocess_for(PRESETS["ViT-B/32"])
    img = Image.effect_mandelbrot((3000, 2000), (-2, -1.2, 1, 1.2), 80).convert("RGB")
    if kind == "jpeg":
        data = _encoded(img, "JPEG", quality=95)
    else:
        img = img.convert("RGBA")
        img.putalpha(Image.linear_gradient("L").resize(img.size))
        data = _encoded(img, "PNG")
    diff = (pre(open_image(data, fit=224)) - pre(open_image(data))).abs()  # [3, 224, 224], normalised units
    assert diff.mean() < 0.01 and diff.max() < 0.25
