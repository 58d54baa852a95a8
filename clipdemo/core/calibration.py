"""How far a zero-shot answer can be trusted, as pure functions over features and scores (issue #26).

No model calls, no I/O: the tasks run these on features the service made. Scores are relative to the labels given:
`softmax` spreads 1 over them whether or not any fits, which is why the "none of these" threshold reads the raw
cosine, never the probability.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .zeroshot import LOGIT_SCALE

__all__ = ["Bin", "reliability", "ece", "fit_temperature", "Threshold", "best_threshold",
           "tip_adapter", "tune_tip", "TIP_ALPHA", "TIP_BETA", "TIP_GRID"]

# Tip-Adapter's own starting values (gaopengcuhk/Tip-Adapter, configs/imagenet.yaml: init_alpha 1.17, init_beta 1).
TIP_ALPHA, TIP_BETA = 1.17, 1.0
# What `tune_tip` chooses from, by leave-one-out on the examples alone: the residual weight from none (zero-shot)
# to strong, at the paper's ImageNet sharpness (5.5, the weaker cache) and at the starting one (1). Weakest first,
# so ties keep the weaker.
TIP_GRID: tuple[tuple[float, float], ...] = tuple((a, b) for a in (0.0, TIP_ALPHA, 3.0, 10.0, 30.0) for b in (5.5, 1.0))


@dataclass(frozen=True)
class Bin:
    """One bin of a reliability diagram: predictions whose confidence lies in [low, high)."""

    low: float
    high: float
    count: int
    confidence: float  # their mean confidence (NaN when empty)
    accuracy: float  # the fraction right (NaN when empty)


def reliability(confidence: torch.Tensor, correct: torch.Tensor, bins: int = 10) -> list[Bin]:
    """`[N]` top-1 confidences in [0, 1] and `[N]` bools -> `bins` equal-width bins (the last one closed at 1)."""
    out = []
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        inside = (confidence >= low) & ((confidence < high) if b < bins - 1 else (confidence <= high))
        n = int(inside.sum())
        out.append(Bin(low, high, n, float(confidence[inside].mean()) if n else math.nan,
                       float(correct[inside].float().mean()) if n else math.nan))
    return out


def ece(confidence: torch.Tensor, correct: torch.Tensor, bins: int = 10) -> float:
    """Expected calibration error: the count-weighted mean of |accuracy - confidence| over the bins."""
    total = len(confidence)
    return sum(b.count / total * abs(b.accuracy - b.confidence) for b in reliability(confidence, correct, bins)
               if b.count)


def _nll(cosines: torch.Tensor, targets: torch.Tensor, temperature: float) -> float:
    logits = LOGIT_SCALE * cosines.double() / temperature  # [N, C]
    return float(torch.nn.functional.cross_entropy(logits, targets))


def fit_temperature(cosines: torch.Tensor, targets: torch.Tensor, low: float = 0.05, high: float = 20.0,
                    steps: int = 60) -> float:
    """The temperature in [low, high] minimising the negative log-likelihood of `targets` `[N]` under
    `softmax(100 * cos / T)` (`[N, C]` cosines): a golden-section search over log T (the likelihood is unimodal in
    it), deterministic and without an optimiser."""
    a, b = math.log(low), math.log(high)
    phi = (math.sqrt(5) - 1) / 2
    c, d = b - phi * (b - a), a + phi * (b - a)
    fc, fd = _nll(cosines, targets, math.exp(c)), _nll(cosines, targets, math.exp(d))
    for _ in range(steps):
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - phi * (b - a)
            fc = _nll(cosines, targets, math.exp(c))
        else:
            a, c, fc = c, d, fd
            d = a + phi * (b - a)
            fd = _nll(cosines, targets, math.exp(d))
    return math.exp((a + b) / 2)


@dataclass(frozen=True)
class Threshold:
    """A cosine below which "none of the labels fits", and how well it separates on the data it came from."""

    cosine: float
    fits_kept: float  # of the images some label fits, the fraction at or above it (true positive rate)
    none_refused: float  # of the images none fits, the fraction below it (true negative rate)

    @property
    def balanced_accuracy(self) -> float:
        return (self.fits_kept + self.none_refused) / 2


def best_threshold(fits: torch.Tensor, none: torch.Tensor) -> Threshold:
    """The best-cosine threshold that maximises balanced accuracy between `[n]` best cosines of images a label fits
    and `[m]` of images none fits (ties: the lower threshold); candidates are the midpoints between neighbours."""
    if not len(fits) or not len(none):
        raise ValueError("both groups need at least one image")
    values = torch.cat([fits, none]).double().sort().values  # [n + m]
    candidates = torch.cat([values[:1] - 1e-6, (values[1:] + values[:-1]) / 2, values[-1:] + 1e-6])
    kept = (fits.double()[None, :] >= candidates[:, None]).double().mean(dim=1)  # [K]
    refused = (none.double()[None, :] < candidates[:, None]).double().mean(dim=1)  # [K]
    best = int(((kept + refused) / 2).argmax())  # the first (lowest) of equal maxima
    return Threshold(float(candidates[best]), float(kept[best]), float(refused[best]))


def tip_adapter(image_feats: torch.Tensor, text_feats: torch.Tensor, keys: torch.Tensor, key_targets: torch.Tensor,
                alpha: float = TIP_ALPHA, beta: float = TIP_BETA, temperature: float = 1.0) -> torch.Tensor:
    """Tip-Adapter's logits: `100 * f W^T + alpha * exp(-beta * (1 - f K^T)) V`, with `[N, D]` normalised image
    features f, `[C, D]` text features W, `[M, D]` normalised example features K and their `[M]` classes (V: their
    one-hot rows). With no examples it is CLIP's own zero-shot logits. `temperature` divides CLIP's term only (where
    a fitted temperature was measured). -> `[N, C]`."""
    clip_logits = LOGIT_SCALE / temperature * image_feats @ text_feats.T  # [N, C]
    if not len(keys):
        return clip_logits
    values = torch.nn.functional.one_hot(key_targets, text_feats.shape[0]).to(image_feats.dtype)  # [M, C]
    affinity = image_feats @ keys.T  # [N, M]
    return clip_logits + alpha * (-beta * (1 - affinity)).exp() @ values  # [N, C]


def tune_tip(text_feats: torch.Tensor, keys: torch.Tensor, key_targets: torch.Tensor,
             grid: tuple[tuple[float, float], ...] = TIP_GRID) -> tuple[float, float]:
    """Tip-Adapter's (alpha, beta) chosen on the examples alone, by leave-one-out: each example is classified by the
    text prototypes `[C, D]` and the other examples `[M, D]`; the pair with the most right answers wins (ties: the
    first, the weakest). With a prompt the examples contradict, it picks a strong weight; with a good one, a weak
    one. Never sees the images a report scores. Without two labels of two examples each, the starting values."""
    counts = torch.bincount(key_targets, minlength=text_feats.shape[0])
    if int((counts > 0).sum()) < 2 or int(counts[counts > 0].min()) < 2:
        return TIP_ALPHA, TIP_BETA  # leave-one-out needs two labels with two examples each: the starting values
    values = torch.nn.functional.one_hot(key_targets, text_feats.shape[0]).to(keys.dtype)  # [M, C]
    clip_logits = LOGIT_SCALE * keys @ text_feats.T  # [M, C]
    affinity = keys @ keys.T  # [M, M]
    best, chosen = -1, (TIP_ALPHA, TIP_BETA)
    for alpha, beta in grid:
        weights = (-beta * (1 - affinity)).exp()
        weights[affinity > 1 - 1e-6] = 0  # an example never votes for itself, nor for a copy of itself
        right = int(((clip_logits + alpha * weights @ values).argmax(dim=-1) == key_targets).sum())
        if right > best:
            best, chosen = right, (alpha, beta)
    return chosen
