"""Timing side by side on a noisy machine: baseline and ours interleaved (A B A B ...), min/median/max."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


def once_ms(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return 1000 * (time.perf_counter() - t)


def p95(values: list[float]) -> float:
    """The 95th percentile (nearest rank below), NaN for none: the figure the load benches report beside p50."""
    ordered = sorted(values)
    return ordered[int(0.95 * (len(ordered) - 1))] if ordered else float("nan")


def spread(ms: list[float]) -> str:
    """'min / median / max ms' of a list of timings."""
    return f"{min(ms):,.2f} / {statistics.median(ms):,.2f} / {max(ms):,.2f} ms"


@dataclass
class Paired:
    """Timings of a baseline and of ours, taken in turns so that drifts of the machine hit both alike."""

    base: list[float]
    ours: list[float]

    @property
    def ratio(self) -> float:
        return statistics.median(self.base) / statistics.median(self.ours)


def paired(base: Callable[[], object], ours: Callable[[], object], reps: int, warmup: int = 1,
           ours_per_base: int = 1) -> Paired:
    """Run `base` and `ours` in turns (ours `ours_per_base` times per baseline run, for cheap ones)."""
    for _ in range(warmup):
        base()
        ours()
    out = Paired([], [])
    for _ in range(reps):
        out.base.append(once_ms(base))
        out.ours.extend(once_ms(ours) for _ in range(ours_per_base))
    return out


def report(name: str, what: str, p: Paired) -> float:
    """Print one figure: both sides' min/median/max and the ratio of medians; returns the ratio."""
    print(f"{name}: {what}\n    baseline {spread(p.base)} (n={len(p.base)}) vs ours {spread(p.ours)} "
          f"(n={len(p.ours)}) -> {p.ratio:.2f}x", flush=True)
    return p.ratio
