"""Published figures the real model must reproduce, as data, each with its source.

Holds `Figure` (a value with where it comes from), the notebook's top-5 for CIFAR-100 test index 15,
zero-shot accuracies of ViT-B/32 (CIFAR-100 with 18 templates and with one prompt, CIFAR-10), and
the md5 sums torchvision publishes for the real CIFAR-100 and CIFAR-10 files, so that "real data" is
checked rather than assumed. Nothing here was measured by this project: no real weights or real data
were ever reachable where it was built. `clipdemo.selfcheck` compares against these.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Figure", "NOTEBOOK_INDEX", "NOTEBOOK_TOP5", "NOTEBOOK_SOURCE", "CIFAR100_TOP1_18", "CIFAR100_BENCHMARK",
           "CIFAR100_TOP1_SINGLE", "CIFAR10_TOP1", "CIFAR100_MD5", "CIFAR10_MD5"]


@dataclass(frozen=True)
class Figure:
    """A published number (percent) and where it was published."""

    value: float
    source: str


# The classic zero-shot notebook (openai/CLIP README "Zero-Shot Prediction" code with `cifar100[15]`, run on a
# CUDA GPU, so fp16), as printed in D. Rothman, "Transformers for Natural Language Processing", 2nd ed.
# (Packt, 2022), chapter "Beyond Text: Vision Transformers" (notebook Chapter15/Vision_Transformers.ipynb of
# Denis2054/Transformers-for-NLP-2nd-Edition): "lion: 96.34%". Full-precision values of the same run as
# printed in Prajwal-Spec/Multimodal-Intelligence-Vision-and-Language, CLIP/README.md.
NOTEBOOK_INDEX = 15
NOTEBOOK_TOP5: tuple[tuple[str, float], ...] = (
    ("lion", 96.339965), ("tiger", 1.044002), ("camel", 0.284237), ("lawn_mower", 0.262529), ("leopard", 0.258663),
)
NOTEBOOK_SOURCE = ('the classic CLIP notebook on CIFAR-100 test index 15, "a photo of a {c}", torchvision class '
                   "names, CUDA fp16 (printed in D. Rothman, Transformers for NLP, 2nd ed., ch. 15)")

CIFAR100_TOP1_18 = Figure(65.1, "CLIP paper (Radford et al., 2021, arXiv 2103.00020), Table 11 'Zero-shot "
                                "performance of CLIP models over 27 datasets', ViT-B/32, CIFAR100: 18 templates")
CIFAR100_BENCHMARK = Figure(64.53, "LAION CLIP_benchmark, benchmark/benchmark.csv, ViT-B-32 openai, vtab/cifar100: "
                                   "acc1 0.6453, acc5 0.888 (its own prompt ensemble)")
CIFAR100_TOP1_SINGLE = Figure(62.0, 'openai/CLIP issue #153: the README code ("a photo of a {c}") on CIFAR-100 gives '
                                    '"about 62%" top-1 for ViT-B/32 (a user\'s approximate report)')
CIFAR10_TOP1 = Figure(91.3, "CLIP paper, Table 11, ViT-B/32, CIFAR10 (18 templates)")

# torchvision/datasets/cifar.py (pytorch/vision): the md5 of each file of the real datasets.
CIFAR100_MD5 = {"cifar-100-python/test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
                "cifar-100-python/meta": "7973b15100ade9c7d40fb424638fde48"}
CIFAR10_MD5 = {"cifar-10-batches-py/test_batch": "40351d587109b95175f43aff81a1287e",
               "cifar-10-batches-py/batches.meta": "5ff9c542aee3614f3951f8cda6e48888"}
