"""Load test (not a test of the suite): N concurrent gradio_client sessions, each with its own label set.

Starts the real app in a child process on loopback (full-size ViT-B/32 with random weights, synthetic
CIFAR-100), then for each N runs N sessions for a bounded time. Each session sets its own labels once,
then predicts random CIFAR-100 indices. Reports requests/s, p50/p95 latency, queue rejections, errors,
peak RSS, and whether every answer was made of that session's own labels only.

    .venv/bin/python -m bench.load [--sessions 1 4 16] [--seconds 20]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

from bench.common import rss_mb, served_app, wait_ready
from bench.timing import p95


def session(url: str, k: int, seconds: float, out: dict) -> None:
    from gradio_client import Client

    labels = {f"session {k} label {j}" for j in range(3)}
    lat, wrong, rejected, errors = [], 0, 0, 0
    try:
        client = Client(url, verbose=False, download_files=False)
        client.predict("\n".join(sorted(labels)), "a photo of a {}", "clip", api_name="/set_labels")
    except Exception as exc:  # noqa: BLE001 - counted, the run goes on
        out[k] = dict(lat=[], wrong=0, rejected=0, errors=1, first_error=repr(exc))
        return
    rng = random.Random(k)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        try:
            got = client.predict(rng.randrange(10_000), 3, api_name="/predict_index")[2]
            lat.append(time.perf_counter() - t)
            wrong += {c["label"] for c in got["confidences"]} != labels
        except Exception as exc:  # noqa: BLE001
            if "queue" in str(exc).lower() and "full" in str(exc).lower():
                rejected += 1
            else:
                errors += 1
    out[k] = dict(lat=lat, wrong=wrong, rejected=rejected, errors=errors)


def main() -> int:
    warnings.filterwarnings("ignore")  # third-party deprecation noise would bury the figures
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, nargs="+", default=[1, 4, 16])
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    if not all(1 <= n <= 64 for n in args.sessions) or not 1 <= args.seconds <= 300:
        ap.error("sessions must be 1..64 and seconds 1..300 (the run is bounded)")
    from gradio_client import Client

    with tempfile.TemporaryDirectory(prefix="clipdemo-load-") as tmp:
        with served_app(Path(tmp)) as (proc, url, _):
            wait_ready(Client(url, verbose=False, download_files=False))
            print(f"{'sessions':>8s} {'requests/s':>10s} {'p50 ms':>8s} {'p95 ms':>8s} {'rejected':>8s} "
                  f"{'errors':>6s} {'own labels only':>15s} {'peak RSS MB':>11s}")
            for n in args.sessions:
                out: dict = {}
                threads = [threading.Thread(target=session, args=(url, k, args.seconds, out)) for k in range(n)]
                t0 = time.perf_counter()
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(args.seconds + 120)
                wall = time.perf_counter() - t0
                lat = sorted(x for r in out.values() for x in r["lat"])
                wrong = sum(r["wrong"] for r in out.values())
                print(f"{n:8d} {len(lat) / wall:10.1f} {1000 * statistics.median(lat):8.0f} {1000 * p95(lat):8.0f} "
                      f"{sum(r['rejected'] for r in out.values()):8d} {sum(r['errors'] for r in out.values()):6d} "
                      f"{'yes' if wrong == 0 and lat else f'NO ({wrong})':>15s} {rss_mb(proc.pid)[0]:11,.0f}",
                      flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
