"""The status line above the tabs: which model is loaded (or why not), on what, and the dataset; and `/ping`.

Polled each second until start-up work is done; it also brings the Predict tab's layer and head choices in line with
the loaded architecture. `/ping` never touches the model.
"""

from __future__ import annotations

import html

import gradio as gr

from ..io.cifar import DataError
from ..serving import cpus
from ..serving.runtime import ModelState, Runtime
from ..tasks import selfcheck
from .common import UI_API, details_block, md_message
from .lang import lang_of, say
from .tabs.predict import PredictTab, head_choices, layer_choices

__all__ = ["StatusLine"]


class StatusLine:
    """Model and dataset status over the shared runtime; gradio calls these, and so do tests."""

    def __init__(self, runtime: Runtime):
        self.rt = runtime

    def ping(self) -> str:
        """Health check: answers without touching the model."""
        return "pong"

    def status(self, request: gr.Request = None) -> dict:
        """The status line, whether to keep polling it, and the loaded architecture's layer and head choices."""
        lang = lang_of(request)
        line, about = self._line(lang)
        config = self.rt.config()
        return {self.line: line, self.timer: gr.Timer(active=not self.rt.settled),  # poll until settled
                self.index_timer: gr.Timer(active=self.rt.index_status().building),
                self.layers: gr.Dropdown(choices=layer_choices(config)),
                self.heads: gr.Dropdown(choices=head_choices(config)), self.checks: about,
                self.towers: self._towers(lang)}

    def _towers(self, lang: str) -> str:
        """The About tab's words on the text towers: CLIP's own, and the multilingual one (loaded or not yet)."""
        zs = self.rt.service() if self.rt.ready else None
        tower = zs.tower_loaded if zs is not None else None
        if tower is None:
            state = say("towers_not_loaded", lang)
        else:
            state = md_message(tower.label.say(lang))
            state = state if tower.info.trained else f"⚠️ **{state}**"
        return say("towers_md", lang, state)

    def index_tick(self, request: gr.Request = None) -> dict:
        """While the search index builds: the status line (with its progress), and whether to poll again."""
        return {self.line: self._line(lang_of(request))[0],
                self.index_timer: gr.Timer(active=self.rt.index_status().building)}

    def _line(self, lang: str) -> tuple[str, str]:
        """The status line, and the self-check's section for the About tab."""
        st = self.rt.status
        details = []  # what went wrong, for a collapsed section (the log has it whole)
        if st.state is ModelState.READY:
            zs = self.rt.service()
            info = zs.loaded.info
            weights = md_message(info.label.say(lang))
            if not info.verified:  # random weights, or a file that is not a known release
                weights = f"⚠️ **{weights}**"
            host = cpus.describe(zs.threads) if zs.path.name == "cpu" else f"device {zs.loaded.device}"
            line = say("status_ready", lang, weights, md_message(zs.path.title), md_message(host),
                        md_message(zs.encoder_note))
            if (tower := zs.tower_loaded) is not None:  # the multilingual text tower, once a visitor used it
                said = md_message(tower.label.say(lang))
                line += " · " + (said if tower.info.trained else f"⚠️ **{said}**")
        elif st.state is ModelState.FAILED:
            line, details = "❌ " + say("status_model_failed", lang), [st.message.say(lang)]
        else:
            line = say("status_loading", lang, md_message(st.message.say(lang)))
        try:
            data = self.rt.dataset() if st.state is not ModelState.LOADING else None
            line += say("status_cifar", lang, f"{len(data):,}") if data else ""
        except DataError as exc:
            line += " · " + say("status_data_failed", lang)
            details.append(exc.say(lang))
        index = self.rt.index_status()
        if index.building:
            line += " · " + say("status_index", lang, f"{index.covered:,}", f"{index.total:,}")
        badge, about = self._checks(lang)
        if details:
            line += " " + say("status_see_logs", lang) + details_block("\n\n".join(details), lang)
        return line + badge, about

    def _checks(self, lang: str) -> tuple[str, str]:
        """The self-check as a badge with a tooltip for the status line, and a section for the About tab."""
        checks = self.rt.checks
        if not checks:
            return "", ""
        lines = selfcheck.summary(checks)
        ok = all(c.passed is not False for c in checks)
        badge = say("badge_ok" if ok else "badge_differs", lang)
        tip = html.escape(" · ".join(lines), quote=True)
        about = say("selfcheck_heading", lang) + "\n" + "\n".join(f"- {md_message(x)}" for x in lines)
        return f' · <span title="{tip}">{badge}</span>', about

    # -- layout and wiring -------------------------------------------------------------------------
    def build(self) -> None:
        """Lay out the status line; `wire` connects it once the tabs exist."""
        self.line = gr.Markdown(say("starting"), elem_id="status")
        self.timer = gr.Timer(1.0)
        self.index_timer = gr.Timer(5.0, active=False)  # while the search index builds

    def wire(self, demo: gr.Blocks, predict: PredictTab, checks: gr.Markdown, towers: gr.Markdown) -> None:
        """Poll the status on page load and each second until start-up is over; `/ping` for health checks."""
        self.layers, self.heads, self.checks, self.towers = predict.layer, predict.head, checks, towers
        gr.on([demo.load, self.timer.tick], self.status, None,
              [self.line, self.timer, self.index_timer, self.layers, self.heads, self.checks, self.towers],
              api_name="status", api_visibility=UI_API, queue=False)
        self.index_timer.tick(self.index_tick, None, [self.line, self.index_timer], api_visibility="private",
                              queue=False)
        ping_btn, ping_out = gr.Button(visible=False), gr.Textbox(visible=False)
        ping_btn.click(self.ping, None, ping_out, api_name="ping", api_visibility=UI_API, show_progress="hidden")
