"""Keeping temporary folders bounded: files older than an age are removed by a sweep that never stops.

Why not Gradio's own `delete_cache`: in Gradio 6.31 its sweep iterates a set of paths that request threads add to,
so under steady traffic it raises "Set changed size during iteration" and ends for good, and the upload folder grows
without bound (`bench/soak.py` showed it; a test reproduces the race). No gradio here.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

__all__ = ["sweep", "Janitor"]

log = logging.getLogger(__name__)


def _age_stamp(st: os.stat_result) -> float:
    # Gradio touches a cached file it hands out again (os.utime), which moves both times; a copy keeps mtime.
    return max(st.st_mtime, st.st_ctime)


def sweep(folder: Path, max_age_s: float, *, now: float | None = None) -> int:
    """Remove the files under `folder` last touched more than `max_age_s` ago, then its empty sub-folders
    that are as old (a folder just made for a file being written is left alone); returns the files
    removed. Races with other threads (a file removed or added meanwhile) are not errors."""
    cutoff = (time.time() if now is None else now) - max_age_s
    removed = 0
    for root, _dirs, files in os.walk(folder, topdown=False):
        for name in files:
            path = os.path.join(root, name)
            try:
                if _age_stamp(os.lstat(path)) < cutoff:
                    os.remove(path)
                    removed += 1
            except OSError:  # gone already, or not ours to remove
                pass
        if root != str(folder):
            try:
                if _age_stamp(os.lstat(root)) < cutoff:
                    os.rmdir(root)  # only when empty
            except OSError:
                pass
    return removed


class Janitor:
    """A daemon thread that sweeps its folders every `every_s` seconds, each keeping files for its own age
    (`ages`: folder -> seconds); after each sweep it calls `after` (the UI forgets Gradio's records of removed
    files there). Never dies of an error in a sweep: it logs it and sweeps again next time."""

    def __init__(self, ages: Mapping[Path, float], every_s: float, after: Callable[[], None] | None = None):
        self.ages, self.every_s, self.after = dict(ages), every_s, after
        self.sweeps = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="clipdemo-janitor", daemon=True)

    def start(self) -> Janitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def sweep_now(self) -> int:
        """One sweep of every folder (and the `after` hook); returns the files removed."""
        removed = 0
        for folder, max_age_s in self.ages.items():
            try:
                removed += sweep(folder, max_age_s)
            except Exception:  # noqa: BLE001 - a sweep must never end the janitor
                log.exception("sweeping %s failed", folder)
        try:
            if self.after is not None:
                self.after()
        except Exception:  # noqa: BLE001
            log.exception("after-sweep hook failed")
        self.sweeps += 1
        return removed

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            removed = self.sweep_now()
            if removed:
                log.info("removed %d old files", removed)
