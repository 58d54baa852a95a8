"""Does the loaded model reproduce the published figures? The checks, their tolerances, and a result table.

Holds `Check` (one comparison: reference, measured, difference, pass), the pure comparisons
(`top5_check`, `accuracy_check`, `interval_check`, `rollout_check`, `wilson`), `not_real_weights` /
`not_real_data` (a sentence when the files are not the published ones, by SHA-256 / md5), the runs
(`full_checks`: everything `make test-real` and `python -m clipdemo selfcheck` run; `cheap_checks`: the
notebook's index 15 and a stratified 1,000-image sample, what the Space runs after start-up) and
`table`. The figures themselves are `clipdemo.references`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from . import references as ref
from .evaluate import class_names, evaluate, score, select_indices
from .inside import cls_attention_map
from .presets import CIFAR10_CLASSES, CIFAR100_CLASSES, TEMPLATE_SETS
from .progress import ProgressFn
from .scheduler import Priority
from .weights import WeightsInfo, file_digest

__all__ = ["Check", "top5_check", "accuracy_check", "interval_check", "rollout_check", "wilson", "table",
           "not_real_weights", "not_real_data", "full_checks", "cheap_checks", "cifar10_check", "summary", "TOP5_TOL_PP", "ACCURACY_TOL_PP"]

# Index 15's probabilities: the notebook ran fp16 on CUDA. On CUDA fp16 we match its arithmetic: 0.1 points.
# On CPU fp32: fp16 rounds each feature component to 2^-11 relative, which moves a cosine by up to ~5e-4 and
# a logit (100 * cos) by ~0.05; a probability p then moves by at most about p * (1 - p) * 2 * 0.05, which is
# 0.35 points at p = 0.9634 and less for the rest: 0.5 points covers it.
TOP5_TOL_PP = {"cuda": 0.1, "cpu": 0.5}
ACCURACY_TOL_PP = 0.5  # top-1 over the whole split against a published table, as issue #14 sets it
SINGLE_TOL_PP = 3.0  # against "about 62%", the only citable single-prompt figure (an approximate report)
SAMPLE_PER_CLASS = 10  # the Space's cheap check: 10 images of each class, 1,000 in all


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
                 order_ok and worst <= tol_pp, ref.NOTEBOOK_SOURCE)


def accuracy_check(name: str, measured_pct: float, figure: ref.Figure, tol_pp: float | None = ACCURACY_TOL_PP) -> Check:
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


def interval_check(name: str, correct: int, n: int, figure: ref.Figure) -> Check:
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


def not_real_weights(info: WeightsInfo) -> str | None:
    """None for the published ViT-B/32 (by SHA-256), else why the checks cannot run."""
    if not info.trained:
        return "these are random weights; the self-check needs the real ViT-B/32"
    if not info.verified:
        return f"{info.label} is not a known release; the self-check needs the real ViT-B/32 (SHA-256 verified)"
    return None


def _md5(path: Path) -> str | None:
    # torchvision publishes md5 sums: a file identity check, not security
    return file_digest(path, "md5") if path.is_file() else None


def not_real_data(root: Path, md5s: dict[str, str] = ref.CIFAR100_MD5) -> str | None:
    """None when the files under `root` are the published ones (torchvision's md5 sums), else why not."""
    for rel, want in md5s.items():
        got = _md5(root / rel)
        if got != want:
            what = "missing" if got is None else f"md5 {got[:8]}…, not torchvision's {want[:8]}…"
            return f"{root / rel} is {what}: the self-check needs the real dataset"
    return None


def _index15(zs, data, device_kind: str) -> list[Check]:
    pred = zs.predict(data.image(ref.NOTEBOOK_INDEX), CIFAR100_CLASSES, TEMPLATE_SETS["single"].templates, k=5)
    measured = [(lab, 100 * p) for lab, p in pred.top]
    trace = zs.vision_trace(data.image(ref.NOTEBOOK_INDEX), ("cifar100", ref.NOTEBOOK_INDEX))
    return [top5_check(measured, ref.NOTEBOOK_TOP5, TOP5_TOL_PP[device_kind]), rollout_check(cls_attention_map(trace))]


def cheap_checks(zs, data, *, progress: ProgressFn | None = None) -> list[Check]:
    """What the Space shows: index 15, and 1,000 images (10 per class), single prompt, with a 95% interval."""
    checks = _index15(zs, data, zs.device.type)
    indices = select_indices(list(data.dataset.targets), "per-class", SAMPLE_PER_CLASS)
    (res,) = evaluate(zs, data, indices, ("single",), batch_size=zs.bulk_images, progress=progress,
                      priority=Priority.BULK)  # in the background: visitors' calls go in between
    correct = int((res.predicted == res.targets).sum())
    return checks + [interval_check("CIFAR-100 sample, single prompt", correct, res.n, ref.CIFAR100_TOP1_SINGLE)]


def full_checks(zs, data, *, cifar10=None, progress: ProgressFn | None = None, workers: int = 0) -> list[Check]:
    """Everything: index 15, all 10,000 images with one prompt and with the 18 templates (the paper's recipe:
    its class names and templates), and CIFAR-10 when `cifar10` (its test split) is given."""
    checks = _index15(zs, data, zs.device.type)
    indices = list(range(len(data)))
    single, = evaluate(zs, data, indices, ("single",), batch_size=zs.bulk_images * 8, workers=workers,
                       progress=progress)
    ens, = evaluate(zs, data, indices, ("cifar18",), classes=class_names("cifar100-paper"), workers=workers)
    # The single-prompt figure is a user's approximate report ("about 62%"), so its tolerance is loose: 3 points.
    checks += [accuracy_check("CIFAR-100, single prompt", 100 * single.top1, ref.CIFAR100_TOP1_SINGLE,
                              SINGLE_TOL_PP),
               accuracy_check("CIFAR-100, 18 templates", 100 * ens.top1, ref.CIFAR100_TOP1_18),
               accuracy_check("CIFAR-100, 18 templates (other recipe)", 100 * ens.top1, ref.CIFAR100_BENCHMARK, None)]
    return checks + ([cifar10_check(zs, cifar10)] if cifar10 is not None else [])


def cifar10_check(zs, cifar10) -> Check:
    """CIFAR-10's test split (the same wrapper as CIFAR-100's) with the 18 templates, against the paper. Its
    features are not stored: the feature store belongs to CIFAR-100."""
    feats = []
    for first in range(0, len(cifar10), 256):
        pixels = torch.stack([zs.pixels(cifar10.image(i))
                              for i in range(first, min(first + 256, len(cifar10)))])  # [b, 3, R, R]
        feats.append(zs.encode_pixels(pixels))  # [b, D]
    text = zs.text_features(CIFAR10_CLASSES, TEMPLATE_SETS["cifar18"].templates)  # [10, D]
    res = score(torch.cat(feats), torch.tensor(cifar10.dataset.targets), text, setting="cifar18",
                classes=CIFAR10_CLASSES)
    return accuracy_check("CIFAR-10, 18 templates", 100 * res.top1, ref.CIFAR10_TOP1)
