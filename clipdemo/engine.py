"""Zero-shot classification math, as pure functions over a CLIP model and tensors.

Holds: tokenisation, exact short-context text encoding, label text features (single prompt or
prompt ensemble), image features, `softmax(100 * cos)` probabilities and top-k. Holds no caching,
no I/O and no UI (see `clipdemo.service`); nothing here mutates its inputs.
"""

from __future__ import annotations

import torch

from ._clip import import_clip
from .progress import ProgressFn
from .prompts import build_prompts

__all__ = ["tokenize", "encode_text", "prompt_features", "ensemble", "text_features", "image_features", "probabilities", "scores", "top_k", "normalise",
           "LOGIT_SCALE", "MAX_TOP_K", "check_top_k"]

LOGIT_SCALE = 100.0  # the notebook's fixed temperature (CLIP's learned scale is ~100 as well)
MAX_TOP_K = 20  # the most labels one answer lists, in the UI, the CLI and the API alike


def tokenize(prompts: list[str], context_length: int = 77) -> torch.Tensor:
    """CLIP BPE tokens, zero-padded: `[n_prompts, context_length]` int."""
    return import_clip().tokenize(prompts, context_length=context_length)


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


@torch.inference_mode()
def text_features(model: torch.nn.Module, labels: tuple[str, ...], templates: tuple[str, ...], *,
                  device: torch.device | str = "cpu", batch_size: int = 256,
                  progress: ProgressFn | None = None) -> torch.Tensor:
    """One L2-normalised feature per label: `[n_labels, embed_dim]` float32 on CPU (see `ensemble`)."""
    prompts = build_prompts(labels, templates)  # validates; [n_labels * n_templates]
    tokens = tokenize(prompts)  # [P, 77]
    chunks = []
    for start in range(0, len(prompts), batch_size):
        chunks.append(prompt_features(model, tokens[start:start + batch_size]))  # [b, D]
        if progress:
            progress(min(start + batch_size, len(prompts)), len(prompts), "encoding prompts")
    return ensemble(torch.cat(chunks), len(labels), len(templates))  # [n_labels, D]


@torch.inference_mode()
def image_features(model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """L2-normalised image features: `[B, 3, R, R]` preprocessed pixels -> `[B, embed_dim]` float32 on CPU."""
    device = next(model.parameters()).device
    feats = model.encode_image(pixels.to(device=device, dtype=model.dtype))  # [B, D]
    return normalise(feats.float()).cpu()


def probabilities(image_feats: torch.Tensor, text_feats: torch.Tensor, scale: float = LOGIT_SCALE) -> torch.Tensor:
    """`softmax(scale * image @ text.T)`: `[B, D]`, `[L, D]` (both normalised) -> `[B, L]`."""
    return scores(image_feats, text_feats, scale)[1]


def scores(image_feats: torch.Tensor, text_feats: torch.Tensor,
           scale: float = LOGIT_SCALE) -> tuple[torch.Tensor, torch.Tensor]:
    """The cosines `image @ text.T` and the probabilities `softmax(scale * cosines)`: `[B, D]`, `[L, D]` (both
    normalised) -> (`[B, L]`, `[B, L]`)."""
    cosines = image_feats @ text_feats.T  # [B, L]
    return cosines, (scale * cosines).softmax(dim=-1)


def top_k(probs: torch.Tensor, labels: tuple[str, ...], k: int) -> list[tuple[str, float]]:
    """The `k` most probable labels of one image: `[L]` probabilities -> [(label, p), ...], best first."""
    if probs.dim() != 1 or probs.shape[0] != len(labels):
        raise ValueError(f"probs must be [n_labels={len(labels)}], got {tuple(probs.shape)}")
    k = max(1, min(int(k), len(labels)))
    values, indices = probs.topk(k)
    return [(labels[i], float(v)) for v, i in zip(values.tolist(), indices.tolist())]


def check_top_k(k: object) -> int:
    """`k` as a whole number in 1..MAX_TOP_K; ValueError names the range otherwise."""
    try:
        value = int(k)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise ValueError(f"Top-k must be a whole number between 1 and {MAX_TOP_K}.") from None
    if isinstance(k, float) and not k.is_integer():
        raise ValueError(f"Top-k must be a whole number between 1 and {MAX_TOP_K}, not {k}.")
    if not 1 <= value <= MAX_TOP_K:
        raise ValueError(f"Top-k must be between 1 and {MAX_TOP_K}, not {value}.")
    return value
