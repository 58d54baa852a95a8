"""What each endpoint costs the server in CPU, beside the model work inside it (a cost table for `make bench`).

For every typed endpoint (`gr.api`: the API and MCP tools) and, for information, some of the page's events:
the server process's CPU time per call (all its threads, from /proc/PID/task/*/schedstat, in ns), the median
of 20 calls through gradio_client; beside it, the endpoint's model work: the same `ApiEndpoints` method called
in this process, over a `Runtime` of the same weights, data and backend, with the same warm caches (CPU
time of this process, median of 20). The floor is Gradio's own cost of a call: a no-op event (`/ping`).
Goal: every typed endpoint costs at most 1.5x its model work plus that floor.

    .venv/bin/python -m bench.cost        (also part of `make bench`)
"""

from __future__ import annotations

import base64
import io
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

from PIL import Image

GOAL = 1.5
REPS = 20
LABELS = ["cat", "dog", "car", "tree", "house", "lion", "boat", "plane"]


def server_cpu_s(pid: int) -> float:
    """CPU seconds the process's live threads have run (ns resolution, unlike utime's 10 ms ticks)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):  # a thread that ended meanwhile
            pass
    return total / 1e9


def median_cost(fn: Callable[[], object], clock: Callable[[], float], reps: int = REPS) -> float:
    """Median CPU seconds (by `clock`) of one call of `fn`, after two warm-up calls."""
    fn(), fn()
    samples = []
    for _ in range(reps):
        start = clock()
        fn()
        samples.append(clock() - start)
    return statistics.median(samples)


def _data_url(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def cost_table(client, pid: int, work: Path) -> bool:
    """Print the table for the app served as `pid` (over `bench.common.stand_ins(work)`); True when every typed
    endpoint meets the goal."""
    from gradio_client import handle_file

    from bench.common import stand_ins
    from clipdemo.fakes import cifar_checksums
    from clipdemo.serving.runtime import Runtime
    from clipdemo.serving.settings import Settings
    from clipdemo.ui.api import ApiEndpoints
    ckpt, md5, root = stand_ins(work)
    upload = Image.effect_mandelbrot((320, 240), (-2, -1.2, 1, 1.2), 60).convert("RGB")
    url = _data_url(upload)
    path = work / "cost-upload.png"
    upload.save(path)
    batch = [_data_url(Image.effect_mandelbrot((96, 72), (-2 + i / 50, -1.2, 1, 1.2), 30 + i).convert("RGB"))
             for i in range(8)]
    with cifar_checksums(md5):
        rt = Runtime(Settings(weights=str(ckpt), cache_dir=work / "cache", data_root=root, allow_download=False,
                              search_index=False))  # as the served app: no background index in either
        rt.start()
        rt.settle(600)  # the same backend as the server's (its exported ONNX file is in the shared cache)
        rt.dataset()
    api = ApiEndpoints(rt)
    typed = {  # endpoint -> (the call through the server, the same call in this process)
        "/classify": (lambda: client.predict(url, LABELS, "a photo of a {}", 3, api_name="/classify"),
                      lambda: api.classify(url, LABELS, "a photo of a {}", 3)),
        "/classify_cifar": (lambda: client.predict(15, None, "a photo of a {}", 5, api_name="/classify_cifar"),
                            lambda: api.classify_cifar(15, None, "a photo of a {}", 5)),
        "/classify_batch": (lambda: client.predict(batch, LABELS, "a photo of a {}", 3, api_name="/classify_batch"),
                            lambda: api.classify_batch(batch, LABELS, "a photo of a {}", 3)),
        "/search": (lambda: client.predict("a red car", 24, api_name="/search"),
                    lambda: api.search("a red car", 24)),
        "/architecture_summary": (lambda: client.predict(2, api_name="/architecture_summary"),
                                  lambda: api.architecture_summary(2)),
    }
    page = {  # the page's events, for information (their model work is not separated out)
        "/predict_index (stored feature)": lambda: client.predict(15, 5, api_name="/predict_index"),
        "/predict_image": lambda: client.predict(handle_file(str(path)), 5, api_name="/predict_image"),
    }
    served = lambda fn: median_cost(fn, lambda: server_cpu_s(pid))  # noqa: E731
    floor = served(lambda: client.predict(api_name="/ping"))
    print(f"cost: server CPU per call (median of {REPS}), Gradio's floor (/ping) {1000 * floor:.1f} ms")
    print("| endpoint | server CPU | model work (in process) | work + floor | ratio | goal |")
    print("|---|---|---|---|---|---|")
    ok = True
    for name, (remote, local) in typed.items():
        cost, work_s = served(remote), median_cost(local, time.process_time)
        ratio = cost / (work_s + floor)
        ok &= ratio <= GOAL
        print(f"| {name} | {1000 * cost:.1f} ms | {1000 * work_s:.1f} ms | {1000 * (work_s + floor):.1f} ms | "
              f"{ratio:.2f} | {'yes' if ratio <= GOAL else 'NO'} (<= {GOAL}) |", flush=True)
    for name, remote in page.items():
        print(f"| {name} | {1000 * served(remote):.1f} ms | - | - | - | (information) |", flush=True)
    print(f"    every typed endpoint within {GOAL}x of its model work plus the floor: {'yes' if ok else 'NO'}")
    return ok


def main() -> int:
    warnings.filterwarnings("ignore")
    from gradio_client import Client

    from bench.common import served_app, wait_ready

    with tempfile.TemporaryDirectory(prefix="clipdemo-cost-") as tmp:
        work = Path(tmp)
        with served_app(work) as (proc, url, _):
            client = Client(url, verbose=False, download_files=False)
            wait_ready(client)
            ok = cost_table(client, proc.pid, work)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
