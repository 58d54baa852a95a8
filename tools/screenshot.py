"""The README's screenshots: the real app on seeded random weights and the synthetic CIFAR-100, in Debian's
Chromium. docs/screenshot.png: the Predict tab after classifying the notebook's index 15. With `--search`,
docs/search-en.png and docs/search-tr.png: the Search tab from a link, while its index is still being built
(so the page says how much it covers), a result clicked.

    .venv/bin/python tools/screenshot.py [--out docs/screenshot.png] [--search]
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
    ap.add_argument("--search", action="store_true", help="the Search tab in English and Turkish instead")
    args = ap.parse_args()
    if args.search:
        return search_tab()
    out = args.out
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


def search_tab() -> int:
    from gradio_client import Client
    from playwright.sync_api import expect, sync_playwright

    from bench.common import served_app, wait_ready
    from bench.search import INDEXED

    env = {"CLIPDEMO_WEIGHTS": "random", "CLIPDEMO_SEARCH_INDEX": "1"}
    with tempfile.TemporaryDirectory(prefix="clipdemo-shot-") as tmp, \
            served_app(Path(tmp), backend="eager", extra_env=env) as (_, url, _):
        client = Client(url, verbose=False, download_files=False)
        wait_ready(client)
        while not (m := INDEXED.search(client.predict(api_name="/status")[0])) or int(m[1].replace(",", "")) < 1500:
            time.sleep(1)  # a part of the index, so that the page says how much search covers
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            for lang, locale, sure in (("en", "en-US", "results for"), ("tr", "tr-TR", "sonuç")):
                page = browser.new_page(viewport={"width": 1280, "height": 1900}, locale=locale)
                page.goto(url + "?tab=search&q=something+furry+on+grass&n=10")
                expect(page.locator("#search-status")).to_contain_text(sure, timeout=120_000)
                expect(page.locator("#search-classes .js-plotly-plot")).to_be_visible(timeout=60_000)
                page.locator("#search-results .thumbnail-item").nth(1).click()
                expect(page.locator("#search-info")).to_contain_text("#", timeout=60_000)
                time.sleep(1.0)  # the chart finishes drawing
                out = ROOT / "docs" / f"search-{lang}.png"
                page.screenshot(path=str(out), clip={"x": 0, "y": 0, "width": 1280, "height": 1900})
                print(f"wrote {out}")
                page.close()
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
