"""Shared by the bench scripts: start the real app in a child process on loopback, with stand-in data."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clipdemo.fakes import write_cifar100, write_full_size_checkpoint
ROOT = Path(__file__).resolve().parent.parent

# The app's own main(), with torchvision's md5 check pointed at the synthetic CIFAR-100 files.
SERVE = """
import sys, json
from clipdemo.fakes import cifar_checksums
from clipdemo.ui import main
with cifar_checksums(json.loads(sys.argv[1])):
    main()
"""


def rss_mb(pid: int) -> tuple[float, float]:
    """(peak, current) resident set size of a process, in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024


def stand_ins(work: Path) -> tuple[Path, dict, Path]:
    """A full-size random-weights checkpoint (official format) and a synthetic CIFAR-100, made once in `work`."""
    ckpt = work / "ViT-B-32-random.pt"
    if not ckpt.exists():
        write_full_size_checkpoint(ckpt)
    root = work / "cifar"
    md5_file = work / "cifar-md5.json"
    if not md5_file.exists():
        md5_file.write_text(json.dumps(write_cifar100(root)))
    return ckpt, json.loads(md5_file.read_text()), root


def start_app(work: Path, backend: str = "auto", extra_env: dict[str, str] | None = None
              ) -> tuple[subprocess.Popen, str, float]:
    """Start `python app.py`'s main in a child process; returns (process, URL, seconds until the page is served)."""
    ckpt, md5, root = stand_ins(work)
    port = 7800 + (os.getpid() + hash(backend)) % 150
    env = {**os.environ, "CLIPDEMO_WEIGHTS": str(ckpt), "CLIPDEMO_CACHE": str(work / "cache"),
           "CLIPDEMO_DATA": str(root), "CLIPDEMO_DOWNLOAD": "0", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_ANALYTICS_ENABLED": "False", "CLIPDEMO_BACKEND": backend,
           "CLIPDEMO_SEARCH_INDEX": "0", **(extra_env or {})}  # a bench that measures the index turns it on
    url = f"http://127.0.0.1:{port}/"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", SERVE, json.dumps(md5)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).read()
            return proc, url, time.perf_counter() - t0
        except OSError:
            if proc.poll() is not None or time.perf_counter() - t0 > 120:
                proc.kill()
                raise RuntimeError("the app did not start") from None
            time.sleep(0.05)


@contextmanager
def served_app(work: Path, backend: str = "auto", extra_env: dict[str, str] | None = None
               ) -> Iterator[tuple[subprocess.Popen, str, float]]:
    """`start_app` for a `with` block: (process, URL, seconds until served); the app is stopped on the way out."""
    proc, url, page_s = start_app(work, backend, extra_env)
    try:
        yield proc, url, page_s
    finally:
        proc.terminate()
        proc.wait(30)


def wait_ready(client, timeout: float = 240) -> None:
    """Until the model is loaded and the background backend choice is done."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        status = client.predict(api_name="/status")[0]
        if "Model:" in status and "image encoder: eager PyTorch ·" not in status:
            return
        time.sleep(0.5)
