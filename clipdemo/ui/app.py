"""The Space assembled: the header, the status line and one tab per module of `clipdemo.ui.tabs`.

Holds `build_app(runtime)`, `launch_kwargs()`, `start_runtime(settings)`, `file_janitor` and `main()`. Each tab lays itself out and wires its own
events; this module only orders them and shares the visitor's label set between Predict and Labels.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import gradio as gr

from .. import accel
from ..images import MAX_BYTES
from ..janitor import Janitor
from ..runtime import Runtime
from ..settings import Settings, from_env
from .api import ApiEndpoints
from .common import LabelState
from .status import StatusLine
from .tabs import about
from .tabs.architecture import ArchitectureTab
from .tabs.evaluate import EvaluateTab
from .tabs.labels import LabelsTab
from .tabs.predict import PredictTab

__all__ = ["build_app", "queue_kwargs", "launch_kwargs", "start_runtime", "file_janitor", "main"]

QUEUE_SIZE = 64  # events waiting in Gradio's queue (evaluations in line); one more gets Gradio's "queue is full"

CSS = """
.pixelated img { image-rendering: pixelated; }
#status { min-height: 2.2em; }
#notebook-lines textarea { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; white-space: pre; }
"""


def build_app(runtime: Runtime) -> gr.Blocks:
    """The whole Space as a `gr.Blocks` (not launched)."""
    status, predict = StatusLine(runtime), PredictTab(runtime)
    # Uploads and shown files are removed by `file_janitor` (Gradio 6.31's delete_cache stops under load).
    with gr.Blocks(title="CLIP zero-shot classification") as demo:
        gr.Markdown("# CLIP zero-shot image classification\nOpenAI CLIP ViT-B/32 on CIFAR-100 or your own images, "
                    "with your own labels.")
        status_parts = status.build()
        labels_state = gr.State(LabelState())  # the visitor's active label set, shared by Predict and Labels
        with gr.Tabs():
            predict.build(labels_state)
            LabelsTab(runtime).build(labels_state)
            EvaluateTab(runtime).build()
            ArchitectureTab(runtime).build()
            checks = about.build()
        status.wire(demo, status_parts, predict, checks)
        ApiEndpoints(runtime).register()
    return demo


def queue_kwargs() -> dict:
    """Queue settings: events start at once and the model gate decides who runs (interactive first, at most
    CLIPDEMO_MAX_WAITING waiting); only evaluations wait in Gradio's queue, one running at a time."""
    return dict(max_size=QUEUE_SIZE, default_concurrency_limit=None)


def launch_kwargs() -> dict:
    """Server settings for `demo.launch()` (host and port come from GRADIO_SERVER_NAME/PORT); the MCP server
    (at /gradio_api/mcp/) offers the typed endpoints of `ui/api.py` as tools."""
    return dict(theme=gr.themes.Soft(), css=CSS, max_file_size=MAX_BYTES, show_error=False,
                enable_monitoring=False, share=False, mcp_server=True)


def file_janitor(demo: gr.Blocks, ttl_s: float) -> Janitor:
    """A janitor for Gradio's upload folder (uploads and every file shown): files untouched for `ttl_s` are
    removed, swept every quarter of that, and Gradio's in-memory records of removed files are dropped
    (they would otherwise grow by one path per file for the life of the process)."""
    def forget_removed() -> None:
        for paths in demo.temp_file_sets:
            for path in list(paths):  # list() copies the set in one step: safe while requests add to it
                if not os.path.exists(path):
                    paths.discard(path)

    return Janitor([Path(gr.utils.get_upload_folder())], ttl_s, every_s=ttl_s / 4, after=forget_removed)


def start_runtime(settings: Settings) -> Runtime:
    """Wrap every model call in `spaces.GPU` (a no-op off ZeroGPU) and start loading the model: in the
    background, so the page is served at once, or, on ZeroGPU, here, onto CUDA before the server starts."""
    accel.use_spaces()
    runtime = Runtime(settings)
    runtime.start(wait_for_model=accel.path_for(settings.device).load_before_launch)
    return runtime


def main() -> None:
    """Start the Space (`start_runtime`, then the page)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runtime = start_runtime(from_env())
    demo = build_app(runtime)
    file_janitor(demo, runtime.settings.file_ttl_s).start()
    demo.queue(**queue_kwargs())
    demo.launch(**launch_kwargs())
