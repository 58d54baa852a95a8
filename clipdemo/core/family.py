"""The OpenAI CLIP family as data, built with no weights, and counted exactly (issue #27, first part).

Members are built on PyTorch's `meta` device, so nothing is allocated. FLOPs are 2 x multiply-adds, as
`FlopCounterMode` and open_clip's `docs/model_profile.csv` count them; layer norms, softmax and activations are not
counted. The values are the CLIP paper's (Tables 19 and 20) and open_clip's `model_configs` (the tests compare).
No I/O, no weights.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from . import checks
from .architecture import TextTower, TowerSummary, flop_counter, summarize, tower_input
from .clip_package import import_clip
from .words import Refusal

__all__ = ["Member", "FAMILY", "Profile", "profile", "vit_flops_by_hand", "CONTEXT", "member", "build_meta",
           "member_summary", "member_card", "Cost", "cpu_costs"]

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

    @property
    def vision_heads(self) -> int:
        """As `clip.model.CLIP` derives them: a ViT's width / 64; a ResNet's attention pool, its width x 32 / 64."""
        return self.vision_width // 64 if self.kind == "ViT" else self.vision_width * 32 // 64

    @property
    def layers_text(self) -> str:
        """The image tower's depth as the table prints it: a ViT's blocks, a ResNet's four stages ("3-4-6-3")."""
        return "-".join(map(str, self.vision_layers)) if self.kind == "ResNet" else str(self.vision_layers)

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


def member(name: object) -> Member:
    """The family member called `name` ("ViT-B/16"), or a Refusal naming the nine."""
    found = FAMILY.get(str(name).strip())
    if found is None:
        raise Refusal("family_unknown", repr(name)[:40], ", ".join(FAMILY))
    return found


def build_meta(member: Member) -> torch.nn.Module:
    """`clip.model.CLIP` of `member` on PyTorch's meta device: every tensor has its shape and dtype and no storage,
    and no initialiser runs. A new one per call: torchinfo hangs hooks on the module it walks."""
    clip = import_clip()
    with torch.device("meta"):
        return clip.model.CLIP(**member.kwargs()).eval()


@functools.lru_cache(maxsize=16)
def profile(member: Member) -> Profile:
    """Build `member` on the meta device (no memory, no init) and count it: parameters exactly; FLOPs with
    FlopCounterMode for one `[1, 3, R, R]` image and one `[1, 77]` text. Remembered: the counts are the
    architecture's (the Member is the key)."""
    model = build_meta(member)
    image_params = sum(p.numel() for p in model.visual.parameters())
    text_params = sum(p.numel() for p in model.parameters()) - image_params - model.logit_scale.numel()
    r = member.image_resolution
    with flop_counter() as image:
        model.encode_image(torch.empty(1, 3, r, r, device="meta"))
    with flop_counter() as text:
        model.encode_text(torch.zeros(1, CONTEXT, dtype=torch.long, device="meta"))
    return Profile(member, image_params, text_params, image.get_total_flops(), text.get_total_flops())


@functools.lru_cache(maxsize=128)
def member_summary(member: Member, tower: str, depth: int) -> TowerSummary:
    """torchinfo's table of one tower of `member`, with FlopCounterMode's FLOPs per row, run on the meta device
    (the tables of any member take no memory and a fraction of a second). Remembered per (member, tower, depth)."""
    tower, depth = checks.tower(tower), checks.summary_depth(depth)
    model = build_meta(member)
    module = model.visual if tower == "visual" else TextTower(model)
    return summarize(module, tower_input(tower, member.image_resolution, CONTEXT, "meta", torch.float32), tower, depth)


def member_card(member: Member) -> dict[str, object]:
    """A member's configuration card, in the shape of `architecture.config_card` (no weights, no device)."""
    p = profile(member)
    vision = {"kind": member.kind, "width": member.vision_width, "layers": member.vision_layers,
              "heads": member.vision_heads, "input_resolution": member.image_resolution, "tokens": member.tokens}
    if member.kind == "ViT":
        patch, grid = member.vision_patch_size, member.image_resolution // member.vision_patch_size
        vision |= {"patch_size": patch, "grid": f"{grid}x{grid}",
                   "patch_embedding": f"Conv2d(3, {member.vision_width}, kernel={patch}, stride={patch}, bias=False)"}
    else:
        vision |= {"stem": "3 convolutions 3x3 (stride 2, 1, 1) and a 2x2 average pool; output stride 32",
                   "grid": f"{member.image_resolution // 32}x{member.image_resolution // 32}"}
    return {"weights": f"none: {member.name} as an architecture only, built on PyTorch's meta device",
            "embed_dim": member.embed_dim, "vision": vision,
            "text": {"width": member.transformer_width, "layers": member.transformer_layers,
                     "heads": member.transformer_heads, "context_length": CONTEXT, "vocab_size": 49408},
            "parameters": {"vision": p.image_params, "text": p.text_params, "logit_scale": 1, "total": p.params + 1},
            "flops": {"visual": p.image_flops, "text": p.text_flops},
            "device": "meta", "dtype": "float32"}


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


@dataclass(frozen=True)
class Cost:
    """One ViT image tower's time for one image on a CPU: measured (`make bench`) or estimated from FLOPs."""

    member: Member
    ms: float
    fraction: float  # of the machine's fp32 matmul rate: achieved GFLOP/s / matmul GFLOP/s
    estimated: bool


def cpu_costs(measured_ms: dict[str, float], matmul_gflops: float) -> dict[str, Cost]:
    """Every ViT's cost per image from the ones measured: a measured ViT as it is; another at the matmul fraction of
    the measured ViT nearest to it in FLOPs (the larger the model, the closer to a long matmul it runs, so this
    errs slow for the largest). Empty when nothing was measured."""
    def rate(name: str) -> float:  # GFLOP/s achieved
        return profile(FAMILY[name]).image_flops / 1e9 / (measured_ms[name] / 1000)

    known = [n for n in measured_ms if n in FAMILY and measured_ms[n] > 0]
    costs = {}
    for name, m in FAMILY.items():
        if m.kind != "ViT" or not known:
            continue
        gflops = profile(m).image_flops / 1e9
        if name in known:
            costs[name] = Cost(m, measured_ms[name], rate(name) / matmul_gflops, False)
        else:
            near = min(known, key=lambda n: abs(profile(FAMILY[n]).image_flops / 1e9 - gflops))
            costs[name] = Cost(m, 1000 * gflops / rate(near), rate(near) / matmul_gflops, True)
    return costs
