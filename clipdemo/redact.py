"""What a visitor may see of a server-side error: the same text with the server's paths taken out.

Holds `hide_paths(text)`: every absolute file path (`/home/user/.cache/clipdemo/x.pt`, `C:\\data\\x`,
`~/.cache/...`) becomes `…/x.pt`, its last part, while URLs stay whole. The full text goes to the log;
this is for the page.
"""

from __future__ import annotations

import re

__all__ = ["hide_paths"]

# A path starts after a space, quote, bracket or the start of the text (never inside a URL, where a host or
# `:` comes first), with /, ~/ or a drive letter, and runs to the next space, quote or bracket.
_PATH = re.compile(r"""(?<![\w:/.~\\=-])(?:~?/|[A-Za-z]:\\)[^\s'"<>()\[\]]*""")


def _last(match: re.Match) -> str:
    path = match.group(0).rstrip(".,;:")
    tail = match.group(0)[len(path):]
    name = re.split(r"[/\\]", path.rstrip("/\\"))[-1]
    return f"…/{name}{tail}" if name and name != "~" else f"…{tail}"


def hide_paths(text: str) -> str:
    """`text` with every absolute server path shortened to `…/last-part`."""
    return _PATH.sub(_last, text)
