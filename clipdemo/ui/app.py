"""The Space assembled: the header, the status line and one tab per module of `clipdemo.ui.tabs`.

Each tab lays itself out and wires its own events; this module only orders them and shares the visitor's label set
(a `LabelSet` in `gr.State`) between Predict and Labels.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import gradio as gr
from starlette.middleware import Middleware

from ..core.labels import LabelSet
from ..io.images import MAX_BYTES
from .janitor import Janitor
from ..serving.runtime import Runtime
from ..serving.settings import Settings, from_env
from ..tasks import selfcheck
from . import files
from .api import ApiEndpoints
from .bodycap import BodyCap
from .deeplink import PageOpen
from .lang import HEAD, I18N, say
from .mcp import McpServer
from .status import StatusLine
from .tabs import about, saved_sets
from .tabs.architecture import ArchitectureTab
from .tabs.evaluate import EvaluateTab
from .tabs.labels import LabelsTab
from .tabs.predict import PredictTab
from .tabs.search import SearchTab

__all__ = ["Page", "build_app", "queue_kwargs", "launch_kwargs", "start_runtime", "file_janitor", "main"]

QUEUE_SIZE = 64  # events waiting in Gradio's queue (evaluations in line); one more gets Gradio's "queue is full"

CSS = """
.pixelated img { image-rendering: pixelated; }
#status { min-height: 2.2em; }
/* Markdown tables: a header never breaks inside a word ("settin g"). */
.prose table th { word-break: keep-all; overflow-wrap: normal; white-space: nowrap; }
#notebook-lines textarea { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; white-space: pre; }
/* Charts have transparent backgrounds (figures.themed); their text and grid follow the theme, light or dark. */
.js-plotly-plot .main-svg .gtitle, .js-plotly-plot .main-svg .xtitle, .js-plotly-plot .main-svg .ytitle,
.js-plotly-plot .main-svg .xtick text, .js-plotly-plot .main-svg .ytick text, .js-plotly-plot .main-svg .bartext,
.js-plotly-plot .main-svg .cbaxis text, .js-plotly-plot .main-svg .legendtext { fill: var(--body-text-color) !important; }
.js-plotly-plot .main-svg .gridlayer path, .js-plotly-plot .main-svg .zerolinelayer path {
  stroke: var(--border-color-primary) !important; }
/* Phones: nothing wider than the screen; rows wrap, images and charts shrink to fit. */
html, body { overflow-x: hidden; }
.gradio-container { max-width: 100% !important; }
.gradio-container img, .js-plotly-plot, .js-plotly-plot .plot-container { max-width: 100%; }
@media (max-width: 640px) {
  .gradio-container { padding-left: 6px !important; padding-right: 6px !important; }
  .gradio-container .row, .gradio-container .form { flex-wrap: wrap !important; }
  .gradio-container .row > * { min-width: min(100%, 160px) !important; }
  .index-row > * { flex: 1 1 30% !important; }
  .index-row > .block:first-child { flex-basis: 100% !important; }
  #attention-image img { width: 100%; height: auto; }
}
"""


# Gradio 6.31 leaves some controls without an accessible name: a text box that has buttons (copy), and the
# button around a shown image. Each is named by its block's label.
A11Y = """<script>
(() => {
  const label = (el) => {
    const block = el.closest(".block");
    const info = block && block.querySelector("[data-testid=block-info], [data-testid=block-label], .block-title, label span");
    return info ? info.textContent.trim() : "";
  };
  const name = () => document.querySelectorAll(
      "textarea:not([aria-label]), input[type=text]:not([aria-label]), button:not([aria-label]):not([title])")
    .forEach((el) => {
      if (el.tagName === "BUTTON" ? el.innerText.trim() : (el.labels && el.labels.length)) return;
      const text = label(el);
      if (text) el.setAttribute("aria-label", text);
    });
  let queued = false;  // one pass per frame, however many nodes Gradio adds
  new MutationObserver(() => { if (!queued) { queued = true; requestAnimationFrame(() => { queued = false; name(); }); } })
    .observe(document.documentElement, {childList: true, subtree: true});
})();
</script>"""


class Page:
    """The whole Space: its parts (each tab's object, with its components and handlers), and `build`."""

    def __init__(self, runtime: Runtime):
        self.rt = runtime
        self.status, self.predict, self.labels = StatusLine(runtime), PredictTab(runtime), LabelsTab(runtime)
        self.search, self.evaluate, self.architecture = SearchTab(runtime), EvaluateTab(runtime), ArchitectureTab(runtime)
        self.opening, self.api = PageOpen(self.predict, self.labels, self.search), ApiEndpoints(runtime)

    def build(self) -> gr.Blocks:
        """Lay out and wire the page (not launched)."""
        settings = self.rt.settings
        share_base = f"https://huggingface.co/spaces/{settings.space_id}" if settings.space_id else ""
        # Uploads and shown files are removed by `file_janitor` (Gradio 6.31's delete_cache stops under load).
        with gr.Blocks(title="CLIP zero-shot classification") as demo:
            gr.Markdown(say("page_title"))
            self.status.build()
            link_note = gr.Markdown(elem_id="link-note")
            labels_state = gr.State(LabelSet.preset())  # the visitor's active label set, for Predict and Labels
            # The visitor's saved label sets, in their browser only (encrypted; key and secret from settings).
            store = gr.BrowserState(saved_sets.empty(), storage_key=settings.browser_key,
                                    secret=settings.browser_secret)
            with gr.Tabs() as tabs:
                self.predict.build(labels_state, share_base)
                self.search.build(tabs, self.predict, labels_state, share_base)
                self.labels.build(labels_state, store)
                self.evaluate.build(labels_state, self.predict)
                self.architecture.build()
                checks, towers = about.build(self.labels, labels_state)
            self.status.wire(demo, self.predict, checks, towers)
            self.opening.wire(demo, tabs, labels_state, store, link_note)
            self.api.register()
        self.demo = demo
        return demo


def build_app(runtime: Runtime) -> gr.Blocks:
    """The whole Space as a `gr.Blocks` (not launched)."""
    return Page(runtime).build()


def queue_kwargs() -> dict:
    """Queue settings: events start at once and the model gate decides who runs (interactive first, at most
    CLIPDEMO_MAX_WAITING waiting); only evaluations wait in Gradio's queue, one running at a time."""
    return dict(max_size=QUEUE_SIZE, default_concurrency_limit=None)


def launch_kwargs(runtime: Runtime) -> dict:
    """Server settings for `demo.launch()` (host and port come from GRADIO_SERVER_NAME/PORT).

    The MCP server (at /gradio_api/mcp/) is `clipdemo.ui.mcp`'s, offering the typed endpoints of `ui/api.py` as
    tools that answer in JSON; Gradio's own is off. Run history is off: Gradio 6 would keep every visitor's
    runs (inputs and outputs, uploaded images among them) in their browser and list them at /gradio_api/runs,
    where the next person at a shared computer would find them. Every request body is bounded before it is
    parsed (`clipdemo.ui.bodycap`).
    """
    tools = McpServer(ApiEndpoints(runtime).functions())
    return dict(theme=gr.themes.Soft(), css=CSS, head=HEAD + A11Y, i18n=I18N, max_file_size=MAX_BYTES, show_error=False,
                enable_monitoring=False, share=False, mcp_server=False, run_history=False,
                app_kwargs={"lifespan": tools.lifespan, "middleware": [Middleware(BodyCap)]})


def file_janitor(demo: gr.Blocks, ttl_s: float) -> Janitor:
    """A janitor for Gradio's upload folder (uploads and every file shown: files untouched for `ttl_s` are
    removed) and the folder of downloads (ten minutes), swept every minute at most; Gradio's in-memory records
    of removed files are dropped (they would otherwise grow by one path per file for the life of the process)."""
    def forget_removed() -> None:
        for paths in demo.temp_file_sets:
            for path in list(paths):  # list() copies the set in one step: safe while requests add to it
                if not os.path.exists(path):
                    paths.discard(path)

    ages = {Path(gr.utils.get_upload_folder()): ttl_s, files.results_dir(): files.RESULTS_MAX_AGE_S}
    return Janitor(ages, every_s=min(ttl_s / 4, 60.0), after=forget_removed)


def start_runtime(settings: Settings) -> Runtime:
    """Wrap every model call in `spaces.GPU` (a no-op off ZeroGPU) and start loading the model: in the
    background, so the page is served at once, or, on ZeroGPU, here, onto CUDA before the server starts. The
    self-check runs after start-up on the real files only."""
    runtime = Runtime.for_host(settings, self_check=selfcheck.background_checks)
    runtime.start()
    return runtime


def main() -> None:
    """Start the Space (`start_runtime`, then the page)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runtime = start_runtime(from_env())
    demo = build_app(runtime)
    file_janitor(demo, runtime.settings.file_ttl_s).start()
    demo.queue(**queue_kwargs())
    demo.launch(**launch_kwargs(runtime))
