"""The CLIP family (issue #27): every OpenAI architecture built on the meta device, its parameters and FLOPs against
open_clip's published profile, ViT-B/32's FLOPs against the hand count, torchinfo's mult-adds reconciled with them
exactly, nothing allocated, the measured CPU costs and their estimates, the table in the CLI and through a real
server, any two members compared, and `architecture --model X --flops` that never loads weights."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from clipdemo.core.family import FAMILY, Member, cpu_costs, member, member_summary, profile, vit_flops_by_hand
from clipdemo.core.words import Refusal

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


@pytest.mark.slow  # a fresh interpreter in a subprocess
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


def test_the_cli_prints_the_family(monkeypatch, capsys):
    from clipdemo.cli import main
    monkeypatch.setenv("CLIPDEMO_DOWNLOAD", "0")
    assert main(["family"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("ViT-B/32 "))
    assert "87.85M" in row and "63.43M" in row and "151.28M" in row and "8.82" in row and "5.96" in row
    assert "architectures, built on PyTorch's meta device" in out


def test_torchinfo_and_flopcounter_reconcile_to_the_multiply_add_for_vit_b32():
    """The two counts of one forward pass, written out. Per block at 50 tokens of 768: the MLP is 2 x 50 x 768 x
    3,072 = 235,929,600 multiply-adds, attention 4 x 50 x 768² + 2 x 50² x 768 = 121,804,800. torchinfo's total is
    the patch embedding, the MLPs, and what it counts as a multiply-add per output element: the MLP biases (50 x
    (3,072 + 768) per block) and the layer norms' scales (50 x 1,536 twice per block, 1,536 each for ln_pre and
    ln_post). FlopCounterMode counts the patch embedding, the MLPs, the attention and the final 768 x 512
    projection, twice."""
    s = member_summary(FAMILY["ViT-B/32"], "visual", 4)
    patch, mlp, attention, proj = 115_605_504, 235_929_600, 121_804_800, 768 * 512
    biases, norms = 12 * 50 * (3072 + 768), 12 * 2 * 50 * 1536 + 2 * 1536
    assert s.total_mult_adds == patch + 12 * mlp + biases + norms == 2_950_910_976
    assert s.total_flops == 2 * (patch + 12 * (mlp + attention) + proj) == 8_817_623_040
    assert s.attention_flops == 2 * 12 * attention
    assert s.rest_mult_adds == proj - biases - norms
    attn = [r for r in s.rows if r[0].strip("\u2003").startswith("attn (MultiheadAttention)")]
    assert len(attn) == 12 and {r[5] for r in attn} == {2 * attention}  # FlopCounterMode's count, row by row


def test_the_loaded_models_flops_are_counted_in_the_torchinfo_pass(tiny_loaded):
    """The loaded model's tables carry the same counts, from the same one forward pass as torchinfo's: the tiny
    checkpoint's image tower (2 blocks of 64 at 5 tokens, 16 px patches) equals the hand count, and its text
    tower the count of the same architecture on the meta device."""
    from clipdemo.core.architecture import tower_summary

    c = tiny_loaded.config
    tiny = Member("tiny", c.embed_dim, c.image_resolution, c.vision_layers, c.vision_width, c.vision_patch_size,
                  c.transformer_width, c.transformer_heads, c.transformer_layers)
    vision, text = tower_summary(tiny_loaded, "visual", 3), tower_summary(tiny_loaded, "text", 3)
    assert vision.total_flops == vit_flops_by_hand(tiny) == profile(tiny).image_flops
    assert text.total_flops == profile(tiny).text_flops and text.columns[-1] == "FLOPs"
    assert vision.attention_flops == 2 * c.vision_layers * (4 * 5 * 64 * 64 + 2 * 5 * 5 * 64)


def test_a_name_outside_the_family_is_refused_in_a_sentence():
    with pytest.raises(Refusal, match=r"Unknown CLIP model 'ViT-B/8'; choose one of: RN50, .*ViT-L/14@336px\."):
        member("ViT-B/8")
    assert member(" ViT-L/14 ") is FAMILY["ViT-L/14"]


def test_cpu_costs_are_measured_where_measured_and_estimated_from_flops_elsewhere():
    """ViT-L/14 and ViT-L/14@336px run at ViT-B/16's rate (the measured ViT nearest in FLOPs); ResNets are left out."""
    costs = cpu_costs({"ViT-B/32": 50.0, "ViT-B/16": 250.0}, matmul_gflops=200.0)
    assert sorted(costs) == ["ViT-B/16", "ViT-B/32", "ViT-L/14", "ViT-L/14@336px"]
    assert not costs["ViT-B/32"].estimated and costs["ViT-B/32"].ms == 50.0
    assert costs["ViT-B/32"].fraction == pytest.approx(8.817623040 / 0.050 / 200)
    b16 = profile(FAMILY["ViT-B/16"]).image_flops
    for name in ("ViT-L/14", "ViT-L/14@336px"):
        assert costs[name].estimated
        assert costs[name].ms == pytest.approx(250.0 * profile(FAMILY[name]).image_flops / b16)
        assert costs[name].fraction == costs["ViT-B/16"].fraction
    assert cpu_costs({}, 200.0) == {}


def test_the_measured_file_round_trips_and_anything_else_reads_as_none(tmp_path):
    from clipdemo.io.measured import COST_FILE, Measured, read_measured, write_measured

    m = Measured("2026-11-30T12:00:00+00:00", "2 threads", 190.5, {"ViT-B/32": 66.0, "ViT-B/16": 195.0})
    write_measured(m, tmp_path / "cost.json")
    assert read_measured(tmp_path / "cost.json") == m
    assert read_measured(tmp_path / "missing.json") is None
    for junk in ("not json", "[1, 2]", '{"when": "x"}', '{"when": "x", "machine": "y", "matmul_gflops": "z", "ms": {}}'):
        (tmp_path / "junk.json").write_text(junk)
        assert read_measured(tmp_path / "junk.json") is None, junk
    committed = read_measured(COST_FILE)  # what `make bench` last wrote, shipped with the Space
    assert committed is not None and set(committed.ms) == {"ViT-B/32", "ViT-B/16"}


def test_architecture_model_flops_in_the_cli_never_loads_weights(tmp_path, monkeypatch, capsys):
    """`python -m clipdemo architecture --model ViT-L/14 --flops` with weights that cannot be had (a missing file,
    no download): the architecture's tables, FLOPs per layer, and the reconciliation."""
    from clipdemo.cli import main
    monkeypatch.setenv("CLIPDEMO_DOWNLOAD", "0")
    monkeypatch.setenv("CLIPDEMO_WEIGHTS", str(tmp_path / "none.pt"))
    assert main(["architecture", "--model", "ViT-L/14", "--flops", "--depth", "1"]) == 0
    out = capsys.readouterr().out
    assert "Weights: none: ViT-L/14 as an architecture only" in out and "vision 303.97M, text 123.65M" in out
    assert "257 tokens" in out and f"FlopCounterMode: {profile(FAMILY['ViT-L/14']).image_flops:,} FLOPs" in out
    assert "conv1 (Conv2d)" in out and "308,281,344" in out  # 256 patches x 1,024 x 588, twice
    with pytest.raises(SystemExit) as bad:
        main(["architecture", "--model", "ViT-B/8"])
    assert bad.value.code == 2 and "Unknown CLIP model 'ViT-B/8'" in capsys.readouterr().err


def test_the_architecture_tab_compares_the_family_through_a_real_server(tiny_loaded, cifar_root, tmp_path):
    """The page's "Compare with the CLIP family": the table (from gradio_client, as a visitor's browser gets it) with
    the CPU costs `make bench` measured, the log-log scatter, the ViTs' patch grids, a note saying which weights the
    Space has, the cost bars; and two chosen members' torchinfo tables side by side."""
    from gradio_client import Client

    from clipdemo.io.measured import read_measured
    from uiserver import running_app, runtime_for

    rt = runtime_for(tiny_loaded, cifar_root, tmp=tmp_path)
    with running_app(rt) as (url, _):
        client = Client(url, verbose=False)
        table, scatter, g32, g16, g14, note, bars, cost_note = client.predict(api_name="/family")
        a, b, compared = client.predict("ViT-B/32", "RN50", "visual", 1, api_name="/family_compare")
        with pytest.raises(Exception, match="ViT-B/8 is not in the list of choices"):  # Gradio's own refusal
            client.predict("ViT-B/32", "ViT-B/8", "visual", 1, api_name="/family_compare")
    rows = {row[0]: row for row in table["data"]}
    assert list(rows) == list(FAMILY) and table["headers"][8] == "image params"
    assert rows["ViT-B/32"][1:12] == ["ViT", 224, 32, 50, 768, "12", 12, "87.85M", "63.43M", 8.82, 5.96]
    assert rows["RN50x64"][6] == "3-15-36-10" and rows["RN50x64"][8] == "420.38M" and rows["RN50x64"][12] == "-"
    measured = read_measured()
    costs = measured.costs()
    assert rows["ViT-B/32"][12] == f"{measured.ms['ViT-B/32']:,.0f}"
    assert rows["ViT-L/14"][12] == f"~{costs['ViT-L/14'].ms:,.0f}" and rows["ViT-L/14"][13] == f"{costs['ViT-L/14'].fraction:.0%}"
    plot = json.loads(scatter["plot"])
    assert plot["layout"]["xaxis"]["type"] == "log" and len(plot["data"][0]["x"]) == 9
    assert [json.loads(g["plot"])["layout"]["title"]["text"] for g in (g32, g16, g14)] == [
        "32 px patches: 49 tokens", "16 px patches: 196 tokens", "14 px patches: 256 tokens"]
    assert "This Space runs untrained random weights: every model here is an architecture only" in note  # #36
    assert "weights for random" not in note and "meta device" in note
    measured_bars, estimated_bars = json.loads(bars["plot"])["data"]
    assert measured_bars["x"] == ["ViT-B/32", "ViT-B/16"] and estimated_bars["x"] == ["ViT-L/14", "ViT-L/14@336px"]
    assert "`make bench`" in cost_note and measured.when[:10] in cost_note
    assert a["label"] == "ViT-B/32: Vision tower, 87.85M parameters, 8.82 GFLOPs"
    assert b["label"] == "RN50: Vision tower, 38.32M parameters, 12.22 GFLOPs"
    assert a["value"]["data"][0][3] == 87_849_216 and a["value"]["data"][0][5] == 8_817_623_040
    assert b["value"]["data"][0][3] == 38_316_896 and b["value"]["data"][0][5] == 12_222_939_136
    assert a["value"]["headers"][-1] == "FLOPs"
    assert compared == "RN50 has 0.44× the parameters and 1.39× the FLOPs of ViT-B/32 in the vision tower."


def test_flops_are_counted_for_this_threads_modules_only():
    """FlopCounterMode's module tracker hooks every module's forward in the process: another thread inside a module
    while this one counts would be credited with this thread's FLOPs (and a same-named row of ours with its). Ours
    sees only its own thread: the other thread's module never appears."""
    import threading

    import torch

    from clipdemo.core.architecture import flop_counter

    started, release = threading.Event(), threading.Event()

    class Waiting(torch.nn.Module):
        def forward(self, x):
            started.set()
            release.wait(30)
            return x

    other = threading.Thread(target=lambda: Waiting()(torch.zeros(1)))
    with flop_counter() as counter:
        other.start()
        assert started.wait(30)
        torch.nn.Linear(4, 3)(torch.zeros(2, 4))  # 2 x 4 x 3 multiply-adds, in this thread, inside "Linear"
        release.set()
        other.join()
    counts = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    assert counts == {"Global": 48, "Linear": 48}
