"""The Gradio Space: the only part of clipdemo that imports gradio.

`app` assembles the page and launches it; `status` is the status line; `tabs/` holds one module per
tab, each with its layout, wiring and handlers (plain methods that tests call directly); `common`
holds what the tabs share (the visitor's `LabelState`, named results to outputs, error sentences); `lang`
the visitor's language (English or Turkish, `clipdemo/locales/`); `deeplink` what a shared link or the
visitor's stored label set does as the page opens.
"""

from .app import build_app, launch_kwargs, main, queue_kwargs
from .common import LabelState

__all__ = ["build_app", "launch_kwargs", "queue_kwargs", "main", "LabelState"]
