"""The README's screenshot (docs/screenshot.png): the real app on seeded random weights and the synthetic
CIFAR-100, its Predict tab after classifying the notebook's index 15, in Debian's Chromium.

    .venv/bin/python tools/screenshot.py [--out docs/screenshot.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]


def main() -> int:
    from playwright.sync_api import expect, sync_playwright

    from bench.common import served_app, wait_ready

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot.png")
    out = ap.parse_args().out
    with tempfile.TemporaryDirectory(prefix="clipdemo-shot-") as tmp:
        with served_app(Path(tmp), backend="eager", extra_env={"CLIPDEMO_WEIGHTS": "random"}) as (_, url, _):
            from gradio_client import Client

            wait_ready(Client(url, verbose=False, download_files=False))
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
                page = browser.new_page(viewport={"width": 1280, "height": 1400})
                page.goto(url + "?index=15&k=5")
                expect(page.locator("#truth")).to_contain_text("True class: lion", timeout=120_000)
                expect(page.locator("#attention-caption")).to_contain_text("attention", timeout=120_000)
                time.sleep(1.0)  # the charts finish drawing
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out), clip={"x": 0, "y": 0, "width": 1280, "height": 1400})
                browser.close()
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
