"""Image decoding on its own: every mode to RGB, EXIF, animations, refusals (see tests/corpus.py)."""

import pytest

from clipdemo.images import ImageError, open_image
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
