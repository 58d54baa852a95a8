"""One checker per input value: where a shell (page, link, API, CLI) takes a value, it calls the one here.

Each returns the value in its checked form or raises a `Refusal` that names the valid range or choices. Label sets
have their own checker (`clipdemo.core.labels.LabelSet.of`); images theirs (`clipdemo.io.images`).
"""

from __future__ import annotations

from .words import Refusal, Text

__all__ = ["MAX_TOP_K", "TEST_SIZE", "DEPTHS", "TOWERS", "whole", "top_k", "cifar_index", "summary_depth", "tower",
           "count"]

MAX_TOP_K = 20  # the most labels one answer lists, in the UI, the CLI and the API alike
TEST_SIZE = 10_000  # images in CIFAR-100's test split
DEPTHS = (1, 4)  # torchinfo summary depths offered
TOWERS = ("visual", "text")


def _number(value: object) -> float:
    """`value` as a float, or NaN when it is none (a bool is not a number here)."""
    if not isinstance(value, bool):
        try:
            return float(value)  # type: ignore[arg-type]
        except (TypeError, ValueError, OverflowError):
            pass
    return float("nan")


def whole(value: object, what: str) -> int:
    """`value` as a whole number (an int, or a float with nothing after the point; not a bool). `what` is the
    key of the value's name in the string tables (`name_top_k`, ...)."""
    number = _number(value)
    if not number.is_integer():  # NaN and infinities are not either
        raise Refusal("not_whole", Text(what), repr(value)[:40])
    return int(number)


def count(value: object, lo: int, hi: int, what: str) -> int:
    """A whole number in lo..hi (how many images, per class, in a batch ...); `what` as for `whole`."""
    n = whole(value, what)
    if not lo <= n <= hi:
        raise Refusal("out_of_range", Text(what), lo, hi, n)
    return n


def top_k(value: object) -> int:
    """How many labels to list: 1..MAX_TOP_K."""
    return count(value, 1, MAX_TOP_K, "name_top_k")


def cifar_index(value: object, size: int = TEST_SIZE) -> int:
    """A CIFAR-100 test image: 0..size-1."""
    n = whole(value, "name_index")
    if not 0 <= n < size:
        raise Refusal("index_range", n, size - 1)
    return n


def summary_depth(value: object) -> int:
    """How deep torchinfo's tables go: DEPTHS[0]..DEPTHS[1]."""
    return count(value, *DEPTHS, "name_depth")


def tower(value: object) -> str:
    """One of the model's two towers."""
    if value not in TOWERS:
        raise Refusal("tower_unknown", repr(value), ", ".join(TOWERS))
    return value  # type: ignore[return-value]


def threshold(value: object) -> float | None:
    """A "none of these" threshold on the best cosine: a number in -1..1, or None (no threshold)."""
    if value is None or value == "":
        return None
    number = _number(value)
    if not -1.0 <= number <= 1.0:  # NaN is not either
        raise Refusal("threshold_range", repr(value)[:40])
    return number


def temperature(value: object) -> float:
    """A calibration temperature dividing the logits: a number in 0.01..100 (1: the notebook's scores)."""
    number = _number(value)
    if not 0.01 <= number <= 100.0:  # NaN is not either
        raise Refusal("temperature_range", repr(value)[:40])
    return number
