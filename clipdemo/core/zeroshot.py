"""Zero-shot classification math, as pure functions over a CLIP model and tensors, and its result.

Tokenisation, exact short-context text encoding (in chunks by cost), prompt features and their ensemble per
label, top-k, and `Prediction`: one image's result, with the notebook's lines and the one JSON shape every shell
gives. Turning features into probabilities is `tasks.classify.answer`'s, in one place. No caching, no I/O and no
UI: the service (`clipdemo.serving.service`) runs these in model calls and caches what they make; nothing here
mutates its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .clip_package import import_clip
from .model import WeightsInfo

__all__ = ["tokenize", "token_lengths", "cost_chunks", "encode_text", "prompt_features", "ensemble", "top_k", "normalise", "Prediction",
           "LOGIT_SCALE"]

LOGIT_SCALE = 100.0  # the notebook's fixed temperature (CLIP's learned scale is ~100 as well)


def tokenize(prompts: list[str], context_length: int = 77) -> torch.Tensor:
    """CLIP BPE tokens, zero-padded: `[n_prompts, context_length]` int."""
    return import_clip().tokenize(prompts, context_length=context_length)


def token_lengths(tokens: torch.Tensor) -> list[int]:
    """Each prompt's length in tokens, start and end-of-text included: `[N, 77]` -> N ints (what `encode_text`
    computes over: a chunk costs its prompts times its longest)."""
    return (tokens.argmax(dim=-1) + 1).tolist()  # end-of-text has the largest token id


def cost_chunks(lengths: list[int], budget: float, most: int) -> list[slice]:
    """Consecutive chunks of prompts whose cost, prompts x the chunk's longest (each chunk is padded to its
    longest), stays within `budget` tokens, and at most `most` prompts; a prompt over the budget alone is a chunk
    of one. Every prompt in exactly one chunk, in order."""
    chunks, first, longest = [], 0, 0
    for i, n in enumerate(lengths):
        wider = max(longest, n)
        if i > first and ((i - first + 1) * wider > budget or i - first >= most):
            chunks.append(slice(first, i))
            first, wider = i, n
        longest = wider
    if lengths:
        chunks.append(slice(first, len(lengths)))
    return chunks


def encode_text(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """`model.encode_text(tokens)`, computed over only the first L positions (L = longest prompt).

    Exact, not approximate: CLIP's text transformer is causal (position i sees 0..i) and the feature
    is read at the end-of-text token, so positions past the longest prompt never influence a result.

    Args:
        tokens: `[N, 77]` int, as `clip.tokenize` makes them.
    Returns:
        `[N, embed_dim]` unnormalised text features, in the model's dtype.
    """
    eot = tokens.argmax(dim=-1)  # [N] end-of-text has the largest token id
    length = int(eot.max()) + 1
    tokens = tokens[:, :length]  # [N, L]
    dtype = model.dtype
    x = model.token_embedding(tokens).type(dtype)  # [N, L, width]
    x = x + model.positional_embedding[:length].type(dtype)
    x = x.permute(1, 0, 2)  # [L, N, width]: nn.MultiheadAttention here is sequence-first
    mask = model.build_attention_mask()[:length, :length].to(device=x.device, dtype=x.dtype)  # [L, L] causal
    for block in model.transformer.resblocks:  # ResidualAttentionBlock.forward, with the sliced mask
        h = block.ln_1(x)
        x = x + block.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
        x = x + block.mlp(block.ln_2(x))
    x = x.permute(1, 0, 2)  # [N, L, width]
    x = model.ln_final(x).type(dtype)
    return x[torch.arange(x.shape[0]), eot] @ model.text_projection  # [N, embed_dim]


def normalise(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm: `[..., D]` -> `[..., D]` (a new tensor; the input is untouched)."""
    return x / x.norm(dim=-1, keepdim=True)


@torch.inference_mode()
def prompt_features(model: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """L2-normalised features of tokenised prompts: `[b, 77]` int -> `[b, embed_dim]` float32 on CPU."""
    device = next(model.parameters()).device
    return normalise(encode_text(model, tokens.to(device)).float()).cpu()


def ensemble(prompt_feats: torch.Tensor, n_labels: int, n_templates: int) -> torch.Tensor:
    """One feature per label from its prompts' normalised features (label-major `[L * T, D]` -> `[L, D]`).

    With several templates, the label's prompts are averaged and the mean normalised again (CLIP's
    prompt-ensembling notebook); with one, the prompt's feature is the label's.
    """
    feats = prompt_feats.reshape(n_labels, n_templates, -1)  # [L, T, D]
    if n_templates == 1:
        return feats[:, 0]  # [L, D], already normalised
    return normalise(feats.mean(dim=1))  # [L, D]


def top_k(probs: torch.Tensor, labels: tuple[str, ...], k: int) -> list[tuple[str, float]]:
    """The `k` most probable labels of one image: `[L]` probabilities -> [(label, p), ...], best first."""
    if probs.dim() != 1 or probs.shape[0] != len(labels):
        raise ValueError(f"probs must be [n_labels={len(labels)}], got {tuple(probs.shape)}")
    k = min(k, len(labels))  # k is checked where a shell takes it (core.checks.top_k)
    values, indices = probs.topk(k)
    return [(labels[i], float(v)) for v, i in zip(values.tolist(), indices.tolist())]


@dataclass(frozen=True)
class Prediction:
    """One image's result: probabilities over `labels`, the raw cosines, and the top-k."""

    labels: tuple[str, ...]
    probs: tuple[float, ...]  # [n_labels], sums to 1
    top: tuple[tuple[str, float], ...]  # best first
    weights: WeightsInfo
    true_label: str | None = None
    cosines: tuple[float, ...] = ()  # [n_labels]: the raw image-prompt cosine similarity of each label

    @classmethod
    def of(cls, cosines: torch.Tensor, probs: torch.Tensor, labels: tuple[str, ...], k: int, weights: WeightsInfo,
           true_label: str | None = None) -> Prediction:
        """From one image's `[L]` cosines and probabilities (a row of `tasks.classify.answer`)."""
        return cls(tuple(labels), tuple(probs.tolist()), tuple(top_k(probs, tuple(labels), k)), weights, true_label,
                   tuple(cosines.tolist()))

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

    def rows(self, threshold: float | None = None) -> list[dict]:
        """The top-k as the API, the CLI and the files give it: `[{label, score, cosine}]`, best first (the Hugging
        Face zero-shot-image-classification schema, plus the cosine); with a `threshold` on the cosine, each row
        also says whether its label `fits` (none fitting: "none of these")."""
        rows = [{"label": lab, "score": p, "cosine": self.cosine(lab)} for lab, p in self.top]
        return rows if threshold is None else [{**r, "fits": r["cosine"] >= threshold} for r in rows]

    def fits(self, threshold: float) -> bool:
        """Whether any label fits: the best cosine reaches `threshold` (else the answer is "none of these")."""
        return max(self.cosines) >= threshold

    def lines(self) -> list[str]:
        """The notebook's text lines: `'            lion: 96.34%'`."""
        return [f"{label:>16s}: {100 * p:.2f}%" for label, p in self.top]

    def as_dict(self) -> dict:
        out = {"weights": self.weights.as_json(), "top": self.rows()}
        if self.true_label is not None:
            out.update(true_label=self.true_label, true_rank=self.true_rank, true_prob=self.true_prob)
        return out
