"""The OpenAI CLIP family as data, built with no weights, and counted exactly (issue #27, first part).

Holds `Member` (one architecture: the arguments of `clip.model.CLIP`) and `FAMILY`, the nine OpenAI releases;
`Profile` and `profile` (a member built on PyTorch's `meta` device, so that nothing is allocated, its parameters
counted per tower and its FLOPs for one input counted by `torch.utils.flop_counter.FlopCounterMode`, which sees
every aten op, the attention inside `nn.MultiheadAttention` included); and `vit_flops_by_hand`, the same count
written out for a ViT. FLOPs are 2 x multiply-adds (the convention of open_clip's `docs/model_profile.csv` and
of FlopCounterMode); layer norms, softmax and activations are not counted (nor are they there).

The table's source: `clip/model.py`'s `build_model` derives these from a checkpoint's tensor shapes; the CLIP paper
(Radford et al., 2021) lists them in Tables 19 and 20; open_clip's `model_configs/<name>.json` hold the same
values (the tests compare). No I/O, no weights.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from .clip_package import import_clip

__all__ = ["Member", "FAMILY", "Profile", "profile", "vit_flops_by_hand", "CONTEXT"]

CONTEXT = 77  # the text tower's tokens for one input (every member's)


@dataclass(frozen=True)
class Member:
    """One OpenAI CLIP architecture: the arguments of `clip.model.CLIP` (a ResNet's `vision_layers` is a tuple of
    its four stages' blocks, and it has no patch size)."""

    name: str
    embed_dim: int
    image_resolution: int
    vision_layers: int | tuple[int, int, int, int]
    vision_width: int
    vision_patch_size: int | None
    transformer_width: int
    transformer_heads: int
    transformer_layers: int = 12

    @property
    def kind(self) -> str:
        return "ResNet" if isinstance(self.vision_layers, tuple) else "ViT"

    @property
    def tokens(self) -> int:
        """What the image tower attends over: a ViT's patches and class token; a ResNet's final grid (its stride
        is 32) and the attention pool's mean token."""
        side = self.image_resolution // (self.vision_patch_size or 32)
        return side * side + 1

    def kwargs(self) -> dict:
        return dict(embed_dim=self.embed_dim, image_resolution=self.image_resolution,
                    vision_layers=self.vision_layers, vision_width=self.vision_width,
                    vision_patch_size=self.vision_patch_size, context_length=CONTEXT, vocab_size=49408,
                    transformer_width=self.transformer_width, transformer_heads=self.transformer_heads,
                    transformer_layers=self.transformer_layers)


FAMILY: dict[str, Member] = {m.name: m for m in (
    Member("RN50", 1024, 224, (3, 4, 6, 3), 64, None, 512, 8),
    Member("RN101", 512, 224, (3, 4, 23, 3), 64, None, 512, 8),
    Member("RN50x4", 640, 288, (4, 6, 10, 6), 80, None, 640, 10),
    Member("RN50x16", 768, 384, (6, 8, 18, 8), 96, None, 768, 12),
    Member("RN50x64", 1024, 448, (3, 15, 36, 10), 128, None, 1024, 16),
    Member("ViT-B/32", 512, 224, 12, 768, 32, 512, 8),
    Member("ViT-B/16", 512, 224, 12, 768, 16, 512, 8),
    Member("ViT-L/14", 768, 224, 24, 1024, 14, 768, 12),
    Member("ViT-L/14@336px", 768, 336, 24, 1024, 14, 768, 12),
)}


@dataclass(frozen=True)
class Profile:
    """What one member costs: parameters per tower, and FLOPs for one image and for one text of 77 tokens."""

    member: Member
    image_params: int
    text_params: int  # everything but the image tower and CLIP's one learnt temperature
    image_flops: int
    text_flops: int

    @property
    def params(self) -> int:
        return self.image_params + self.text_params


@functools.lru_cache(maxsize=16)
def profile(member: Member) -> Profile:
    """Build `member` on the meta device (no memory, no init) and count it: parameters exactly; FLOPs with
    FlopCounterMode for one `[1, 3, R, R]` image and one `[1, 77]` text. Remembered: the counts are the
    architecture's (the Member is the key)."""
    clip = import_clip()
    with torch.device("meta"):
        model = clip.model.CLIP(**member.kwargs())
    image_params = sum(p.numel() for p in model.visual.parameters())
    text_params = sum(p.numel() for p in model.parameters()) - image_params - model.logit_scale.numel()
    from torch.utils.flop_counter import FlopCounterMode

    r = member.image_resolution
    with FlopCounterMode(display=False) as image:
        model.encode_image(torch.empty(1, 3, r, r, device="meta"))
    with FlopCounterMode(display=False) as text:
        model.encode_text(torch.zeros(1, CONTEXT, dtype=torch.long, device="meta"))
    return Profile(member, image_params, text_params, image.get_total_flops(), text.get_total_flops())


def vit_flops_by_hand(member: Member) -> int:
    """A ViT image tower's FLOPs for one image, written out (2 x multiply-adds): the patch embedding (a `p x p`
    convolution, one per patch), then per block at T tokens of width w: the q, k, v projections (T w 3w), the
    attention scores and their mix of the values (T T w each, over all heads together), the output projection
    (T w w) and the MLP (T w 4w, twice), and last the class token's projection (w x embed)."""
    if member.kind != "ViT":
        raise ValueError(f"{member.name} is not a ViT")
    p, w, t = member.vision_patch_size, member.vision_width, member.tokens
    patches = (member.image_resolution // p) ** 2
    patch_embedding = patches * w * 3 * p * p
    block = t * w * 3 * w + 2 * t * t * w + t * w * w + 2 * t * w * 4 * w
    return 2 * (patch_embedding + member.vision_layers * block + w * member.embed_dim)
