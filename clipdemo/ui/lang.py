"""The visitor's language in the UI: static text translated in the browser, handlers' words on the server.

Holds `I18N` (the `gr.I18n` of `clipdemo.i18n.STRINGS`, given to `launch`), `L(key)` for static text
(labels, tab names, buttons, Markdown: the browser shows it in its language, and Gradio's settings panel
switches it), `lang()` (the language of the request being handled), `t(key, *values)` for what a handler
says, `say(exc)` for an error, and `HEAD`, a script that keeps a `clipdemo_lang` cookie equal to the page's
language, so handlers follow the settings panel too (the browser's Accept-Language otherwise).
"""

from __future__ import annotations

import gradio as gr
from gradio.context import LocalContext

from ..batch import MAX_BATCH
from ..i18n import STRINGS, Refusal, language, text
from ..images import MAX_BYTES
from ..prompts import MAX_LABELS

__all__ = ["I18N", "L", "lang", "t", "say", "HEAD", "COOKIE", "FILLED"]

# Static strings with places: filled here, once per language, with the limits the core defines.
FILLED = {"about_md": (MAX_LABELS, MAX_BYTES // 2**20), "batch_files": (MAX_BATCH,)}
I18N = gr.I18n(**{code: {**table, **{key: text(key, code, *values) for key, values in FILLED.items()}}
                  for code, table in STRINGS.items()})
COOKIE = "clipdemo_lang"
# Gradio sets <html lang> to the UI language (the browser's, or the one picked in its settings panel).
HEAD = f"""<script>
(() => {{
  // In the Space's frame the page is a third party: there the cookie must be SameSite=None (and Partitioned).
  const attrs = location.protocol === "https:" ? ";path=/;SameSite=None;Secure;Partitioned" : ";path=/;SameSite=Lax";
  const keep = () => {{ document.cookie = "{COOKIE}=" + (document.documentElement.lang || "") + attrs; }};
  keep();
  new MutationObserver(keep).observe(document.documentElement, {{attributes: true, attributeFilter: ["lang"]}});
}})();
</script>"""


def L(key: str):
    """Static text by key, translated in the browser."""
    if key not in STRINGS["en"]:
        raise KeyError(f"No UI string {key!r}.")
    return I18N(key)


def lang() -> str:
    """The language of the request being handled: the page's (cookie), else the browser's, else English."""
    request = LocalContext.request.get(None)
    if request is None:
        return "en"
    try:
        chosen = request.cookies.get(COOKIE, "") or ""
        return language(chosen) if chosen else language(request.headers.get("accept-language", ""))
    except AttributeError:  # a request without headers or cookies (an internal call)
        return "en"


def t(key: str, *values) -> str:
    """A handler's words by key, in the visitor's language."""
    return text(key, lang(), *values)


def say(exc: BaseException) -> str:
    """An error's sentence in the visitor's language (a `Refusal` is translated; other errors are English)."""
    return exc.say(lang()) if isinstance(exc, Refusal) else str(exc)
