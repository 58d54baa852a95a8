"""Your labelled data's figures (part of `make bench`; issue #26).

R15: the same images as the CIFAR-100 evaluation encodes them (from an empty store, the app's bulk chunks) vs as
     a visitor's labelled zip (PNG files in class folders: checked, decoded, reduced, encoded in the same chunks):
     the zip's extra is the decoding (goal: within 1.5x).
R16: a warm prediction (8 labels, an uploaded image) zero-shot vs few-shot with 16 examples per label (the
     Tip-Adapter cache, its features made once): the cache is one small matmul (goal: about 1).

The model is the bench's full-size ViT-B/32 with seeded random weights; the figures are about cost only.
"""

from __future__ import annotations

import io
import tempfile
import zipfile
from pathlib import Path

import torch
from PIL import Image

from bench.timing import paired, report
from clipdemo.core.labels import LabelSet
from clipdemo.io.cifar import Cifar100
from clipdemo.serving.service import ZeroShot
from clipdemo.tasks.classify import Answering, classify_batch
from clipdemo.tasks.yourdata import read_labelled


def labelled_zip(data: Cifar100, indices: list[int], path: Path) -> Path:
    """Test images as a visitor would send them: PNGs in one folder per class."""
    with zipfile.ZipFile(path, "w") as zf:
        for i in indices:
            buf = io.BytesIO()
            data.image(i).save(buf, "PNG")
            zf.writestr(f"{data.true_label(i)}/{i}.png", buf.getvalue())
    return path


def in_process(zs: ZeroShot, data: Cifar100, upload: Image.Image, q: bool) -> dict[str, float]:
    n = 100 if q else 400
    # the first n test images of 40 classes (a labelled set holds at most 50)
    indices = [i for i in range(len(data)) if data.target(i) < 40][:n]
    with tempfile.TemporaryDirectory(prefix="clipdemo-yourdata-") as tmp:
        zipped = labelled_zip(data, indices, Path(tmp) / "labelled.zip")

        def cifar():
            zs.cifar = None  # an empty store each time: every image is preprocessed and encoded
            for _ in zs.fill_store(data, indices):  # the evaluation's one encoding loop
                pass
        r = {"R15": report("R15", f"{n} images: the CIFAR-100 evaluation's encoding vs the same images as a labelled "
                                  "zip (checked, decoded, encoded; goal: within 1.5x)",
                           paired(cifar, lambda: read_labelled(zs, zipped), 1 if q else 2, 0))}
    labels = LabelSet.of(["cat", "dog", "car", "tree", "house", "lion", "boat", "plane"], ["a photo of a {}"])
    g = torch.Generator().manual_seed(0)
    keys = torch.nn.functional.normalize(torch.randn(16 * 8, zs.loaded.config.embed_dim, generator=g), dim=-1)
    shots = Answering()  # 16 examples per label, their features made once, as a session keeps them
    for i, label in enumerate(labels.labels):
        shots = shots.with_examples(label, keys[16 * i:16 * (i + 1)])
    zs.text_features(labels)
    r["R16"] = report("R16", "a warm prediction (8 labels, an uploaded image): zero-shot vs few-shot with 16 examples "
                             "per label, its weights chosen on them each time as the page does (goal: about 1)",
                      paired(lambda: classify_batch(zs, [upload], labels, 5),
                             lambda: classify_batch(zs, [upload], labels, 5, answering=shots), 5 if q else 15, 1, 3))
    return r
