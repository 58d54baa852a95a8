"""Architecture facts of a CLIP model: configuration card, parameter counts, torchinfo summaries, module tree.

Plain values, never pictures (those are `clipdemo.io.figures`); what happens inside one forward pass is
`clipdemo.core.inside`. `TextTower` shares the model's parameters rather than copying them.
"""

from __future__ import annotations

import threading  # only to tell this thread's module forwards from others' (flop_counter); no threads of its own
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.module_tracker import ModuleTracker

from . import checks
from .model import LoadedModel

__all__ = ["TextTower", "config_card", "parameter_split", "tower_summary", "TowerSummary", "module_tree",
           "parameter_tree", "summarize", "tower_input", "flop_counter"]

INDENT = "\u2003"  # an em space: HTML tables keep it where they collapse ordinary spaces


class TextTower(nn.Module):
    """`CLIP.encode_text` as a module, so torchinfo can walk it; shares (does not copy) the parameters."""

    def __init__(self, clip_model: nn.Module):
        super().__init__()
        self.token_embedding = clip_model.token_embedding
        self.positional_embedding = clip_model.positional_embedding
        self.transformer = clip_model.transformer
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # [N, 77] int -> [N, embed_dim]
        dtype = self.text_projection.dtype
        x = self.token_embedding(tokens).type(dtype)  # [N, 77, width]
        x = x + self.positional_embedding.type(dtype)
        x = x.permute(1, 0, 2)  # [77, N, width]
        x = self.transformer(x)
        x = x.permute(1, 0, 2)  # [N, 77, width]
        x = self.ln_final(x).type(dtype)
        return x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ self.text_projection  # [N, embed_dim]


def _count(module_or_params) -> int:
    params = module_or_params.parameters() if isinstance(module_or_params, nn.Module) else module_or_params
    return sum(p.numel() for p in params)


def parameter_split(loaded: LoadedModel) -> dict[str, int]:
    """Parameters per part: vision tower, text tower, logit scale, and the total."""
    m = loaded.model
    vision = _count(m.visual)
    text = _count(TextTower(m))
    total = _count(m)
    return {"vision": vision, "text": text, "logit_scale": total - vision - text, "total": total}


def config_card(loaded: LoadedModel) -> dict[str, object]:
    """The architecture, derived from the loaded weights, as an ordered dict of plain values."""
    c = loaded.config
    split = parameter_split(loaded)
    return {
        "weights": str(loaded.info.label),
        "embed_dim": c.embed_dim,
        "vision": {"width": c.vision_width, "layers": c.vision_layers, "heads": c.vision_heads,
                   "patch_size": c.vision_patch_size, "input_resolution": c.image_resolution,
                   "grid": f"{c.grid}x{c.grid}", "tokens": c.vision_tokens,
                   "patch_embedding": f"Conv2d(3, {c.vision_width}, kernel={c.vision_patch_size}, "
                                      f"stride={c.vision_patch_size}, bias=False)"},
        "text": {"width": c.transformer_width, "layers": c.transformer_layers, "heads": c.transformer_heads,
                 "context_length": c.context_length, "vocab_size": c.vocab_size},
        "parameters": split,
        "device": str(loaded.device),
        "dtype": str(loaded.dtype).removeprefix("torch."),
    }


@dataclass(frozen=True)
class TowerSummary:
    """torchinfo's result for one tower, as data: rows of the table, totals and the printed text; beside
    torchinfo's mult-adds, the FLOPs that torch's FlopCounterMode counted in the same forward pass."""

    tower: str
    depth: int
    columns: tuple[str, ...]
    rows: tuple[tuple, ...]  # (layer, depth, output shape, parameters, mult-adds, FLOPs)
    total_params: int
    total_mult_adds: int
    text: str
    total_flops: int  # FlopCounterMode: 2 x the multiply-adds of every matmul and convolution, attention included
    attention_flops: int  # of those, the ones inside the attention modules (torchinfo's total leaves them out)

    @property
    def rest_mult_adds(self) -> int:
        """What is left when FlopCounterMode's count (as multiply-adds) is reconciled with torchinfo's: plus what
        runs outside any module (a ViT's final `x @ proj`, a bare parameter), minus what torchinfo counts as a
        multiply-add and FlopCounterMode does not (biases, norm scales and embedding lookups)."""
        return self.total_flops // 2 - self.attention_flops // 2 - self.total_mult_adds


def tower_input(tower: str, image_resolution: int, context_length: int, device, dtype) -> torch.Tensor:
    """One input for `tower`: a `[1, 3, R, R]` image of zeros, or `[1, context]` tokens holding only the start and
    end of text (where the text tower reads its feature)."""
    if tower == "visual":
        return torch.zeros(1, 3, image_resolution, image_resolution, dtype=dtype, device=device)
    tokens = torch.zeros(1, context_length, dtype=torch.long, device=device)
    if tokens.device.type != "meta":
        tokens[0, 0], tokens[0, 1] = 49406, 49407  # start-of-text, end-of-text
    return tokens


def _cpu_flash_attention(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    from torch.utils.flop_counter import sdpa_flop_count
    return sdpa_flop_count(query_shape, key_shape, value_shape)  # QK^T and the mix of the values: 2 x 2 B H T T d


def flop_counter():
    """torch's FlopCounterMode, with two changes:
    - it also counts the fused attention kernel PyTorch picks on the CPU
      (`_scaled_dot_product_flash_attention_for_cpu`, which FlopCounterMode does not know). Without it a model on
      the CPU would count its attention products as nothing, while on the meta device (the math path, two bmm) and
      on CUDA (flash or memory-efficient kernels, known) they are counted;
    - its module tracker sees only this thread's modules. FlopCounterMode's own hangs global hooks on every module's
      forward in the process, so another thread's forward (a visitor's prediction, another summary) would put its
      modules among the parents of this thread's ops: same-named rows would be credited with each other's FLOPs."""
    from torch.utils.flop_counter import FlopCounterMode
    counter = FlopCounterMode(display=False, custom_mapping={
        torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_attention})
    counter.mod_tracker = _ThisThreadTracker()
    return counter


class _ThisThreadTracker(ModuleTracker):
    """ModuleTracker whose (process-wide) hooks ignore the forwards of other threads."""

    def __init__(self):
        super().__init__()
        self._thread = threading.get_ident()

    def _fw_pre_hook(self, mod, input) -> None:
        if threading.get_ident() == self._thread:
            super()._fw_pre_hook(mod, input)

    def _fw_post_hook(self, mod, input, output) -> None:
        if threading.get_ident() == self._thread:
            super()._fw_post_hook(mod, input, output)


def summarize(module: nn.Module, data: torch.Tensor, tower: str, depth: int) -> TowerSummary:
    """torchinfo's summary of `module` on `data`, run inside FlopCounterMode: one forward pass gives both counts,
    row by row (a row's FLOPs are everything its module ran, its children included). Works on any device,
    PyTorch's `meta` device included (nothing is allocated there)."""
    import torchinfo

    tower, depth = checks.tower(tower), checks.summary_depth(depth)
    with torch.inference_mode(), flop_counter() as counter:
        stats = torchinfo.summary(module, input_data=[data], depth=int(depth), device=data.device, verbose=0,
                                  col_names=("output_size", "num_params", "mult_adds"), row_settings=("var_names",))
    # FlopCounterMode names a module by its root's class and its path ("VisionTransformer.transformer.resblocks.0")
    root = type(module).__name__
    names = {id(m): f"{root}.{path}" if path else root for path, m in module.named_modules()}
    flops = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    total = counter.get_total_flops()
    attention = sum(flops.get(names[id(m)], 0) for m in module.modules() if _is_attention(m))
    rows = tuple(
        (f"{INDENT * max(li.depth - 1, 0)}{li.var_name or li.class_name} ({li.class_name})", li.depth,
         "x".join(str(d) for d in li.output_size) if li.output_size else "",
         int(stats.total_params) if li.depth == 0 else li.num_params,
         int(stats.total_mult_adds) if li.depth == 0 else li.macs,
         total if li.depth == 0 else flops.get(names.get(id(li.module)), 0))
        for li in stats.summary_list if li.depth <= depth
    )
    return TowerSummary(tower, int(depth), ("layer", "depth", "output shape", "parameters", "mult-adds", "FLOPs"),
                        rows, int(stats.total_params), int(stats.total_mult_adds), str(stats), int(total),
                        int(attention))


def _is_attention(m: nn.Module) -> bool:
    """An attention module whose projections run inside one fused function, out of torchinfo's sight: a
    transformer block's `nn.MultiheadAttention`, or a CLIP ResNet's attention pool."""
    return isinstance(m, nn.MultiheadAttention) or type(m).__name__ == "AttentionPool2d"


def tower_summary(loaded: LoadedModel, tower: str, depth: int = 2) -> TowerSummary:
    """torchinfo summary (with FLOPs) of the loaded model's `visual` tower (input 1x3xRxR) or `text` tower
    (input 1x77 tokens)."""
    tower = checks.tower(tower)
    c, m = loaded.config, loaded.model
    module = m.visual if tower == "visual" else TextTower(m)
    return summarize(module, tower_input(tower, c.image_resolution, c.context_length, loaded.device, loaded.dtype),
                     tower, depth)


def module_tree(loaded: LoadedModel) -> str:
    """`print(model)`: the notebook's module tree."""
    return str(loaded.model)


def parameter_tree(loaded: LoadedModel) -> list[tuple[str, str, str, int]]:
    """Parameter counts as a hierarchy CLIP -> tower -> block -> layer: [(id, label, parent id, count)].

    A node's count is the total of everything under it (plotly's `branchvalues="total"`).
    """
    totals: dict[tuple[str, ...], int] = {}
    for name, p in loaded.model.named_parameters():
        parts = name.split(".")
        if parts[0] == "logit_scale":
            path = ("logit scale",)
        else:
            tower, rest = ("vision tower", parts[1:]) if parts[0] == "visual" else ("text tower", parts)
            if rest[:2] == ["transformer", "resblocks"]:
                path = (tower, f"block {int(rest[2]) + 1}", ".".join(rest[3:-1]))  # attn, mlp.c_fc, ln_1 ...
            else:
                path = (tower, rest[0])  # conv1, ln_pre, token_embedding, proj ...
        for depth in range(len(path) + 1):
            totals[("CLIP", *path[:depth])] = totals.get(("CLIP", *path[:depth]), 0) + p.numel()
    return [(" / ".join(k), k[-1], " / ".join(k[:-1]), n) for k, n in totals.items()]
