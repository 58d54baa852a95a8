"""Search by text and by image: CLIP's other half, one embedding space for both.

Pure functions of tensors. Search is an exact matmul over at most 10,000 x 512 features here, so no index library
is needed (docs/search.md says what would be past a million).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .checks import count
from .labels import CONTEXT_LENGTH, fill, has_control, normalise, token_count
from .words import Refusal, Text

__all__ = ["SearchQuery", "combine", "nearest", "retrieval_scores", "MAX_RESULTS", "DEFAULT_RESULTS",
           "MAX_QUERY_CHARS", "SEARCH_TEMPLATE", "results"]

MAX_RESULTS = 100  # results one search returns at most (a bound of its own: predict's top-k is 1..20)
DEFAULT_RESULTS = 24
MAX_QUERY_CHARS = 300
SEARCH_TEMPLATE = "a photo of {}"  # put around a query unless it is raw: "a red car" -> "a photo of a red car"


def results(value: object) -> int:
    """How many results to return: 1..MAX_RESULTS."""
    return count(value, 1, MAX_RESULTS, "name_results")


def _text(raw: object, what: str) -> str:
    """A query's text, normalised ("" when none); a Refusal for control characters or an over-long one."""
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise Refusal("search_not_text", Text(what))
    if has_control(raw):
        raise Refusal("search_control", Text(what))
    text = normalise(raw)
    if len(text) > MAX_QUERY_CHARS:
        raise Refusal("search_long", Text(what), len(text), MAX_QUERY_CHARS)
    return text


@dataclass(frozen=True)
class SearchQuery:
    """What a visitor searches for, checked: `text` and `negative` (normalised, "" for none), `raw` (True: the
    text is the prompt as typed; False: it is put into SEARCH_TEMPLATE), and `image_weight` (0..1, how much a
    query image counts beside the text when both are given). Make one with `of`."""

    text: str = ""
    negative: str = ""
    raw: bool = False
    image_weight: float = 0.5

    @classmethod
    def of(cls, text: object = "", negative: object = "", *, raw: bool = False, image_weight: object = 0.5,
           has_image: bool = False) -> SearchQuery:
        """Check a query as typed. The Refusal says what is wrong: nothing to search for, only a negative, a
        text too long for CLIP (77 tokens) or for the box, a weight outside 0..1."""
        query = cls(_text(text, "name_query"), _text(negative, "name_negative"), bool(raw), _weight(image_weight))
        if not query.text and not has_image:
            raise Refusal("search_only_negative" if query.negative else "search_empty")
        for prompt, what in ((query.prompt, "name_query"), (query.negative_prompt, "name_negative")):
            if prompt and (n := token_count(prompt)) > CONTEXT_LENGTH:
                raise Refusal("search_tokens", Text(what), n, CONTEXT_LENGTH)
        return query

    @property
    def prompt(self) -> str:
        """The text the text tower reads for the query ("" when there is no text)."""
        return self._prompt(self.text)

    @property
    def negative_prompt(self) -> str:
        return self._prompt(self.negative)

    def _prompt(self, text: str) -> str:
        return text if not text or self.raw else fill(SEARCH_TEMPLATE, text)


def _weight(value: object) -> float:
    try:
        w = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        w = float("nan")
    if isinstance(value, bool) or not 0.0 <= w <= 1.0:
        raise Refusal("search_weight", repr(value)[:20])
    return w


def combine(text: torch.Tensor | None, image: torch.Tensor | None, negative: torch.Tensor | None = None, *,
            image_weight: float = 0.5, negative_weight: float = 0.5) -> torch.Tensor:
    """One normalised query feature `[D]` from normalised `[D]` parts: the text and the image weighted
    (`(1 - image_weight) * text + image_weight * image`; either alone when the other is None), minus
    `negative_weight` times the negative's feature (rclip's "-" query), normalised again."""
    if text is None and image is None:
        raise Refusal("search_empty")
    if text is None or image is None:
        q = text if image is None else image
    else:
        q = (1.0 - image_weight) * text + image_weight * image
    if negative is not None:
        q = q - negative_weight * negative
    return q / q.norm().clamp_min(1e-12)


def nearest(features: torch.Tensor, query: torch.Tensor, k: int,
            filled: torch.Tensor | None = None) -> tuple[list[int], list[float]]:
    """Exact search: the `k` rows of `features` `[N, D]` with the highest cosine to `query` `[D]` (both
    normalised), best first, among the rows `filled` `[N]` bool marks (all when None); fewer when fewer are
    filled. Ties go to the lower index. Returns (indices, cosines)."""
    cos = features @ query  # [N]
    if filled is not None:
        cos = cos.masked_fill(~filled, float("-inf"))
        k = min(k, int(filled.sum()))
    k = min(k, cos.shape[0])
    if k <= 0:
        return [], []
    # a stable order: sort by (-cos, index), so equal cosines list the lower index first
    order = torch.argsort(-cos, stable=True)[:k]
    return order.tolist(), cos[order].tolist()


def retrieval_scores(features: torch.Tensor, targets: torch.Tensor, queries: torch.Tensor,
                     k: int = 10) -> tuple[float, float]:
    """Text-to-image retrieval by class: query `c` (`queries[c]`, `[C, D]`) should find the images whose target
    is `c` (`features` `[N, D]`, `targets` `[N]`). Returns (precision@k, mean average precision) over the
    classes, each in 0..1. Average precision ranks all N images (ties by index)."""
    cos = queries @ features.T  # [C, N]
    order = torch.argsort(-cos, dim=1, stable=True)  # [C, N]
    relevant = targets[order] == torch.arange(queries.shape[0])[:, None]  # [C, N] bool, in rank order
    precision_k = relevant[:, :k].float().mean(dim=1)  # [C]
    hits = relevant.float().cumsum(dim=1)  # [C, N]
    ranks = torch.arange(1, features.shape[0] + 1, dtype=torch.float32)  # [N]
    ap = (relevant.float() * hits / ranks).sum(dim=1) / relevant.sum(dim=1).clamp_min(1)  # [C]
    return float(precision_k.mean()), float(ap.mean())
