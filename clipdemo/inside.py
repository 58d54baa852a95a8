"""What happens inside CLIP for one input: attention maps, attention rollout, patches, tokens, label similarity.

Holds pure functions over a CLIP model and tensors: `vision_attention` (per-layer, per-head attention
weights captured by re-running each block's attention with `need_weights=True`; the installed `clip`
package is not modified), `rollout`, `cls_attention_map`, `patch_grid`, `prompt_tokens` and
`label_similarity`. Architecture facts (config, parameters, torchinfo) live in `clipdemo.architecture`;
pictures in `clipdemo.figures`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._clip import import_clip

__all__ = ["VisionTrace", "vision_attention", "rollout", "cls_attention_map", "patch_grid", "Token",
           "prompt_tokens", "label_similarity"]


@dataclass(frozen=True)
class VisionTrace:
    """One image's pass through the vision tower."""

    attentions: torch.Tensor  # [layers, heads, tokens, tokens] float32; row i = where token i looks (sums to 1)
    block_outputs: tuple[torch.Tensor, ...]  # each [tokens, B=1, width], the residual stream after each block
    features: torch.Tensor  # [1, embed_dim] unnormalised image feature (= model.encode_image)

    @property
    def grid(self) -> int:
        return round((self.attentions.shape[-1] - 1) ** 0.5)


@torch.inference_mode()
def vision_attention(model: torch.nn.Module, pixels: torch.Tensor) -> VisionTrace:
    """Run `model.visual` on one preprocessed image `[1, 3, R, R]`, keeping every attention map.

    Each block is computed as `ResidualAttentionBlock.forward` does, except that its attention is
    called with `need_weights=True, average_attn_weights=False`; the tests check that the block
    outputs and the final feature equal the model's own.
    """
    v = model.visual
    x = v.conv1(pixels.to(dtype=model.dtype, device=v.conv1.weight.device))  # [1, width, grid, grid]
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # [1, grid*grid, width]
    cls = v.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype, device=x.device)
    x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)  # [1, tokens, width]
    x = v.ln_pre(x).permute(1, 0, 2)  # [tokens, 1, width]: sequence-first, as CLIP's blocks expect
    maps, outs = [], []
    for block in v.transformer.resblocks:
        h = block.ln_1(x)
        a, w = block.attn(h, h, h, need_weights=True, average_attn_weights=False)  # w: [1, heads, T, T]
        x = x + a
        x = x + block.mlp(block.ln_2(x))
        maps.append(w[0].float().cpu())
        outs.append(x)
    x = v.ln_post(x.permute(1, 0, 2)[:, 0, :])  # [1, width] class token
    feats = x @ v.proj  # [1, embed_dim]
    return VisionTrace(torch.stack(maps), tuple(outs), feats)


def rollout(attentions: torch.Tensor, residual: float = 0.5) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020): `[layers, heads, T, T]` -> `[T, T]`, rows sum to 1.

    Heads are averaged, the residual connection is modelled as `residual * I`, rows re-normalised,
    and the layers multiplied from first to last.
    """
    layers, _, t, _ = attentions.shape
    eye = torch.eye(t)
    result = eye
    for layer in range(layers):
        a = attentions[layer].mean(dim=0)  # [T, T]
        a = residual * eye + (1 - residual) * a
        a = a / a.sum(dim=-1, keepdim=True)
        result = a @ result  # [T, T]
    return result


def cls_attention_map(trace: VisionTrace, layer: int | None = None, head: int | None = None) -> torch.Tensor:
    """The class token's attention over the patches as a `[grid, grid]` map.

    Args:
        layer: 0-based layer, or None for the rollout across all layers.
        head: 0-based head, or None for the mean over heads (ignored for the rollout).
    """
    layers, heads, t, _ = trace.attentions.shape
    if layer is None:
        row = rollout(trace.attentions)[0]  # [T]
    else:
        if not 0 <= layer < layers:
            raise ValueError(f"Layer must be 1..{layers}, not {layer + 1}.")
        if head is not None and not 0 <= head < heads:
            raise ValueError(f"Head must be 1..{heads}, not {head + 1}.")
        a = trace.attentions[layer]  # [heads, T, T]
        row = (a.mean(dim=0) if head is None else a[head])[0]  # [T]
    g = trace.grid
    return row[1:].reshape(g, g)  # [grid, grid]; token 0 (the class token itself) left out


def patch_grid(resolution: int, patch: int) -> list[tuple[int, int, int, int, int]]:
    """The patches the conv embedding cuts: [(index, row, col, x0, y0)], row-major, as the tokens are ordered."""
    g = resolution // patch
    return [(r * g + c, r, c, c * patch, r * patch) for r in range(g) for c in range(g)]


@dataclass(frozen=True)
class Token:
    """One position of a tokenised prompt."""

    position: int
    token_id: int
    text: str
    role: str  # "start", "word", "end" (the feature is read here) or "padding"


def prompt_tokens(prompt: str, context_length: int = 77) -> list[Token]:
    """The BPE tokens CLIP sees for `prompt`, start and end-of-text included (padding summarised by the caller)."""
    clip = import_clip()
    tok = clip.clip._tokenizer
    ids = tok.encode(prompt)
    sot, eot = tok.encoder["<|startoftext|>"], tok.encoder["<|endoftext|>"]
    if len(ids) + 2 > context_length:
        raise ValueError(f"The prompt is {len(ids) + 2} tokens long; CLIP reads at most {context_length}.")
    out = [Token(0, sot, "<|startoftext|>", "start")]
    out += [Token(i + 1, t, tok.decoder[t].removesuffix("</w>"), "word") for i, t in enumerate(ids)]
    out.append(Token(len(ids) + 1, eot, "<|endoftext|>", "end"))
    return out


def label_similarity(text_features: torch.Tensor) -> torch.Tensor:
    """Cosine similarity between labels: `[L, D]` normalised -> `[L, L]`."""
    return text_features @ text_features.T  # [L, L]
