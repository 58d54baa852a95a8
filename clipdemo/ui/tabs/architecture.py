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
            card["note"] = "random weights: the architecture is exact, the weights are untrained"
        treemap = figures.treemap(zs.parameter_tree(), f"Parameters: {card['parameters']['total']:,}")
        return ArchitectureView(card, _table(vision), vision.text, _table(text), text.text, zs.module_tree(), treemap)

    # -- layout and wiring -------------------------------------------------------------------------
    def build(self) -> None:
        """Lay out the tab (inside the app's `gr.Tabs`) and wire its events."""
        with gr.Tab("Architecture", id="architecture") as tab:
            depth = gr.Slider(1, 4, value=2, step=1, label="Summary depth")
            card = gr.JSON(label="Configuration (derived from the loaded weights)")
            with gr.Row():
                with gr.Column():
                    vision_table = gr.Dataframe(label="Vision tower (input 1×3×224×224)", wrap=True,
                                                elem_id="vision-summary")
                with gr.Column():
                    text_table = gr.Dataframe(label="Text tower (input 1×77 tokens)", wrap=True, elem_id="text-summary")
            gr.Markdown("Mult-adds are torchinfo's count of the Conv/Linear/Embedding modules it sees run; the "
                        "attention projections inside `nn.MultiheadAttention` run as one fused function, so "
                        "torchinfo leaves them out.")
            with gr.Accordion("torchinfo text", open=False):
                with gr.Row():
                    vision_text = gr.Textbox(label="Vision tower", lines=20, buttons=["copy"])
                    text_text = gr.Textbox(label="Text tower", lines=20, buttons=["copy"])
            with gr.Accordion("print(model): the module tree", open=False):
                tree = gr.Textbox(label="Module tree", lines=30, buttons=["copy"])
            treemap = gr.Plot(label="Where the parameters are (click to zoom)")

        gr.on([depth.release, tab.select],
              **event(self.architecture, depth, dict(card=card, vision_table=vision_table, vision_text=vision_text,
                                                     text_table=text_table, text_text=text_text, tree=tree,
                                                     treemap=treemap)),
              api_name="architecture", api_visibility=UI_API)
