"""CIFAR-100 through torchvision's CIFAR100 on a fixture in the real on-disk format."""

import pytest

from clipdemo.core.words import Refusal
from clipdemo.io.cifar import DataError, open_cifar100
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
    with pytest.raises(Refusal, match="out of range|whole number"):
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


# CIFAR-100's `fine_label_names`, in the order of the dataset's integer targets, as the `meta` file of the
# official archive (https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz) lists them and torchvision's
# `CIFAR100.classes` returns them. Typed here as data, independent of clipdemo's presets and fixtures.
PUBLISHED_FINE_NAMES = """
apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can castle
caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin elephant flatfish
forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle
mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine
possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar
sunflower sweet_pepper table tank telephone television tiger tractor train trout tulip turtle wardrobe whale
willow_tree wolf woman worm
""".split()


def test_class_names_are_the_published_ones(cifar_root):
    from clipdemo.io.cifar import open_cifar100
    from clipdemo.core.labels import CIFAR100_CLASSES
    assert len(PUBLISHED_FINE_NAMES) == 100 and PUBLISHED_FINE_NAMES.index("lion") == 43
    assert list(CIFAR100_CLASSES) == PUBLISHED_FINE_NAMES
    assert list(open_cifar100(cifar_root).classes) == PUBLISHED_FINE_NAMES  # the fixture's meta file, read by torchvision
