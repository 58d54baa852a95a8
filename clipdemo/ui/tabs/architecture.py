"""The Architecture tab: the configuration derived from the weights, torchinfo summaries of both towers,
the module tree, and a treemap of where the parameters are.

Holds `ArchitectureTab`: `architecture(depth)`, returning Gradio's `{component: value}` dict, and `build`.
Works before the model has loaded (on a random-weights stand-in of the same architecture), through the
service that `Runtime.architecture_service` hands out.
"""

from __future__ import annotations

import gradio as gr

from ...core import checks
from ...core.architecture import TowerSummary, config_card, module_tree, parameter_tree
from ...core.words import text
from ...io import figures
from ...serving.runtime import Runtime
from ..common import UI_API, told
from ..lang import L, lang_of

__all__ = ["ArchitectureTab"]


def _table(summary: TowerSummary) -> dict:
    return {"headers": list(summary.columns), "data": [list(r) for r in summary.rows]}


class ArchitectureTab:
    """The architecture views over the shared runtime; gradio calls these, and so do tests."""

    def __init__(self, runtime: Runtime):
        self.rt = runtime

    def architecture(self, depth: float = 2, request: gr.Request = None) -> dict:
        """Configuration card, torchinfo summaries of both towers (table and text), and the module tree."""
        lang = lang_of(request)
        zs = self.rt.architecture_service()
        with told(lang):
            depth = checks.summary_depth(depth)
            vision, words = (zs.tower_summary(tower, depth) for tower in checks.TOWERS)
        card = config_card(zs.loaded)
        if not zs.loaded.info.trained:
            card["note"] = text("arch_random_note", lang)
        treemap = figures.treemap(parameter_tree(zs.loaded), text("treemap_title", lang, f"{card['parameters']['total']:,}"))
        return {self.card: card, self.vision_table: _table(vision), self.vision_text: vision.text,
                self.text_table: _table(words), self.text_text: words.text, self.tree: module_tree(zs.loaded),
                self.treemap: treemap}

    # -- layout and wiring -------------------------------------------------------------------------
    def build(self) -> None:
        """Lay out the tab (inside the app's `gr.Tabs`) and wire its events."""
        with gr.Tab(L("tab_architecture"), id="architecture") as tab:
            depth = gr.Slider(*checks.DEPTHS, value=2, step=1, label=L("summary_depth"))
            self.card = gr.JSON(label=L("config_card"))
            with gr.Row():
                with gr.Column():
                    self.vision_table = gr.Dataframe(label=L("vision_table"), wrap=True, elem_id="vision-summary")
                with gr.Column():
                    self.text_table = gr.Dataframe(label=L("text_table"), wrap=True, elem_id="text-summary")
            gr.Markdown(L("multadds_note"))
            with gr.Accordion(L("torchinfo_text"), open=False):
                with gr.Row():
                    self.vision_text = gr.Textbox(label=L("vision_tower"), lines=20, buttons=["copy"])
                    self.text_text = gr.Textbox(label=L("text_tower"), lines=20, buttons=["copy"])
            with gr.Accordion(L("module_tree_accordion"), open=False):
                self.tree = gr.Textbox(label=L("module_tree"), lines=30, buttons=["copy"])
            self.treemap = gr.Plot(label=L("treemap_plot"))

        gr.on([depth.release, tab.select], self.architecture, depth,
              [self.card, self.vision_table, self.vision_text, self.text_table, self.text_text, self.tree, self.treemap],
              api_name="architecture", api_visibility=UI_API)
