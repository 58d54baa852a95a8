"""One image's classification result: probabilities over the labels, the top-k, the weights that made it.

Holds `Prediction` (a frozen dataclass) with the notebook's text lines and a JSON-ready dict. No model
code: `clipdemo.service` makes these, `clipdemo.figures` and `clipdemo.exports` turn them into pictures
and files.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import WeightsInfo

__all__ = ["Prediction"]


@dataclass(frozen=True)
class Prediction:
    """One image's result: probabilities over `labels`, and the top-k."""

    labels: tuple[str, ...]
    probs: tuple[float, ...]  # [n_labels], sums to 1
    top: tuple[tuple[str, float], ...]  # best first
    weights: WeightsInfo
    true_label: str | None = None
    cosines: tuple[float, ...] = ()  # [n_labels]: the raw image-prompt cosine similarity of each label

    def cosine(self, label: str) -> float:
        """The cosine similarity of the image and `label`'s prompt(s), in [-1, 1] (NaN when not kept)."""
        return self.cosines[self.labels.index(label)] if self.cosines else float("nan")

    @property
    def true_rank(self) -> int | None:
        """1-based rank of the true label among all labels, or None when unknown or not a label."""
        if self.true_label not in self.labels:
            return None
        p = self.probs[self.labels.index(self.true_label)]
        return 1 + sum(q > p for q in self.probs)

    @property
    def true_prob(self) -> float | None:
        return self.probs[self.labels.index(self.true_label)] if self.true_label in self.labels else None

    def lines(self) -> list[str]:
        """The notebook's text lines: `'            lion: 96.34%'`."""
        return [f"{label:>16s}: {100 * p:.2f}%" for label, p in self.top]

    def as_dict(self) -> dict:
        out = {"weights": {"name": self.weights.name, "sha256": self.weights.sha256, "trained": self.weights.trained,
                           "verified": self.weights.verified},
               "top": [{"label": lab, "prob": p, **({"cosine": self.cosine(lab)} if self.cosines else {})}
                       for lab, p in self.top]}
        if self.true_label is not None:
            out.update(true_label=self.true_label, true_rank=self.true_rank, true_prob=self.true_prob)
        return out
