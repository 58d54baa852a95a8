"""The Gradio Space: the only part of clipdemo that imports gradio.

`app` builds and launches the Blocks app; `handlers` and `evaluation` hold the event handlers as
plain methods (tests call them directly); `texts` holds the About text and CSS.
"""

from .app import build_app, launch_kwargs, main
from .handlers import Handlers, LabelState

__all__ = ["build_app", "launch_kwargs", "main", "Handlers", "LabelState"]
