"""The real app (`python app.py`) starts while both CPUs are held by busy loops, as on a crowded host."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from uiserver import app_process


@pytest.fixture
def busy_cpus():
    """Two busy-looping processes, one per core of this machine, for the length of a test."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        yield
    finally:
        for p in loops:
            p.kill()
            p.wait()


@pytest.mark.slow
def test_the_app_starts_three_times_while_both_cpus_are_busy(busy_cpus, tmp_path):
    """Each start serves the page and its status line reaches "Model:" (no import race between the thread that
    loads the model and the one that builds the page)."""
    from gradio_client import Client

    env = {"CLIPDEMO_WEIGHTS": "random:tiny", "CLIPDEMO_CACHE": str(tmp_path / "cache"),
           "CLIPDEMO_DATA": str(tmp_path / "no-data"), "CLIPDEMO_DOWNLOAD": "0", "CLIPDEMO_BACKEND": "eager"}
    for run in range(3):
        with app_process(env, tmp_path / f"run{run}.log") as (url, _):
            status = Client(url, verbose=False, download_files=False).predict(api_name="/status")[0]
            for _ in range(240):  # the model loads in the background: up to two minutes
                if "Model:" in status or "❌" in status:
                    break
                time.sleep(0.5)
                status = Client(url, verbose=False, download_files=False).predict(api_name="/status")[0]
            assert "**Model:**" in status, f"start {run + 1}: {status}"


IMPORTED_AT_THREAD_START = """
import sys, threading
from clipdemo.runtime import BACKGROUND_IMPORTS, Runtime
from clipdemo.settings import Settings

seen = {}
def record(self):  # what is imported, and complete, when the start-up thread would begin
    seen.update({n: not getattr(getattr(sys.modules.get(n), "__spec__", None), "_initializing", True)
                 for n in ("clip", "clip.clip", "clip.model", *BACKGROUND_IMPORTS)})
threading.Thread.start = record
Runtime(Settings(weights="random:tiny", allow_download=False)).start()
print(sorted(n for n, done in seen.items() if not done))
"""


def test_start_finishes_the_background_imports_before_its_thread_begins():
    """In a fresh interpreter: when `Runtime.start` starts its thread, clip and everything the thread imports
    lazily are already imported whole (the page's thread never races it for a half-made module)."""
    out = subprocess.run([sys.executable, "-c", IMPORTED_AT_THREAD_START], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"
