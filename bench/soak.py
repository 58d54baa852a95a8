"""Soak run (not a test of the suite): mixed traffic against the real app for a bounded time; is it stable?

Starts the real app in a child process on loopback (full-size ViT-B/32 with random weights, synthetic
CIFAR-100, its own Gradio upload folder). Four clients send a mix for `--minutes`: index and upload
predictions, attention views, label-set changes (a new small set now and then), the architecture
view, and a small evaluation now and then. Every `--every` seconds it samples the app's RSS, open file
descriptors, threads, and the files in the upload folder and in the results folder, and prints a row;
at the end it compares the second half with the first. `--file-ttl` sets the app's CLIPDEMO_FILE_TTL
(seconds a file stays in the upload folder; default the app's own, an hour), so that a run a few times
longer than it shows the folder level off.

    .venv/bin/python -m bench.soak [--minutes 20] [--every 60] [--file-ttl 300]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

from PIL import Image

from bench.common import rss_mb, served_app, wait_ready
from clipdemo.ui.files import results_dir
def _client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False, download_files=False, httpx_kwargs={"timeout": 120})


def traffic(url: str, k: int, stop: threading.Event, images: list[Path], counts: dict) -> None:
    from gradio_client import handle_file

    rng, c, n = random.Random(k), _client(url), 0
    while not stop.is_set():
        n += 1
        try:
            roll = rng.random()
            if roll < 0.35:
                c.predict(rng.randrange(10_000), 5, api_name="/predict_index")
            elif roll < 0.65:
                c.predict(handle_file(str(rng.choice(images))), 5, api_name="/predict_image")
            elif roll < 0.80:
                c.predict(rng.choice(["rollout", "3", "12"]), rng.choice(["mean", "1", "12"]), api_name="/attention")
            elif roll < 0.90:
                c.predict("\n".join(f"client {k} thing {n} {j}" for j in range(rng.randrange(2, 30))),
                          "a photo of a {}", "clip", api_name="/set_labels")
            elif roll < 0.97:
                c.predict(rng.randrange(1, 5), api_name="/architecture")
            else:
                c.predict("first", 40, 1, 0, "single", "cifar100", api_name="/evaluate")
            counts["ok"] = counts.get("ok", 0) + 1
        except Exception as exc:  # noqa: BLE001 - counted; "Classify an image first" is expected now and then
            key = "busy" if "busy" in str(exc).lower() else "first" if "Classify an image first" in str(exc) else "error"
            counts[key] = counts.get(key, 0) + 1


def sample(pid: int, uploads: Path, results: Path) -> dict:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {"rss": rss_mb(pid)[1], "fds": len(os.listdir(f"/proc/{pid}/fd")), "threads": int(status["Threads"]),
            "uploads": sum(1 for p in uploads.rglob("*") if p.is_file()) if uploads.exists() else 0,
            "results": sum(1 for _ in results.iterdir()) if results.exists() else 0}


def main() -> int:
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=20.0)
    ap.add_argument("--every", type=float, default=60.0)
    ap.add_argument("--file-ttl", type=int, default=0, help="CLIPDEMO_FILE_TTL for the app (0: its default)")
    args = ap.parse_args()
    if not 1 <= args.minutes <= 120 or not 5 <= args.every <= 600:
        ap.error("minutes must be 1..120 and every 5..600 (the run is bounded)")
    with tempfile.TemporaryDirectory(prefix="clipdemo-soak-") as tmp:
        work, uploads = Path(tmp), Path(tmp) / "gradio-uploads"
        images = []
        for i in range(6):
            images.append(work / f"img{i}.png")
            Image.effect_mandelbrot((200 + 40 * i, 150), (-2, -1.2, 1, 1.2), 20 + 10 * i).convert("RGB").save(images[-1])
        results = results_dir()
        env = {"GRADIO_TEMP_DIR": str(uploads)} | ({"CLIPDEMO_FILE_TTL": str(args.file_ttl)} if args.file_ttl else {})
        with served_app(work, extra_env=env) as (proc, url, _):
            wait_ready(_client(url))
            stop, counts = threading.Event(), {}
            clients = [threading.Thread(target=traffic, args=(url, k, stop, images, counts)) for k in range(4)]
            for t in clients:
                t.start()
            rows, start = [], time.monotonic()
            print("| minute | RSS MB | open files | threads | upload files | result files | requests ok |")
            print("|---|---|---|---|---|---|---|")
            while time.monotonic() - start < 60 * args.minutes:
                time.sleep(args.every)
                row = sample(proc.pid, uploads, results)
                rows.append(row)
                print(f"| {(time.monotonic() - start) / 60:.0f} | {row['rss']:,.0f} | {row['fds']} | {row['threads']} | "
                      f"{row['uploads']} | {row['results']} | {counts.get('ok', 0)} |", flush=True)
            stop.set()
            for t in clients:
                t.join(180)
            half = len(rows) // 2
            for key in ("rss", "fds", "threads", "uploads"):
                a = [r[key] for r in rows[:half]] or [0]
                b = [r[key] for r in rows[half:]] or [0]
                print(f"{key}: first half median {statistics.median(a):,.0f}, second half median {statistics.median(b):,.0f}, "
                      f"max {max(a + b):,.0f}")
            print(f"requests: {counts}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
