"""The visitor's language in the UI: static text translated in the browser, handlers' words per request.

Handlers take the `gr.Request` Gradio passes them (never a visible input) and speak `lang_of(request)`: the
`clipdemo_lang` cookie, else Accept-Language, else English. `HEAD` keeps that cookie equal to the page's language,
so handlers follow Gradio's settings panel too.
"""

from __future__ import annotations

import gradio as gr

from ..core import checks
from ..core.labels import MAX_LABELS
from ..core import words
from ..core.words import STRINGS, language
from ..io.images import MAX_BYTES
from ..tasks.classify import MAX_BATCH

__all__ = ["I18N", "say", "lang_of", "HEAD", "COOKIE", "FILLED"]

# Static strings with places: filled here, once per language, with the limits the core defines.
FILLED = {"about_md": (MAX_LABELS, MAX_BYTES // 2**20), "batch_files": (MAX_BATCH,),
          "eval_subset_all": (f"{checks.TEST_SIZE:,}",), "eval_tpl_single": ("{}",)}
I18N = gr.I18n(**{code: {**table, **{key: words.say(key, code, *values) for key, values in FILLED.items()}}
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


def say(key: str, lang: str | None = None, *values):
    """The string `key`: in `lang`, its places filled (a handler's words, `core.words.say`); without a language,
    static text the browser says in its own (labels, tab names, buttons, Markdown), switched by Gradio's settings."""
    if lang is not None:
        return words.say(key, lang, *values)
    if key not in STRINGS["en"] or values:
        raise KeyError(f"No static UI string {key!r}" + (" (static text has no values)" if values else "") + ".")
    return I18N(key)


def lang_of(request: gr.Request | None) -> str:
    """The language of a request: the page's (cookie), else the browser's, else English (also for a call
    without a request: a test's, or an internal one)."""
    if request is None:
        return "en"
    try:
        chosen = request.cookies.get(COOKIE, "") or ""
        return language(chosen) if chosen else language(request.headers.get("accept-language", ""))
    except AttributeError:  # a request without headers or cookies
        return "en"
