"""The Gradio Space: the only part of clipdemo that imports gradio.

`app` assembles the page and launches it; `status` is the status line; `tabs/` holds one module per tab,
each with its layout, wiring and handlers (plain methods returning Gradio's `{component: value}` dicts, which
tests call on a built app); `common` holds what tabs share (refusals said as sentences, progress, escapers);
`lang` the visitor's language (English or Turkish, `clipdemo/core/locales/`); `links` and `deeplink` what a
shared link or the visitor's stored label set does as the page opens; `api` the typed endpoints and `mcp`
their MCP server; `files` the downloads.
"""

from .app import build_app, launch_kwargs, main, queue_kwargs

__all__ = ["build_app", "launch_kwargs", "queue_kwargs", "main"]
