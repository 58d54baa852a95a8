"""Does the loaded model reproduce the published figures? The figures, the checks, and a result table.

Every figure is quoted with its source, not measured by this project. The real CIFAR files are recognised by the
md5 sums torchvision publishes, so "real data" is checked rather than assumed.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core.inside import cls_attention_map
from ..core.labels import CIFAR10_CLASSES, LabelSet
from ..core.model import WeightsInfo
from ..core.words import Progress, ProgressFn, Text
from ..io.cifar import Cifar100
from ..serving.service import Priority, ZeroShot
from ..serving.settings import Settings
from ..weights.sources import file_digest
from .classify import predict_image
from .evaluate import Evaluation, evaluate, run, score
from .search import retrieval

log = logging.getLogger(__name__)

__all__ = ["Check", "top5_check", "accuracy_check", "interval_check", "rollout_check", "wilson", "table",
           "not_real_weights", "not_real_data", "full_checks", "cheap_checks", "background_checks", "cifar10_check", "summary",
           "TOP5_TOL_PP", "ACCURACY_TOL_PP", "Figure", "NOTEBOOK_INDEX", "NOTEBOOK_TOP5", "CIFAR100_MD5", "CIFAR10_MD5"]

# Index 15's probabilities: the notebook ran fp16 on CUDA. On CUDA fp16 we match its arithmetic: 0.1 points.
# On CPU fp32: fp16 rounds each feature component to 2^-11 relative, which moves a cosine by up to ~5e-4 and
# a logit (100 * cos) by ~0.05; a probability p then moves by at most about p * (1 - p) * 2 * 0.05, which is
# 0.35 points at p = 0.9634 and less for the rest: 0.5 points covers it.
TOP5_TOL_PP = {"cuda": 0.1, "cpu": 0.5}
ACCURACY_TOL_PP = 0.5  # top-1 over the whole split against a published table, as issue #14 sets it
SINGLE_TOL_PP = 3.0  # against "about 62%", the only citable single-prompt figure (an approximate report)
SAMPLE_PER_CLASS = 10  # the Space's cheap check: 10 images of each class, 1,000 in all


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


@dataclass(frozen=True)
class Check:
    """One comparison with a published figure; `passed` is None for a row shown for information only."""

    name: str
    reference: str
    measured: str
    difference: str
    passed: bool | None
    source: str = ""


def top5_check(measured: list[tuple[str, float]], reference: tuple[tuple[str, float], ...], tol_pp: float,
               name: str = "notebook, index 15") -> Check:
    """Same five labels in the same order (two neighbours whose reference probabilities differ by less than
    `tol_pp` may swap: that order is below what the tolerance can tell), each probability within `tol_pp`."""
    got = dict(measured[:5])
    labels, want = [lab for lab, _ in measured[:5]], [lab for lab, _ in reference]
    order_ok = labels == want or (sorted(labels) == sorted(want) and all(
        a == b or abs(dict(reference)[a] - dict(reference)[b]) < tol_pp for a, b in zip(labels, want)))
    worst = max((abs(got[lab] - p) for lab, p in reference if lab in got), default=math.inf)
    return Check(name, ", ".join(f"{lab} {p:.2f}%" for lab, p in reference),
                 ", ".join(f"{lab} {p:.2f}%" for lab, p in measured[:5]),
                 f"max {worst:.2f} pts" + ("" if order_ok else "; labels or order differ"),
                 order_ok and worst <= tol_pp, NOTEBOOK_SOURCE)


def accuracy_check(name: str, measured_pct: float, figure: Figure, tol_pp: float | None = ACCURACY_TOL_PP) -> Check:
    """Top-1 within `tol_pp` points of the figure (`tol_pp=None`: shown for information, not a pass/fail)."""
    diff = measured_pct - figure.value
    return Check(name, f"{figure.value:.2f}%", f"{measured_pct:.2f}%", f"{diff:+.2f} pts",
                 None if tol_pp is None else abs(diff) <= tol_pp, figure.source)


def wilson(correct: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95% for z = 1.96) of a proportion, as fractions."""
    if n == 0:
        return 0.0, 1.0
    p = correct / n
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def interval_check(name: str, correct: int, n: int, figure: Figure) -> Check:
    """A sample's accuracy with its 95% interval; passes when the figure lies inside the interval."""
    lo, hi = wilson(correct, n)
    inside = 100 * lo <= figure.value <= 100 * hi
    return Check(name, f"{figure.value:.2f}%", f"{100 * correct / n:.1f}% (95% CI {100 * lo:.1f}-{100 * hi:.1f}%, "
                 f"n={n:,})", "inside the interval" if inside else "outside the interval", inside, figure.source)


def rollout_check(cls_map: torch.Tensor) -> Check:
    """A weak sanity check: the class token's rollout `[g, g]` puts more mass on the middle third of the image
    (where index 15's lion is) than on its four corner patches, on average per patch."""
    g = cls_map.shape[0]
    lo, hi = g // 3, g - g // 3
    corner_cells = cls_map[[0, 0, -1, -1], [0, -1, 0, -1]]  # [4]: top-left, top-right, bottom-left, bottom-right
    middle, corners = cls_map[lo:hi, lo:hi].mean().item(), corner_cells.mean().item()
    return Check("attention rollout, index 15", "middle > corners", f"middle {middle:.4f}, corners {corners:.4f}",
                 f"ratio {middle / max(corners, 1e-12):.2f}", middle > corners, "weak sanity check (see the docstring)")


def summary(checks: list[Check]) -> list[str]:
    """One line per check for people: the Space's About tab and status tooltip."""
    lines = []
    for c in checks:
        mark = {True: "✓", False: "⚠️ does not match", None: ""}[c.passed]
        if c.name.startswith("notebook"):
            lion = c.reference.split(",")[0]
            ours = c.measured.split(",")[0].replace("lion ", "")
            lines.append(f"Reproduces the notebook: {lion} (ours {ours}) {mark}")
        else:
            lines.append(f"{c.name}: {c.measured}; published {c.reference} {mark}")
    return lines


def table(checks: list[Check]) -> str:
    """A plain-text table: check, reference, measured, difference, pass."""
    rows = [("check", "reference", "measured", "difference", "pass")] + [
        (c.name, c.reference, c.measured, c.difference, {True: "yes", False: "NO", None: "info"}[c.passed])
        for c in checks]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)


def not_real_weights(info: WeightsInfo) -> Text | None:
    """None for the published ViT-B/32 (by SHA-256), else why the checks cannot run."""
    if not info.trained:
        return Text("selfcheck_random")
    if not info.verified:
        return Text("selfcheck_unverified", info.label)
    return None


def _md5(path: Path) -> str | None:
    # torchvision publishes md5 sums: a file identity check, not security
    return file_digest(path, "md5") if path.is_file() else None


def not_real_data(root: Path, md5s: dict[str, str] = CIFAR100_MD5) -> Text | None:
    """None when the files under `root` are the published ones (torchvision's md5 sums), else why not."""
    for rel, want in md5s.items():
        got = _md5(root / rel)
        if got != want:
            what = Text("selfcheck_missing") if got is None else Text("selfcheck_md5", got[:8], want[:8])
            return Text("selfcheck_not_real_data", root / rel, what)
    return None


def _index15(zs: ZeroShot, data: Cifar100) -> list[Check]:
    image = data.image(NOTEBOOK_INDEX)
    pred = predict_image(zs, image, LabelSet.preset("cifar100", "single"), k=5)
    measured = [(lab, 100 * p) for lab, p in pred.top]
    trace = zs.inside.vision_trace(image, ("cifar100", NOTEBOOK_INDEX))
    return [top5_check(measured, NOTEBOOK_TOP5, TOP5_TOL_PP[zs.loaded.device.type]),
            rollout_check(cls_attention_map(trace))]


def cheap_checks(zs: ZeroShot, data: Cifar100) -> list[Check]:
    """What the Space shows: index 15, and 1,000 images (10 per class), single prompt, with a 95% interval. The
    images are encoded as bulk work, so visitors' calls go in between."""
    checks = _index15(zs, data)
    (res,) = evaluate(zs, data, Evaluation("per-class", SAMPLE_PER_CLASS, templates="single")).results
    correct = int((res.predicted == res.targets).sum())
    return checks + [interval_check("CIFAR-100 sample, single prompt", correct, res.n, CIFAR100_TOP1_SINGLE)]


def background_checks(zs: ZeroShot, data: Cifar100, settings: Settings) -> list[Check] | None:
    """The Space's self-check after start-up (what `Runtime` runs): `cheap_checks` on the real weights and data
    only, and where start-up may run the model (not on ZeroGPU); None otherwise. A failure to run is logged and
    shown as a failed check, never raised."""
    if not zs.path.warm_up or not_real_weights(zs.loaded.info) or not_real_data(settings.data_root):
        return None
    try:
        checks = cheap_checks(zs, data)
        log.info("self-check:\n%s", table(checks))
        return checks
    except Exception as exc:  # noqa: BLE001 - a self-check must never take the Space down
        log.exception("the self-check could not run")
        return [Check("self-check", "-", f"could not run: {exc}", "-", False)]


def full_checks(zs: ZeroShot, data: Cifar100, *, cifar10: Cifar100 | None = None,
                progress: ProgressFn | None = None, workers: int = 0) -> list[Check]:
    """Everything: index 15, all 10,000 images with one prompt and with the 18 templates (the paper's recipe:
    its class names and templates), and CIFAR-10 when `cifar10` (its test split) is given. `progress` sees
    each step of the encoding."""
    checks = _index15(zs, data)
    single = ens = None
    for step in run(zs, data, Evaluation("all", templates="single"), batch_size=zs.bulk_images * 8, workers=workers,
                    priority=Priority.INTERACTIVE):
        if isinstance(step, Progress):
            if progress:
                progress(step)
        else:
            (single,) = step.results
    (ens,) = evaluate(zs, data, Evaluation("all", templates="cifar18", spelling="cifar100-paper")).results
    # The single-prompt figure is a user's approximate report ("about 62%"), so its tolerance is loose: 3 points.
    checks += [accuracy_check("CIFAR-100, single prompt", 100 * single.top1, CIFAR100_TOP1_SINGLE,
                              SINGLE_TOL_PP),
               accuracy_check("CIFAR-100, 18 templates", 100 * ens.top1, CIFAR100_TOP1_18),
               accuracy_check("CIFAR-100, 18 templates (other recipe)", 100 * ens.top1, CIFAR100_BENCHMARK, None)]
    return checks + retrieval_checks(zs, data) + ([cifar10_check(zs, cifar10)] if cifar10 is not None else [])


# Text-to-image retrieval on CIFAR-100 has no published figure for this recipe: the rows are shown for
# information, with chance beside them; `make test-real` asserts these floors (far above chance, below any
# plausible real value) until a run on the real files records the measured values to keep them from regressing.
RETRIEVAL_FLOORS = {"P@10": 0.25, "mAP": 0.15}


def retrieval_checks(zs: ZeroShot, data: Cifar100) -> list[Check]:
    """Text-to-image retrieval over all 10,000 test images (their features must be stored): each class's "a photo
    of a {class}" query, precision@10 and mean average precision over the 100 classes, beside chance."""
    p10, ap = retrieval(zs, data, k=10)
    chance = 100 / len(data.classes)
    source = "no published figure: shown for information (chance beside it)"
    return [Check("CIFAR-100 text-to-image retrieval, P@10", f"chance {chance:.2f}%", f"{100 * p10:.2f}%",
                  f"{100 * p10 - chance:+.2f} pts", None, source),
            Check("CIFAR-100 text-to-image retrieval, mAP", f"chance {chance:.2f}%", f"{100 * ap:.2f}%",
                  f"{100 * ap - chance:+.2f} pts", None, source)]


def cifar10_check(zs: ZeroShot, cifar10: Cifar100) -> Check:
    """CIFAR-10's test split (the same wrapper as CIFAR-100's) with the 18 templates, against the paper. Its
    features are not stored: the feature store belongs to CIFAR-100."""
    feats, step = [], zs.bulk_images  # bulk chunks, so visitors' predictions go in between
    for first in range(0, len(cifar10), step):
        images = [cifar10.image(i) for i in range(first, min(first + step, len(cifar10)))]
        feats.append(zs.image_features(images, Priority.BULK))  # [b, D]
    text = zs.text_features(LabelSet.of(CIFAR10_CLASSES, LabelSet.preset(templates="cifar18").templates))  # [10, D]
    res = score(torch.cat(feats), torch.tensor(cifar10.targets), text, setting="cifar18", classes=CIFAR10_CLASSES)
    return accuracy_check("CIFAR-10, 18 templates", 100 * res.top1, CIFAR10_TOP1)
