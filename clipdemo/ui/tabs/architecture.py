"""The Architecture tab (issue #27): the loaded model's configuration, torchinfo summaries with FlopCounterMode's
FLOPs, the module tree and a parameter treemap, and the CLIP family side by side.

The loaded model's views work before it has loaded, on a random-weights stand-in of the same architecture
(`Runtime.architecture_service`); the family is built on PyTorch's meta device and never loads weights.
"""

from __future__ import annotations

import gradio as gr
from PIL import Image

from ...core import checks
from ...core.architecture import TowerSummary, config_card, module_tree, parameter_tree
from ...core.family import FAMILY, member, member_summary, profile
from ...core.words import Text
from ...io import figures
from ...io.measured import read_measured
from ...serving.runtime import Runtime
from ..common import UI_API, saying
from ..lang import lang_of, say

__all__ = ["ArchitectureTab", "FAMILY_COLUMNS"]

FAMILY_COLUMNS = ("family_col_model", "family_col_kind", "family_col_input", "family_col_patch", "family_col_tokens",
                  "family_col_width", "family_col_layers", "family_col_heads", "family_col_image", "family_col_text",
                  "family_col_image_gflops", "family_col_text_gflops", "family_col_cpu",
                  "family_col_floor")  # the table's headers, by key


def _table(summary: TowerSummary) -> dict:
    return {"headers": list(summary.columns), "data": [list(r) for r in summary.rows]}


def _giga(n: int) -> str:
    return f"{n / 1e9:,.2f} G"


def flops_note(towers: list[TowerSummary], lang: str) -> str:
    """torchinfo's mult-adds against FlopCounterMode's FLOPs for each tower, reconciled: the multiply-adds inside
    attention, which torchinfo cannot see, and the rest (exact integers, so the columns add up)."""
    cells = []
    for s in towers:
        cells += [f"{s.total_mult_adds:,}", f"{s.total_flops:,}", f"{s.total_flops // 2:,}",
                  f"{s.attention_flops // 2:,}", f"{s.rest_mult_adds:+,}"]
    return say("flops_note", lang, *cells)


class ArchitectureTab:
    """The architecture views over the shared runtime; gradio calls these, and so do tests."""

    def __init__(self, runtime: Runtime):
        self.rt = runtime

    def architecture(self, depth: float = 2, request: gr.Request = None) -> dict:
        """Configuration card, torchinfo summaries of both towers (table and text), and the module tree."""
        lang = lang_of(request)
        zs = self.rt.architecture_service()
        with saying(lang):
            depth = checks.summary_depth(depth)
            vision, words = (zs.inside.tower_summary(tower, depth) for tower in checks.TOWERS)
        card = config_card(zs.loaded)
        if not zs.loaded.info.trained:
            card["note"] = say("arch_random_note", lang)
        treemap = figures.treemap(parameter_tree(zs.loaded), say("treemap_title", lang, f"{card['parameters']['total']:,}"))
        return {self.card: card, self.vision_table: _table(vision), self.vision_text: vision.text,
                self.text_table: _table(words), self.text_text: words.text, self.tree: module_tree(zs.loaded),
                self.treemap: treemap, self.flops_note: flops_note([vision, words], lang)}

    def family(self, request: gr.Request = None) -> dict:
        """The OpenAI CLIP family side by side (issue #27): every member built on the meta device, no weights; its
        table, parameters against image FLOPs, and the ViTs' patch grids over one image."""
        lang = lang_of(request)
        loaded = self.rt.settings.weights
        weights = Text("family_weights_random") if loaded.startswith("random") else Text("family_weights", loaded)
        measured = read_measured()
        costs = measured.costs() if measured else {}
        rows, points = [], []
        for name, m in FAMILY.items():
            p, cost = profile(m), costs.get(name)
            rows.append([name + (" ✓" if name == loaded else ""), m.kind, m.image_resolution,
                         m.vision_patch_size or "-", m.tokens, m.vision_width, m.layers_text,
                         m.vision_heads if m.kind == "ViT" else "-",
                         f"{p.image_params / 1e6:.2f}M", f"{p.text_params / 1e6:.2f}M",
                         round(p.image_flops / 1e9, 2), round(p.text_flops / 1e9, 2),
                         f"{'~' if cost.estimated else ''}{cost.ms:,.0f}" if cost else "-",
                         f"{cost.fraction:.0%}" if cost else "-"])
            points.append((name, p.params / 1e6, p.image_flops / 1e9))
        if measured:
            bars = figures.cost_bars([(n, c.ms, c.estimated) for n, c in costs.items()], loaded,
                                     say("family_cost_plot", lang), say("family_cost_axis", lang),
                                     (say("family_measured", lang), say("family_estimated", lang)))
            cost_note = say("family_cost_note", lang, measured.when[:10], measured.machine,
                             f"{measured.matmul_gflops:.0f}", ", ".join(measured.ms))
        else:
            bars, cost_note = None, say("family_cost_none", lang)
        image = figures.enlarge(Image.effect_mandelbrot((224, 224), (-2, -1.2, 1, 1.2), 40).convert("RGB"), 224)
        grids = [figures.patch_figure(image, patch, say("family_grid", lang, patch, (224 // patch) ** 2))
                 for patch in (32, 16, 14)]
        return {self.family_table: {"headers": [say(k, lang) for k in FAMILY_COLUMNS], "data": rows},
                self.family_plot: figures.family_scatter(points, loaded, say("family_scatter", lang),
                                                         (say("family_params", lang), say("family_gflops", lang))),
                self.grid32: grids[0], self.grid16: grids[1], self.grid14: grids[2],
                self.family_note: say("family_note", lang, weights), self.cost_plot: bars, self.cost_note: cost_note}

    def compare(self, first: str = "ViT-B/32", second: str = "ViT-B/16", tower: str = "visual", depth: float = 2,
                request: gr.Request = None) -> dict:
        """Two family members' torchinfo tables of one tower side by side (meta device, FLOPs per row), and how
        many times the second's parameters and FLOPs are the first's."""
        lang = lang_of(request)
        with saying(lang):
            a, b = member(first), member(second)
            tower, depth = checks.tower(tower), checks.summary_depth(depth)
            sa, sb = member_summary(a, tower, depth), member_summary(b, tower, depth)
        where = say("vision_tower" if tower == "visual" else "text_tower", lang)

        def table(m, s: TowerSummary) -> gr.Dataframe:
            return gr.Dataframe(_table(s), label=say("family_compare_table", lang, m.name, where,
                                                      f"{s.total_params / 1e6:.2f}M", f"{s.total_flops / 1e9:.2f}"))

        return {self.compare_a: table(a, sa), self.compare_b: table(b, sb),
                self.compare_note: say("family_compare_note", lang, b.name, f"{sb.total_params / sa.total_params:.2f}",
                                        f"{sb.total_flops / sa.total_flops:.2f}", a.name, where.lower())}

    # -- layout and wiring -------------------------------------------------------------------------
    def build(self) -> None:
        """Lay out the tab (inside the app's `gr.Tabs`) and wire its events."""
        with gr.Tab(say("tab_architecture"), id="architecture") as tab:
            depth = gr.Slider(*checks.DEPTHS, value=2, step=1, label=say("summary_depth"))
            self.card = gr.JSON(label=say("config_card"))
            with gr.Row():
                with gr.Column():
                    self.vision_table = gr.Dataframe(label=say("vision_table"), wrap=True, elem_id="vision-summary")
                with gr.Column():
                    self.text_table = gr.Dataframe(label=say("text_table"), wrap=True, elem_id="text-summary")
            self.flops_note = gr.Markdown(elem_id="flops-note")
            with gr.Accordion(say("torchinfo_text"), open=False):
                with gr.Row():
                    self.vision_text = gr.Textbox(label=say("vision_tower"), lines=20, buttons=["copy"])
                    self.text_text = gr.Textbox(label=say("text_tower"), lines=20, buttons=["copy"])
            with gr.Accordion(say("module_tree_accordion"), open=False):
                self.tree = gr.Textbox(label=say("module_tree"), lines=30, buttons=["copy"])
            self.treemap = gr.Plot(label=say("treemap_plot"))
            with gr.Accordion(say("family_accordion"), open=False, elem_id="family"):
                show = gr.Button(say("family_show"), elem_id="family-show")
                self.family_note = gr.Markdown(elem_id="family-note")
                self.family_table = gr.Dataframe(label=say("family_table"), wrap=True, elem_id="family-table")
                self.family_plot = gr.Plot(label=say("family_plot"), elem_id="family-plot")
                with gr.Row():
                    self.grid32, self.grid16, self.grid14 = (gr.Plot(label=f"{p} px") for p in (32, 16, 14))
                self.cost_note = gr.Markdown(elem_id="family-cost-note")
                self.cost_plot = gr.Plot(label=say("family_cost_plot"), elem_id="family-cost")
                gr.Markdown(say("family_compare_head"))
                with gr.Row():
                    first = gr.Dropdown(list(FAMILY), value="ViT-B/32", label=say("family_compare_a"))
                    second = gr.Dropdown(list(FAMILY), value="ViT-B/16", label=say("family_compare_b"))
                    tower = gr.Radio([(say("vision_tower"), "visual"), (say("text_tower"), "text")], value="visual",
                                     label=say("family_compare_tower"))
                    compare_depth = gr.Slider(*checks.DEPTHS, value=2, step=1, label=say("summary_depth"))
                compare = gr.Button(say("family_compare_show"), elem_id="family-compare")
                self.compare_note = gr.Markdown(elem_id="family-compare-note")
                with gr.Row():
                    self.compare_a = gr.Dataframe(wrap=True, elem_id="family-compare-a")
                    self.compare_b = gr.Dataframe(wrap=True, elem_id="family-compare-b")

        show.click(self.family, None, [self.family_table, self.family_plot, self.grid32, self.grid16, self.grid14,
                                       self.family_note, self.cost_plot, self.cost_note],
                   api_name="family", api_visibility=UI_API)
        gr.on([show.click, compare.click, tower.change, compare_depth.release], self.compare, [first, second, tower, compare_depth],
              [self.compare_a, self.compare_b, self.compare_note], api_name="family_compare", api_visibility=UI_API)
        gr.on([depth.release, tab.select], self.architecture, depth,
              [self.card, self.vision_table, self.vision_text, self.text_table, self.text_text, self.tree, self.treemap,
               self.flops_note], api_name="architecture", api_visibility=UI_API)
