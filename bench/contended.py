"""Load test with bulk work running (not a test of the suite): do visitors still get quick answers?

Starts the real app in a child process on loopback (full-size ViT-B/32 with random weights, synthetic
CIFAR-100). Measures the evaluation's throughput alone first; then, for each N, runs N interactive
clients (each with its own labels, alternating random-index and upload predictions) for a bounded
time with no bulk work, and again while one client evaluates all 10,000 images and another applies
the largest allowed label set once (CIFAR-100 with the 18 templates, in an order of its own so it is
never cached). Reports interactive p50/p95 in both conditions, the bulk jobs' throughput next to
running alone, errors, "busy" refusals, and whether any answer used another session's labels.

    .venv/bin/python -m bench.contended [--clients 1 4 8] [--seconds 20]
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

from PIL import Image

from bench.common import served_app, wait_ready
from bench.hostile import behind_largest_sets, print_behind
from bench.timing import p95
from clipdemo.core.labels import CIFAR100_CLASSES, CIFAR_TEMPLATES
EVAL_ALL = ("all", 1000, 10, 0, "single", "cifar100")


def _client(url: str):
    from gradio_client import Client

    # /cancel answers once the generator's current step is done: allow for a busy step
    return Client(url, verbose=False, download_files=False, httpx_kwargs={"timeout": 120})


def interactive(url: str, k: int, seconds: float, image: Path, out: dict) -> None:
    from gradio_client import handle_file

    labels = {f"client {k} thing {j}" for j in range(3)}
    lat, wrong, busy, errors = [], 0, 0, 0
    c = _client(url)
    c.predict("\n".join(sorted(labels)), "a photo of a {}", "clip", api_name="/set_labels")
    rng, end = random.Random(k), time.perf_counter() + seconds
    while time.perf_counter() < end:
        t = time.perf_counter()
        try:
            if len(lat) % 2:
                got = c.predict(handle_file(str(image)), 3, api_name="/predict_image")[1]
            else:
                got = c.predict(rng.randrange(10_000), 3, api_name="/predict_index")[2]
            lat.append(time.perf_counter() - t)
            wrong += {x["label"] for x in got["confidences"]} != labels
        except Exception as exc:  # noqa: BLE001 - counted, the run goes on
            busy += "busy" in str(exc).lower()
            errors += "busy" not in str(exc).lower()
    out[k] = dict(lat=lat, wrong=wrong, busy=busy, errors=errors)


def evaluation_rate(url: str, seconds: float) -> tuple[float, object]:
    """Start evaluating everything; after `seconds`, images encoded per second (and the job, to cancel)."""
    job = _client(url).submit(*EVAL_ALL, api_name="/evaluate")
    time.sleep(seconds)
    return encoded(job) / seconds, job


def encoded(job) -> int:
    """Images the evaluation job has encoded so far, read from its progress lines ("encoding images: 96/10000")."""
    counts = [int(m.group(1)) for o in job.outputs() if (m := re.search(r"encoding images: (\d+)/", str(o)))]
    if not counts:
        raise RuntimeError(f"no progress line among the evaluation's {len(job.outputs())} outputs")
    return max(counts)


def label_set(url: str, seed: int, out: dict) -> None:
    """Apply the largest allowed label set once, in an order of its own (never cached)."""
    labels = list(CIFAR100_CLASSES)
    random.Random(seed).shuffle(labels)
    t = time.perf_counter()
    try:
        _client(url).predict("\n".join(labels), "\n".join(CIFAR_TEMPLATES), "clip", api_name="/set_labels")
        out["label_set_s"] = time.perf_counter() - t
    except Exception as exc:  # noqa: BLE001 - reported, the run goes on
        out["label_error"] = repr(exc)[:200]


def run_clients(url: str, n: int, seconds: float, image: Path) -> dict:
    out: dict = {}
    threads = [threading.Thread(target=interactive, args=(url, k, seconds, image, out)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 180)
    return out


def summary(out: dict) -> tuple[str, str, int, int, int]:
    lat = sorted(x for r in out.values() for x in r["lat"])
    return (f"{1000 * statistics.median(lat):,.0f}" if lat else "-", f"{1000 * p95(lat):,.0f}",
            sum(r["errors"] for r in out.values()), sum(r["busy"] for r in out.values()),
            sum(r["wrong"] for r in out.values()))


def main() -> int:
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8])
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    if not all(1 <= n <= 32 for n in args.clients) or not 5 <= args.seconds <= 300:
        ap.error("clients must be 1..32 and seconds 5..300 (the run is bounded)")
    with tempfile.TemporaryDirectory(prefix="clipdemo-contended-") as tmp:
        image = Path(tmp) / "upload.png"
        Image.effect_mandelbrot((320, 240), (-2, -1.2, 1, 1.2), 40).convert("RGB").save(image)
        with served_app(Path(tmp)) as (proc, url, _):
            wait_ready(_client(url))
            alone, job = evaluation_rate(url, args.seconds)
            job.cancel()
            time.sleep(2)
            t = time.perf_counter()
            _client(url).predict("\n".join(reversed(CIFAR100_CLASSES)), "\n".join(CIFAR_TEMPLATES), "clip",
                                 api_name="/set_labels")
            label_alone = time.perf_counter() - t
            print(f"alone: evaluation {alone:.1f} images/s; largest label set (1,800 prompts) {label_alone:.1f} s")
            print("| clients | idle p50 | idle p95 | contended p50 | contended p95 | evaluation vs alone | "
                  "label set (s) vs alone | errors | busy | other session's labels |")
            print("|---|---|---|---|---|---|---|---|---|---|")
            for n in args.clients:
                idle = summary(run_clients(url, n, args.seconds, image))
                bulk_out: dict = {}
                labeller = threading.Thread(target=label_set, args=(url, n, bulk_out))
                job = _client(url).submit(*EVAL_ALL, api_name="/evaluate")
                start = time.perf_counter()
                labeller.start()
                busy = summary(run_clients(url, n, args.seconds, image))
                elapsed = time.perf_counter() - start
                rate = encoded(job) / elapsed
                job.cancel()
                labeller.join(300)
                if "label_error" in bulk_out:
                    print(f"    label-set error: {bulk_out['label_error']}")
                print(f"| {n} | {idle[0]} ms | {idle[1]} ms | {busy[0]} ms | {busy[1]} ms | "
                      f"{rate:.1f} img/s = {rate / alone:.0%} | "
                      f"{bulk_out.get('label_set_s', float('nan')):.1f} vs {label_alone:.1f} | "
                      f"{idle[2] + busy[2]} | {idle[3] + busy[3]} | {'none' if idle[4] + busy[4] == 0 else 'YES'} |",
                      flush=True)
                time.sleep(2)
            print_behind(behind_largest_sets(url, image, 10))
    return 0


if __name__ == "__main__":
    sys.exit(main())
