"""The README's library example, run verbatim on seeded random weights (`CLIPDEMO_WEIGHTS=random`)."""

from __future__ import annotations

import ast
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent


def library_example() -> str:
    """The Python block that follows the `<!-- library-example -->` marker in README.md."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("<!-- library-example -->", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    return block


def test_the_library_example_is_three_lines():
    code = library_example()
    assert len(code.strip().splitlines()) == 3 and code.startswith("from clipdemo import")


@pytest.mark.slow
def test_the_library_example_runs_verbatim(tmp_path):
    Image.effect_mandelbrot((320, 240), (-2, -1.2, 1, 1.2), 60).convert("RGB").save(tmp_path / "lion.png")
    out = subprocess.run([sys.executable, "-c", library_example()], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300, env={**os.environ, "CLIPDEMO_WEIGHTS": "random", "CLIPDEMO_DOWNLOAD": "0",
                                           "CLIPDEMO_CACHE": str(tmp_path / "cache"),
                                           "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr[-2000:]
    rows = ast.literal_eval(out.stdout.strip())  # what `print` shows: a list of dicts
    assert {r["label"] for r in rows} == {"lion", "tiger", "house cat"}
    assert [set(r) for r in rows] == [{"label", "score", "cosine"}] * 3
    assert rows == sorted(rows, key=lambda r: -r["score"])
    # all three labels are shown, so each score is softmax(100 * cos) over the printed cosines, by hand
    e = [math.exp(100 * r["cosine"]) for r in rows]
    assert [r["score"] for r in rows] == pytest.approx([x / sum(e) for x in e], abs=1e-4)
