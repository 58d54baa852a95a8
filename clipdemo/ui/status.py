"""The status line above the tabs: which model is loaded (or why not), on what, and the dataset; and `/ping`.

Holds `StatusLine` (`status()` returning a `StatusView`, polled each second until start-up work is
done; `ping()`, a health check that never touches the model) and `build`. The status also brings the
Predict tab's layer and head choices in line with the loaded architecture, and shows the self-check
(a badge with a tooltip here, a section in the About tab) once it ran on the real weights.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

import gradio as gr

from .. import cpus, selfcheck
from ..data import DataError
from ..runtime import ModelState, Runtime
from .common import UI_API, details_block, event, md_message
from .lang import L, t
from .tabs.predict import PredictTab, head_choices, layer_choices

__all__ = ["StatusLine", "StatusView"]


@dataclass(frozen=True)
class StatusView:
    """The status line, whether to keep polling it, and the architecture's layer and head choices."""

    line: str
    timer: gr.Timer
    layers: gr.Dropdown
    heads: gr.Dropdown
    checks: str  # the About tab's self-check section (empty unless the real weights and data were checked)


class StatusLine:
    """Model and dataset status over the shared runtime; gradio calls these, and so do tests."""

    def __init__(self, runtime: Runtime):
        self.rt = runtime

    def ping(self) -> str:
        """Health check: answers without touching the model."""
        return "pong"

    def status(self) -> StatusView:
        """The status line, whether to keep polling it, and the loaded architecture's layer and head choices."""
        st = self.rt.status
        details = []  # what went wrong, for a collapsed section (the log has it whole)
        if st.state is ModelState.READY:
            zs = self.rt.service()
            weights = md_message(zs.info.label)
            if not zs.info.verified:  # random weights, or a file that is not a known release
                weights = f"⚠️ **{weights}**"
            host = cpus.describe(zs.threads) if zs.path.name == "cpu" else f"device {zs.device}"
            line = t("status_ready", weights, md_message(zs.path.title), md_message(host), md_message(zs.encoder_note))
        elif st.state is ModelState.FAILED:
            line, details = "❌ " + t("status_model_failed"), [st.message]
        else:
            line = t("status_loading", md_message(st.message))
        try:
            data = self.rt.dataset() if st.state is not ModelState.LOADING else None
            line += t("status_cifar", f"{len(data):,}") if data else ""
        except DataError as exc:
            line += " · " + t("status_data_failed")
            details.append(str(exc))
        badge, about = self._checks()
        if details:
            line += " " + t("status_see_logs") + details_block("\n\n".join(details))
        config = self.rt.config()
        return StatusView(line + badge, gr.Timer(active=not self.rt.settled),  # poll until start-up work is done
                          gr.Dropdown(choices=layer_choices(config)), gr.Dropdown(choices=head_choices(config)), about)

    def _checks(self) -> tuple[str, str]:
        """The self-check as a badge with a tooltip for the status line, and a section for the About tab."""
        checks = self.rt.checks
        if not checks:
            return "", ""
        lines = selfcheck.summary(checks)
        ok = all(c.passed is not False for c in checks)
        badge = t("badge_ok") if ok else t("badge_differs")
        tip = html.escape(" · ".join(lines), quote=True)
        about = t("selfcheck_heading") + "\n" + "\n".join(f"- {md_message(x)}" for x in lines)
        return f' · <span title="{tip}">{badge}</span>', about

    # -- layout and wiring -------------------------------------------------------------------------
    def build(self) -> dict:
        """Lay out the status line; returns its components for `wire` once the tabs exist."""
        return dict(line=gr.Markdown(L("starting"), elem_id="status"), timer=gr.Timer(1.0))

    def wire(self, demo: gr.Blocks, parts: dict, predict: PredictTab, checks: gr.Markdown) -> None:
        """Poll the status on page load and each second until start-up is over; `/ping` for health checks."""
        gr.on([demo.load, parts["timer"].tick],
              **event(self.status, None, dict(line=parts["line"], timer=parts["timer"], layers=predict.layer,
                                               heads=predict.head, checks=checks)),
              api_name="status", api_visibility=UI_API, queue=False)
        ping_btn, ping_out = gr.Button(visible=False), gr.Textbox(visible=False)
        ping_btn.click(self.ping, None, ping_out, api_name="ping", api_visibility=UI_API, show_progress="hidden")
