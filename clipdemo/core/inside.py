"""What happens inside CLIP for one input: attention maps, attention rollout, patches, tokens, label similarity.

Pure functions over a model and tensors. Attention weights are captured by re-running each block's attention with
`need_weights=True`, so the installed `clip` package is never modified; relevancy (Chefer, Gur & Wolf, ICCV 2021)
uses forward passes whose attention probabilities are part of the autograd graph.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .clip_package import tokenizer
from .words import Refusal
from .zeroshot import LOGIT_SCALE

__all__ = ["VisionTrace", "vision_attention", "rollout", "cls_attention_map", "patch_grid", "Token",
           "prompt_tokens", "label_similarity", "vision_forward", "text_forward", "relevance", "image_relevancy",
           "text_relevancy", "Explanation", "explain", "prompt_words"]


@dataclass(frozen=True)
class VisionTrace:
    """One image's pass through the vision tower."""

    attentions: torch.Tensor  # [layers, heads, tokens, tokens] float32; row i = where token i looks (sums to 1)
    block_outputs: tuple[torch.Tensor, ...]  # each [tokens, B=1, width], the residual stream after each block
    features: torch.Tensor  # [1, embed_dim] unnormalised image feature (= model.encode_image)

    @property
    def grid(self) -> int:
        return round((self.attentions.shape[-1] - 1) ** 0.5)


def _vision_tokens(model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    """`model.visual` up to its blocks: `[1, 3, R, R]` -> `[tokens, 1, width]` (patches, class token first,
    positions added, `ln_pre`), sequence-first, as CLIP's blocks expect."""
    v = model.visual
    x = v.conv1(pixels.to(dtype=model.dtype, device=v.conv1.weight.device))  # [1, width, grid, grid]
    x = x.reshape(x.shape[0], x.shape[1], -1).permute(0, 2, 1)  # [1, grid*grid, width]
    cls = v.class_embedding.to(x.dtype) + torch.zeros(x.shape[0], 1, x.shape[-1], dtype=x.dtype, device=x.device)
    x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)  # [1, tokens, width]
    return v.ln_pre(x).permute(1, 0, 2)  # [tokens, 1, width]


@torch.inference_mode()
def vision_attention(model: torch.nn.Module, pixels: torch.Tensor) -> VisionTrace:
    """Run `model.visual` on one preprocessed image `[1, 3, R, R]`, keeping every attention map.

    Each block is computed as `ResidualAttentionBlock.forward` does, except that its attention is
    called with `need_weights=True, average_attn_weights=False`; the tests check that the block
    outputs and the final feature equal the model's own.
    """
    v = model.visual
    x = _vision_tokens(model, pixels)  # [tokens, 1, width]
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
            raise Refusal("layer_range", layers, layer + 1)
        if head is not None and not 0 <= head < heads:
            raise Refusal("head_range", heads, head + 1)
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
    tok = tokenizer()
    ids = tok.encode(prompt)
    sot, eot = tok.encoder["<|startoftext|>"], tok.encoder["<|endoftext|>"]
    if len(ids) + 2 > context_length:
        raise Refusal("tokens_long", len(ids) + 2, context_length)
    out = [Token(0, sot, "<|startoftext|>", "start")]
    out += [Token(i + 1, t, tok.decoder[t].removesuffix("</w>"), "word") for i, t in enumerate(ids)]
    out.append(Token(len(ids) + 1, eot, "<|endoftext|>", "end"))
    return out


def prompt_words(prompt: str) -> list[str]:
    """The prompt's BPE tokens between start and end-of-text: the positions `text_relevancy` scores."""
    return [tok.text for tok in prompt_tokens(prompt)][1:-1]


def label_similarity(text_features: torch.Tensor) -> torch.Tensor:
    """Cosine similarity between labels: `[L, D]` normalised -> `[L, L]`."""
    return text_features @ text_features.T  # [L, L]


# -- label-conditioned relevancy (Chefer, Gur & Wolf, ICCV 2021) -------------------------------------------
def _attend(attn: torch.nn.MultiheadAttention, x: torch.Tensor, mask: torch.Tensor | None,
            probs: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """`nn.MultiheadAttention(x, x, x)` written out, so its probabilities are a tensor of the graph:
    `[T, B, W]` -> (output `[T, B, W]`, probabilities `[B, heads, T, T]`). `probs` replaces them (a test's probe)."""
    t, b, w = x.shape
    heads = attn.num_heads
    q, k, v = torch.nn.functional.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)  # [T, B, W]
    q, k, v = (z.reshape(t, b * heads, w // heads).transpose(0, 1) for z in (q, k, v))  # [B*heads, T, d]
    scores = (q * (w // heads) ** -0.5) @ k.transpose(1, 2)  # [B*heads, T, T]
    if mask is not None:
        scores = scores + mask.to(device=scores.device, dtype=scores.dtype)  # clip keeps it a plain attribute
    p = scores.softmax(dim=-1).reshape(b, heads, t, t) if probs is None else probs
    out = (p.reshape(b * heads, t, t) @ v).transpose(0, 1).reshape(t, b, w)  # [T, B, W]
    return attn.out_proj(out), p


def _blocks(blocks, x: torch.Tensor, probe: dict[int, torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
    maps = []
    for i, block in enumerate(blocks):
        a, p = _attend(block.attn, block.ln_1(x), block.attn_mask, probe.get(i))
        x = x + a
        x = x + block.mlp(block.ln_2(x))
        maps.append(p)
    return x, maps


def vision_forward(model, pixels: torch.Tensor, probe: dict[int, torch.Tensor] | None = None):
    """`model.encode_image` for `[1, 3, R, R]`, also returning each block's attention probabilities
    `[1, heads, T, T]` as graph tensors; `probe` {layer: probabilities} replaces some (for gradient checks)."""
    v = model.visual
    x, maps = _blocks(v.transformer.resblocks, _vision_tokens(model, pixels), probe or {})  # [T, 1, width]
    return v.ln_post(x.permute(1, 0, 2)[:, 0, :]) @ v.proj, maps  # [1, embed_dim]


def text_forward(model, tokens: torch.Tensor, probe: dict[int, torch.Tensor] | None = None, leaf: bool = False):
    """`model.encode_text` for `[1, 77]` tokens, also returning each block's attention probabilities; `leaf`
    starts the graph at the embeddings (so the probabilities have one even when the weights are frozen)."""
    x = model.token_embedding(tokens).to(model.dtype)  # [1, 77, W]
    if leaf:
        x = x.detach().requires_grad_(True)
    x = x + model.positional_embedding.to(model.dtype)
    x, maps = _blocks(model.transformer.resblocks, x.permute(1, 0, 2), probe or {})
    x = model.ln_final(x.permute(1, 0, 2)).to(model.dtype)  # [1, 77, W]
    return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ model.text_projection, maps  # [1, embed_dim]


def relevance(maps: list[torch.Tensor], grads: list[torch.Tensor]) -> torch.Tensor:
    """The relevancy matrix `[T, T]`: from the identity, each layer adds `Ā·R`, where `Ā` is the mean over
    heads of relu(gradient ⊙ attention) (Chefer et al. 2021, eq. 5-6). Row i: what token i's output drew on."""
    t = maps[0].shape[-1]
    r = torch.eye(t, dtype=torch.float32, device=maps[0].device)
    for a, g in zip(maps, grads):
        cam = (g.detach().float() * a.detach().float()).clamp(min=0).mean(dim=1)[0]  # [1, H, T, T] -> [T, T]
        r = r + cam @ r  # [T, T]
    return r


def _logit(feats: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """CLIP's image-text logit: `LOGIT_SCALE * cos(feats[0], other)`; `other` normalised `[D]`."""
    f = feats[0].to(torch.promote_types(feats.dtype, torch.float32))  # fp16 weights: the cosine in fp32
    return LOGIT_SCALE * (f / f.norm()) @ other.to(f)


def image_relevancy(model, pixels: torch.Tensor, text_feature: torch.Tensor) -> tuple[torch.Tensor, float, torch.Tensor]:
    """Which patches the image-text logit drew on: `[1, 3, R, R]` and a normalised text feature `[D]` (one
    prompt's, or a template ensemble's) -> (relevancy `[grid, grid]` >= 0 from the class token's row, the
    logit, the normalised image feature `[D]`)."""
    with torch.enable_grad():
        pixels = pixels.detach().clone().requires_grad_(True)  # the probabilities need a graph, frozen weights or not
        feats, maps = vision_forward(model, pixels)
        logit = _logit(feats, text_feature)
        grads = torch.autograd.grad(logit, maps)
    row = relevance(maps, grads)[0, 1:].cpu()  # [grid*grid]: the class token's row, patches only
    g = round(row.numel() ** 0.5)
    image = feats[0].detach().float()
    return row.reshape(g, g), float(logit.detach()), (image / image.norm()).cpu()


def text_relevancy(model, tokens: torch.Tensor, image_feature: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Which words of a prompt the logit drew on: `[1, 77]` tokens and a normalised image feature `[D]` ->
    (relevancy of the positions between start and end-of-text `[n]` >= 0, from the end-of-text row; logit)."""
    with torch.enable_grad():
        feats, maps = text_forward(model, tokens.to(model.token_embedding.weight.device), leaf=True)
        logit = _logit(feats, image_feature)
        grads = torch.autograd.grad(logit, maps)
    end = int(tokens[0].argmax())
    return relevance(maps, grads)[end, 1:end].cpu(), float(logit.detach())


@dataclass(frozen=True)
class Explanation:
    """Why one image matched one label: relevancy over the patches and over the prompt's words."""

    image: torch.Tensor  # [grid, grid] >= 0, float32 CPU
    words: torch.Tensor  # [n] >= 0: the prompt's positions between start and end-of-text
    logit: float  # LOGIT_SCALE * cos(image, label's text feature)


def explain(model, pixels: torch.Tensor, text_feature: torch.Tensor, tokens: torch.Tensor | None) -> Explanation:
    """Image relevancy for `text_feature` (the label's feature, ensemble or not, from either text tower) and word
    relevancy for one of its prompts (`[1, 77]` CLIP tokens) against the image's own feature: one backward pass
    through each tower. Without `tokens` (a multilingual label: DistilBERT's words are not traced), no words."""
    image, logit, feature = image_relevancy(model, pixels, text_feature)
    words = text_relevancy(model, tokens, feature)[0] if tokens is not None else torch.zeros(0)
    return Explanation(image, words, logit)
