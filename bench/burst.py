"""A burst (not a test of the suite): N visitors press Classify at the same moment.

Starts the real app in a child process on loopback (full-size ViT-B/32 with random weights, synthetic
CIFAR-100), waits until it is ready, then sends N index predictions at once, each for an image whose
feature is not stored (so each one is a model call), each from its own gradio_client. Reports how many
got results and how many were refused, the refusal sentence, and the waits (p50, p95, max) of the served.

    .venv/bin/python -m bench.burst [--requests 100]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

from bench.common import served_app, wait_ready
from bench.timing import p95


def burst(url: str, n: int) -> dict:
    """N predictions released together; returns latencies of the served, and the refusals' sentences."""
    from gradio_client import Client

    clients = [Client(url, verbose=False, download_files=False) for _ in range(n)]
    go, lat, refused, errors = threading.Event(), [], [], []
    lock = threading.Lock()

    def one(k: int) -> None:
        go.wait()
        t = time.perf_counter()
        try:
            clients[k].predict(1000 + 37 * k, 3, api_name="/predict_index")
            with lock:
                lat.append(time.perf_counter() - t)
        except Exception as exc:  # noqa: BLE001 - counted
            with lock:
                (refused if "busy" in str(exc).lower() else errors).append(str(exc))

    threads = [threading.Thread(target=one, args=(k,)) for k in range(n)]
    for th in threads:
        th.start()
    go.set()
    for th in threads:
        th.join(600)
    return dict(lat=sorted(lat), refused=refused, errors=errors)


def main() -> int:
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=100)
    args = ap.parse_args()
    if not 1 <= args.requests <= 400:
        ap.error("requests must be 1..400 (the run is bounded)")
    with tempfile.TemporaryDirectory(prefix="clipdemo-burst-") as tmp:
        with served_app(Path(tmp)) as (_, url, _):
            from gradio_client import Client

            wait_ready(Client(url, verbose=False, download_files=False))
            out = burst(url, args.requests)
    lat = out["lat"]
    print(f"burst of {args.requests} index predictions (unstored images): {len(lat)} served, "
          f"{len(out['refused'])} refused as busy, {len(out['errors'])} other errors")
    if lat:
        print(f"    waits of the served: p50 {statistics.median(lat):.1f} s, p95 {p95(lat):.1f} s, "
              f"max {lat[-1]:.1f} s")
    for kind in ("refused", "errors"):
        if out[kind]:
            print(f"    first {kind[:-1] if kind == 'errors' else 'refusal'}: {out[kind][0][:200]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
