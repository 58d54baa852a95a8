"""What one request may cost the server in memory, whatever its images decode to (issue #22)."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image

from uiserver import app_process

HUGE = (4000, 2500)  # 10 megapixels: 30 MB as RGB once decoded, ~30 KB as a flat-colour PNG on the wire
BOUND = 2**29  # 512 MB: a quarter of what 64 kept decoded would take (it was 20 MP and 1 GB: the same share)


def _memory(pid: int) -> dict[str, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {k: int(fields[k].split()[0]) * 1024 for k in ("VmRSS", "VmHWM")}


def _png_url(size: tuple[int, int], colour: tuple[int, int, int]) -> str:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.mark.slow
def test_a_batch_of_64_huge_images_grows_the_server_by_less_than_512_mb(tmp_path):
    """64 images of 10 megapixels each (1.9 GB if all were kept decoded) in one `classify_batch` call: the
    server's peak RSS during the call grows by less than 512 MB, and the answer is all 64 results (20 MP
    images grew it by 189 MB, 10 MP ones cost half the time)."""
    from gradio_client import Client

    urls = [_png_url(HUGE, (200, 30, 30)), _png_url(HUGE, (30, 30, 200))] * 32
    assert sum(len(u) for u in urls) < 8 * 2**20  # small on the wire
    env = {"CLIPDEMO_WEIGHTS": "random:tiny", "CLIPDEMO_CACHE": str(tmp_path / "cache"),
           "CLIPDEMO_DATA": str(tmp_path / "no-data"), "CLIPDEMO_DOWNLOAD": "0", "CLIPDEMO_BACKEND": "eager"}
    with app_process(env, tmp_path / "app.log") as (url, proc):
        client = Client(url, verbose=False, download_files=False)
        client.predict(urls[:1], ["red", "blue"], "a photo of a {}", 1, api_name="/classify_batch")  # warm up
        Path(f"/proc/{proc.pid}/clear_refs").write_text("5")  # the peak RSS starts again from here
        before = _memory(proc.pid)["VmRSS"]
        out = client.predict(urls, ["red", "blue"], "a photo of a {}", 1, api_name="/classify_batch")
        grown = _memory(proc.pid)["VmHWM"] - before
    assert [item["image"] for item in out] == list(range(64))
    assert all(len(item["predictions"]) == 1 for item in out)
    print(f"peak RSS growth during the call: {grown / 2**20:.0f} MB")
    assert grown < BOUND, f"the server's peak RSS grew by {grown / 2**20:.0f} MB"
