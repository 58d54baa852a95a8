"""The Space assembled: the header, the status line and one tab per module of `clipdemo.ui.tabs`.

Holds `build_app(runtime)`, `launch_kwargs()` and `main()`. Each tab lays itself out and wires its own
events; this module only orders them and shares the visitor's label set between Predict and Labels.
"""

from __future__ import annotations

import logging

import gradio as gr

from ..images import MAX_BYTES
from ..runtime import Runtime
from ..settings import from_env
from .common import LabelState
from .status import StatusLine
from .tabs import about
from .tabs.architecture import ArchitectureTab
from .tabs.evaluate import EvaluateTab
from .tabs.labels import LabelsTab
from .tabs.predict import PredictTab

__all__ = ["build_app", "queue_kwargs", "launch_kwargs", "main"]

QUEUE_SIZE = 64  # events waiting in Gradio's queue (evaluations in line); one more gets Gradio's "queue is full"

CSS = """
.pixelated img { image-rendering: pixelated; }
#status { min-height: 2.2em; }
#notebook-lines textarea { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; white-space: pre; }
"""


def build_app(runtime: Runtime) -> gr.Blocks:
    """The whole Space as a `gr.Blocks` (not launched)."""
    status, predict = StatusLine(runtime), PredictTab(runtime)
    with gr.Blocks(title="CLIP zero-shot classification", delete_cache=(3600, 3600)) as demo:
        gr.Markdown("# CLIP zero-shot image classification\nOpenAI CLIP ViT-B/32 on CIFAR-100 or your own images, "
                    "with your own labels.")
        status_parts = status.build()
        labels_state = gr.State(LabelState())  # the visitor's active label set, shared by Predict and Labels
        with gr.Tabs():
            predict.build(labels_state)
            LabelsTab(runtime).build(labels_state)
            EvaluateTab(runtime).build()
            ArchitectureTab(runtime).build()
            about.build()
        status.wire(demo, status_parts, predict)
    return demo


def queue_kwargs() -> dict:
    """Queue settings: events start at once and the model gate decides who runs (interactive first, at most
    CLIPDEMO_MAX_WAITING waiting); only evaluations wait in Gradio's queue, one running at a time."""
    return dict(max_size=QUEUE_SIZE, default_concurrency_limit=None)


def launch_kwargs() -> dict:
    """Server settings for `demo.launch()` (host and port come from GRADIO_SERVER_NAME/PORT)."""
    return dict(theme=gr.themes.Soft(), css=CSS, max_file_size=MAX_BYTES, show_error=False,
                enable_monitoring=False, share=False)


def main() -> None:
    """Start the Space: load the model in the background, serve the page at once."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runtime = Runtime(from_env())
    runtime.start()
    demo = build_app(runtime)
    demo.queue(**queue_kwargs())
    demo.launch(**launch_kwargs())
