"""CIFAR-100 through torchvision's CIFAR100 on a fixture in the real on-disk format."""

import pytest

from clipdemo.data import DataError, open_cifar100


def test_fixture_reads_through_torchvision(cifar_root):
    data = open_cifar100(cifar_root)
    assert len(data) == 10_000
    assert data.classes[data.target(15)] == "lion"
    img = data.image(9999)
    assert img.size == (32, 32) and img.mode == "RGB"
    assert data.classes[43] == "lion" and len(data.classes) == 100


@pytest.mark.parametrize("index", [10_000, -1, 1.5, "x", True])
def test_bad_index_is_clear(cifar_root, index):
    data = open_cifar100(cifar_root)
    with pytest.raises(DataError, match="out of range|whole number"):
        data.image(index)


def test_missing_files_name_the_root(tmp_path):
    with pytest.raises(DataError) as err:
        open_cifar100(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value) and "cifar-100-python" in str(err.value)


def test_corrupt_file_is_refused(cifar_root, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(cifar_root, copy)
    with open(copy / "cifar-100-python" / "test", "r+b") as f:
        f.seek(5000)
        f.write(b"\xff" * 16)
    with pytest.raises(DataError, match="corrupted"):
        open_cifar100(copy)
