"""Hostile requests through a real server (issue #34), with another visitor's requests timed meanwhile.

Starts the app's own main() in a child process on loopback (full-size ViT-B/32 and multilingual tower, both with
seeded random weights; a synthetic CIFAR-100), then, one at a time:
- a labelled zip holding a 20 MB `labels.csv` of two-character rows, sent to the Evaluate tab's upload event as the
  browser sends it (the queue);
- a 95 MB `classify` body of twenty million two-letter labels (REST);
- a 4 MiB MCP `tools/call` of 1,398,007 empty labels;
and reports for each: the server's RSS growth, how long until it was refused and with what, and the slowest of
another visitor's `/ping` calls made meanwhile (each against the same visitor's `/ping` alone). Then it applies the
largest label set each text tower accepts (the multilingual tower's prompt budget of 128-token prompts; CLIP's
CIFAR-100 with its 18 templates), never cached, while another visitor uploads an image again and again: the
upload's p50/p95/max against the same upload alone.

    .venv/bin/python -m bench.hostile [--quick]      (make bench-hostile)
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import math
import random
import statistics
import sys
import tempfile
import threading
import time
import warnings
import zipfile
from pathlib import Path

import httpx
from PIL import Image

from bench.common import rss_mb, served_app, wait_ready
from bench.timing import p95
from clipdemo.core.labels import CIFAR100_CLASSES, CIFAR_TEMPLATES
from clipdemo.core.multilingual import TOWER_PRESETS, WordPieces, standin_vocabulary

MULTILINGUAL = "multilingual"
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _client(url: str):
    from gradio_client import Client
    return Client(url, verbose=False, download_files=False, httpx_kwargs={"timeout": 120})


class Pinger:
    """Another visitor calling `/ping` back to back, in a thread, recording each call's seconds."""

    def __init__(self, url: str):
        self.client, self.times, self._stop = _client(url), [], threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            t = time.perf_counter()
            self.client.predict(api_name="/ping")
            self.times.append(time.perf_counter() - t)

    def __enter__(self) -> Pinger:
        self._thread.start()
        time.sleep(0.3)
        return self

    def __exit__(self, *exc) -> None:
        time.sleep(0.3)
        self._stop.set()
        self._thread.join(60)


def hostile(url: str, pid: int, name: str, prepare) -> dict:
    """Send one hostile request while another visitor pings; RSS growth, seconds to the refusal, its words.
    `prepare()` builds the request (outside the timing: building 95 MB holds this process's own interpreter)
    and returns what sends it."""
    send = prepare()
    before = rss_mb(pid)[1]
    with Pinger(url) as pinger:
        t = time.perf_counter()
        said = send()
        seconds = time.perf_counter() - t
    after = rss_mb(pid)[1]
    return dict(name=name, rss=after - before, peak=rss_mb(pid)[0], seconds=seconds, said=said[:150],
                ping_max=max(pinger.times), ping_n=len(pinger.times))


def _labelled_zip() -> bytes:
    buf = io.BytesIO()
    png = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(png, "PNG")
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in range(4):
            zf.writestr(f"img{i}.png", png.getvalue())
        rng = random.Random(0)  # two random letters a row: it packs about as well as a real CSV (not a zip bomb)
        rows = "".join(rng.choice(LETTERS) + rng.choice(LETTERS) + "\n" for _ in range(20 * 2**20 // 3))
        zf.writestr("labels.csv", rows.encode())  # 20 MB of two-character rows
    return buf.getvalue()


def _event_index(url: str, elem_id: str, trigger: str) -> int:
    """The queue's index of the event `trigger` of the component with `elem_id`, from the page's config."""
    config = httpx.get(f"{url}/config", timeout=60).json()
    ids = [c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id]
    for i, dep in enumerate(config["dependencies"]):
        if any(t[0] in ids and t[1] == trigger for t in dep["targets"]):
            return dep.get("id", i)
    raise RuntimeError(f"no {trigger} event on #{elem_id}")


def send_labelled_csv(url: str):
    """Upload the zip and run the Evaluate tab's upload event on it, as the browser does; what the page says."""
    packed = _labelled_zip()

    def send() -> str:
        up = httpx.post(f"{url}/gradio_api/upload", timeout=120,
                        files={"files": ("labelled.zip", packed, "application/zip")})
        path = up.json()[0]
        session = f"bench{random.randrange(10**9)}"
        file_data = {"path": path, "orig_name": "labelled.zip", "meta": {"_type": "gradio.FileData"}}
        httpx.post(f"{url}/gradio_api/queue/join", timeout=60,
                   json={"data": [file_data], "fn_index": _event_index(url, "labelled-zip", "upload"),
                         "session_hash": session, "event_data": None, "trigger_id": None})
        with httpx.stream("GET", f"{url}/gradio_api/queue/data", params={"session_hash": session},
                          timeout=120) as r:
            for line in r.iter_lines():
                if line.startswith("data:") and '"process_completed"' in line:
                    output = json.loads(line[5:]).get("output", {})
                    return (f"{len(packed) / 2**20:.0f} MB zip: "
                            + str(output.get("error") or output.get("data", ""))[:300])
        return "(no answer)"
    return send


def send_big_body(url: str):
    """A 95 MB classify body: nineteen million two-letter labels."""
    body = b'{"data": ["data:image/png;base64,AAAA", [' + b",".join([b'"ab"'] * 19_000_000) + b"]]}"

    def send() -> str:
        r = httpx.post(f"{url}/gradio_api/call/classify", content=body, timeout=300,
                       headers={"content-type": "application/json"})
        return f"HTTP {r.status_code} ({len(body) / 2**20:.0f} MB sent): {r.text}"
    return send


def send_mcp(url: str):
    """A 4 MiB MCP tools/call of 1,398,007 empty labels."""
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
            "params": {"name": "classify", "arguments": {"image": "data:,", "candidate_labels": [""] * 1_398_007}}}
    body = json.dumps(call, separators=(",", ":")).encode()

    def send() -> str:
        r = httpx.post(f"{url}/gradio_api/mcp/", content=body, timeout=300,
                       headers={"content-type": "application/json", "accept": "application/json, text/event-stream"})
        return f"HTTP {r.status_code} ({len(body) / 2**20:.1f} MiB sent): {r.text}"
    return send


def largest_multilingual() -> tuple[list[str], list[str]]:
    """As many 126-token prompts (the tower's stand-in vocabulary) as its prompt budget allows, one template."""
    words = WordPieces(standin_vocabulary())
    labels = [f"{'éü' * 30} {'éü' * 30} {i}" for i in range(500)]
    total, budget = itertools.accumulate(words.counts(labels)), TOWER_PRESETS[MULTILINGUAL].prompt_budget
    return labels[:sum(1 for cost in total if cost <= budget)], ["{}"]


def largest_clip(seed: int) -> tuple[list[str], list[str]]:
    """CIFAR-100 with CLIP's 18 templates (17,304 of the 20,000 tokens allowed), in an order of its own."""
    labels = list(CIFAR100_CLASSES)
    random.Random(seed).shuffle(labels)
    return labels, list(CIFAR_TEMPLATES)


def uploads_behind(url: str, image: Path, labels: list[str], templates: list[str], encoder: str) -> dict:
    """Another visitor's upload predictions while one visitor applies `labels` x `templates`: seconds each."""
    from gradio_client import handle_file
    visitor = _client(url)
    visitor.predict("cat\ndog\ncar", "a photo of a {}", "clip", api_name="/set_labels")
    times, done = [], threading.Event()
    out: dict = {}

    def apply() -> None:
        t = time.perf_counter()
        try:
            _client(url).predict("\n".join(labels), "\n".join(templates), encoder, api_name="/set_labels")
        except Exception as exc:  # noqa: BLE001 - reported
            out["error"] = repr(exc)[:200]
        out["set_s"] = time.perf_counter() - t
        done.set()
    applier = threading.Thread(target=apply)
    applier.start()
    time.sleep(0.5)
    while not done.is_set():
        t = time.perf_counter()
        visitor.predict(handle_file(str(image)), 3, api_name="/predict_image")
        times.append(time.perf_counter() - t)
    applier.join()
    return dict(times=times, **out)


def upload_alone(url: str, image: Path, reps: int) -> list[float]:
    from gradio_client import handle_file
    visitor = _client(url)
    visitor.predict("cat\ndog\ncar", "a photo of a {}", "clip", api_name="/set_labels")
    visitor.predict(handle_file(str(image)), 3, api_name="/predict_image")  # warm
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        visitor.predict(handle_file(str(image)), 3, api_name="/predict_image")
        times.append(time.perf_counter() - t)
    return times


def behind_largest_sets(url: str, image: Path, reps: int) -> list[tuple[str, dict]]:
    """The upload alone, then behind each tower's largest set (the multilingual tower loaded first, as a visitor's
    first multilingual set would, so its load is not counted as waiting)."""
    _client(url).predict("kedi\nköpek", "{}", MULTILINGUAL, api_name="/set_labels")
    alone = upload_alone(url, image, reps)
    rows = [("alone", dict(times=alone))]
    rows.append(("behind the largest multilingual set", uploads_behind(url, image, *largest_multilingual(),
                                                                      MULTILINGUAL)))
    rows.append(("behind the largest CLIP set", uploads_behind(url, image, *largest_clip(7), "clip")))
    return rows


def print_behind(rows: list[tuple[str, dict]]) -> None:
    print("| another visitor's upload | n | p50 | p95 | max | the set took |")
    print("|---|---|---|---|---|---|")
    for name, r in rows:
        t = sorted(r["times"]) or [math.nan]
        took = f"{r['set_s']:.1f} s" if "set_s" in r else "-"
        print(f"| {name} | {len(t)} | {1000 * statistics.median(t):,.0f} ms | {1000 * p95(t):,.0f} ms | "
              f"{1000 * t[-1]:,.0f} ms | {took}{' ERROR ' + r['error'] if 'error' in r else ''} |", flush=True)


def main() -> int:
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repetitions of the upload alone")
    q = ap.parse_args().quick
    with tempfile.TemporaryDirectory(prefix="clipdemo-hostile-") as tmp:
        image = Path(tmp) / "upload.png"
        Image.effect_mandelbrot((320, 240), (-2, -1.2, 1, 1.2), 40).convert("RGB").save(image)
        with served_app(Path(tmp)) as (proc, url, _):
            wait_ready(_client(url))
            url = url.rstrip("/")
            with Pinger(url) as quiet:
                time.sleep(3)
            print(f"another visitor's /ping alone: median {1000 * statistics.median(quiet.times):.0f} ms, "
                  f"max {1000 * max(quiet.times):.0f} ms over {len(quiet.times)} calls")
            print("| hostile request | RSS growth | server peak RSS | refused after | another visitor's slowest /ping "
                  "| what it was told |")
            print("|---|---|---|---|---|---|")
            for name, send in (("labelled zip, 20 MB labels.csv", send_labelled_csv),
                               ("95 MB classify body", send_big_body), ("4 MiB MCP call", send_mcp)):
                r = hostile(url, proc.pid, name, lambda: send(url))  # noqa: B023 - called at once
                print(f"| {r['name']} | {r['rss']:+,.0f} MB | {r['peak']:,.0f} MB | {r['seconds']:.2f} s | "
                      f"{1000 * r['ping_max']:,.0f} ms ({r['ping_n']} calls) | {r['said']} |", flush=True)
            print_behind(behind_largest_sets(url, image, 10 if q else 30))
    return 0


if __name__ == "__main__":
    sys.exit(main())
