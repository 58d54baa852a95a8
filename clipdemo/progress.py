"""The two shapes long work shares with its callers: a progress callback, and the error that stops it.

Holds `ProgressFn` (`(done, total, what) -> None`, the one progress type every module imports) and
`Cancelled`. Holds no scheduling and no UI; the UI adapts `gr.Progress` to `ProgressFn`.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["ProgressFn", "Cancelled"]

ProgressFn = Callable[[int, int, str], None]  # (done, total, what); total 0 when unknown


class Cancelled(RuntimeError):
    """The caller asked to stop a long run."""
