"""The CLIP family (issue #27, first part): every OpenAI architecture built on the meta device, its parameters and
FLOPs against open_clip's published profile, ViT-B/32's FLOPs against the hand count, nothing allocated, the
table in the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from clipdemo.core.family import FAMILY, profile, vit_flops_by_hand

ROOT = Path(__file__).resolve().parent.parent

# open_clip's docs/model_profile.csv (mlfoundations/open_clip): name -> (image Mparams, text Mparams, image GFLOPs,
# text GFLOPs). Its convention, and FlopCounterMode's: FLOPs = 2 x multiply-adds; parameters in millions, 2
# decimals; the text tower is everything but the image tower (CLIP's learnt temperature left out).
PUBLISHED = {
    "RN50": (38.32, 63.69, 12.22, 5.96), "RN101": (56.26, 63.43, 19.54, 5.96), "RN50x4": (87.14, 91.16, 42.56, 9.27),
    "RN50x16": (167.33, 123.65, 149.39, 13.3), "RN50x64": (420.38, 202.88, 529.11, 23.55),
    "ViT-B/32": (87.85, 63.43, 8.82, 5.96), "ViT-B/16": (86.19, 63.43, 35.13, 5.96),
    "ViT-L/14": (303.97, 123.65, 162.03, 13.3), "ViT-L/14@336px": (304.29, 123.65, 381.92, 13.3),
}


@pytest.mark.parametrize("name", list(FAMILY))
def test_every_member_counts_as_open_clip_publishes(name):
    p = profile(FAMILY[name])
    counted = (round(p.image_params / 1e6, 2), round(p.text_params / 1e6, 2), round(p.image_flops / 1e9, 2),
               round(p.text_flops / 1e9, 2))
    assert counted == PUBLISHED[name]


def test_the_table_is_open_clips_configs():
    """The architectures, as data here, against open_clip's own model configs (installed with it)."""
    import open_clip

    folder = Path(open_clip.__file__).parent / "model_configs"
    for name, m in FAMILY.items():
        cfg = json.loads((folder / (name.replace("/", "-").replace("@336px", "-336") + ".json")).read_text())
        vision, text = cfg["vision_cfg"], cfg["text_cfg"]
        layers = tuple(vision["layers"]) if isinstance(vision["layers"], list) else vision["layers"]
        assert (cfg["embed_dim"], vision["image_size"], layers, vision["width"], vision["patch_size"]) == (
            m.embed_dim, m.image_resolution, m.vision_layers, m.vision_width, m.vision_patch_size), name
        assert (text["width"], text["heads"], text["layers"]) == (m.transformer_width, m.transformer_heads,
                                                                  m.transformer_layers), name


def test_vit_b32_flops_equal_the_hand_count():
    """8,817,623,040 FLOPs: 2 x (49 patches x 768 x 3,072 for the patch embedding + 12 blocks x (12 x 50 x 768² +
    2 x 50² x 768) + 768 x 512 for the projection) = 2 x (115,605,504 + 12 x 357,734,400 + 393,216)."""
    member = FAMILY["ViT-B/32"]
    assert vit_flops_by_hand(member) == 2 * (115_605_504 + 12 * 357_734_400 + 393_216) == 8_817_623_040
    assert profile(member).image_flops == vit_flops_by_hand(member)
    for name in ("ViT-B/16", "ViT-L/14", "ViT-L/14@336px"):
        assert profile(FAMILY[name]).image_flops == vit_flops_by_hand(FAMILY[name]), name


def test_parameters_equal_build_model_on_a_state_dict_of_the_same_shapes(vitb32):
    """clip's own `build_model` on a state dict (the random ViT-B/32's, the real one's shapes) counts the same."""
    from clipdemo.core.clip_package import import_clip

    built = import_clip().model.build_model(vitb32.model.state_dict())
    p = profile(FAMILY["ViT-B/32"])
    assert sum(t.numel() for t in built.visual.parameters()) == p.image_params
    assert sum(t.numel() for t in built.parameters()) == p.params + 1  # + the learnt temperature


def test_nothing_is_allocated_building_the_whole_family():
    """In a fresh process: all nine built and counted (RN50x64 alone is 623M parameters, 2.5 GB in fp32), and the
    resident memory grows by far less than one of them would take."""
    script = """
import json
from pathlib import Path
def rss():
    fields = dict(l.split(":", 1) for l in Path("/proc/self/status").read_text().splitlines() if ":" in l)
    return int(fields["VmRSS"].split()[0]) / 1024
from clipdemo.core.family import FAMILY, profile
from clipdemo.core.clip_package import import_clip
import torch.utils.flop_counter
import_clip()
profile(FAMILY["RN50"])  # imports and first-use caches out of the way
before = rss()
total = sum(profile(m).params for m in FAMILY.values())
print(json.dumps({"grew_mb": rss() - before, "params": total}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["params"] > 2_000_000_000 and out["grew_mb"] < 200  # over 8 GB in fp32, were it allocated


def test_the_cli_prints_the_family():
    done = subprocess.run([sys.executable, "-m", "clipdemo", "family"], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env={"PATH": "/usr/bin:/bin", "CLIPDEMO_DOWNLOAD": "0"})
    assert done.returncode == 0, done.stderr[-2000:]
    row = next(line for line in done.stdout.splitlines() if line.startswith("ViT-B/32 "))
    assert "87.85M" in row and "63.43M" in row and "151.28M" in row and "8.82" in row and "5.96" in row
    assert "architectures, built on PyTorch's meta device" in done.stdout


def test_the_architecture_tab_compares_the_family_through_a_real_server(tiny_loaded, cifar_root, tmp_path):
    """The page's "Compare with the CLIP family": the table (from gradio_client, as a visitor's browser gets it),
    the log-log scatter, the ViTs' patch grids, and a note saying which weights the Space has."""
    from gradio_client import Client

    from uiserver import running_app, runtime_for

    rt = runtime_for(tiny_loaded, cifar_root, tmp=tmp_path)
    with running_app(rt) as (url, _):
        table, scatter, g32, g16, g14, note = Client(url, verbose=False).predict(api_name="/family")
    rows = {row[0]: row for row in table["data"]}
    assert list(rows) == list(FAMILY) and table["headers"][8] == "image params"
    assert rows["ViT-B/32"][1:] == ["ViT", 224, 32, 50, 768, 12, 12, "87.85M", "63.43M", 8.82, 5.96]
    assert rows["RN50x64"][6] == "3-15-36-10" and rows["RN50x64"][8] == "420.38M"
    plot = json.loads(scatter["plot"])
    assert plot["layout"]["xaxis"]["type"] == "log" and len(plot["data"][0]["x"]) == 9
    assert [json.loads(g["plot"])["layout"]["title"]["text"] for g in (g32, g16, g14)] == [
        "32 px patches: 49 tokens", "16 px patches: 196 tokens", "14 px patches: 256 tokens"]
    assert "This Space has weights for random:tiny" in note and "meta device" in note
