"""The Architecture tab: the configuration derived from the weights, torchinfo summaries of both towers,
the module tree, and a treemap of where the parameters are.

Holds `ArchitectureTab`: `architecture(depth)` returning an `ArchitectureView`, and `build`. Works
before the model has loaded (on a random-weights stand-in of the same architecture), through the
service that `Runtime.architecture_service` hands out.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
import plotly.graph_objects as go

from ... import figures
from ...architecture import TOWERS, TowerSummary
from ...runtime import Runtime
from ..lang import L, t
from ..common import UI_API, event, user_errors

__all__ = ["ArchitectureTab", "ArchitectureView"]


@dataclass(frozen=True)
class ArchitectureView:
    """Everything the tab shows, by name."""

    card: dict
    vision_table: dict
    vision_text: str
    text_table: dict
    text_text: str
    tree: str
    treemap: go.Figure


def _table(summary: TowerSummary) -> dict:
    return {"headers": list(summary.columns), "data": [list(r) for r in summary.rows]}


class ArchitectureTab:
    """The architecture views over the shared runtime; gradio calls these, and so do tests."""

    def __init__(self, runtime: Runtime):
        self.rt = runtime

    def architecture(self, depth: float = 2) -> ArchitectureView:
        """Configuration card, torchinfo summaries of both towers (table and text), and the module tree."""
        zs = self.rt.architecture_service()
        with user_errors():
            vision, text = (zs.tower_summary(tower, int(depth)) for tower in TOWERS)
        card = zs.config_card()
        if not zs.info.trained:
            card["note"] = t("arch_random_note")
        treemap = figures.treemap(zs.parameter_tree(), t("treemap_title", f"{card['parameters']['total']:,}"))
        return ArchitectureView(card, _table(vision), vision.text, _table(text), text.text, zs.module_tree(), treemap)

    # -- layout and wiring -------------------------------------------------------------------------
    def build(self) -> None:
        """Lay out the tab (inside the app's `gr.Tabs`) and wire its events."""
        with gr.Tab(L("tab_architecture"), id="architecture") as tab:
            depth = gr.Slider(1, 4, value=2, step=1, label=L("summary_depth"))
            card = gr.JSON(label=L("config_card"))
            with gr.Row():
                with gr.Column():
                    vision_table = gr.Dataframe(label=L("vision_table"), wrap=True,
                                                elem_id="vision-summary")
                with gr.Column():
                    text_table = gr.Dataframe(label=L("text_table"), wrap=True, elem_id="text-summary")
            gr.Markdown(L("multadds_note"))
            with gr.Accordion(L("torchinfo_text"), open=False):
                with gr.Row():
                    vision_text = gr.Textbox(label=L("vision_tower"), lines=20, buttons=["copy"])
                    text_text = gr.Textbox(label=L("text_tower"), lines=20, buttons=["copy"])
            with gr.Accordion(L("module_tree_accordion"), open=False):
                tree = gr.Textbox(label=L("module_tree"), lines=30, buttons=["copy"])
            treemap = gr.Plot(label=L("treemap_plot"))

        gr.on([depth.release, tab.select],
              **event(self.architecture, depth, dict(card=card, vision_table=vision_table, vision_text=vision_text,
                                                     text_table=text_table, text_text=text_text, tree=tree,
                                                     treemap=treemap)),
              api_name="architecture", api_visibility=UI_API)
