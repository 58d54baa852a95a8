"""`pip install .` gives a working `clipdemo` command and library (issue #35): the built wheel, installed into a
fresh venv, answers `clipdemo predict`, and its declared dependency ranges hold for the pinned requirements.

The fresh venv reaches the pinned packages through a `.pth` file naming this project's .venv site-packages (a
second multi-GB torch install would add minutes and nothing to the check); the wheel itself is installed with
`--no-deps`, then `pip check` compares its declared dependencies with what that environment holds."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_in_a_fresh_venv_answers_clipdemo_predict(tmp_path):
    src, dist = tmp_path / "src", tmp_path / "dist"  # built from a copy: setuptools leaves build/ in its source
    shutil.copytree(ROOT / "clipdemo", src / "clipdemo", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist),
                    str(src)], check=True, timeout=300)
    (wheel,) = dist.glob("clipdemo-*.whl")
    fresh = tmp_path / "fresh"
    venv.create(fresh, with_pip=False)
    bin_dir = fresh / "bin"
    purelib = Path(subprocess.run([bin_dir / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    (purelib / "pinned.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # the pinned packages, not clipdemo
    subprocess.run([bin_dir / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, timeout=300)
    where = subprocess.run([bin_dir / "python", "-c", "import clipdemo, clipdemo.io.measured as m; "
                            "print(clipdemo.__file__); print(m.read_measured() is not None)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout.split()
    assert where[0].startswith(str(purelib)) and where[1] == "True"  # the wheel's copy, with its package data
    check = subprocess.run([bin_dir / "python", "-m", "pip", "check"], capture_output=True, text=True, timeout=120)
    assert "clipdemo" not in check.stdout, check.stdout  # every declared range holds for the pinned set
    image = tmp_path / "red.png"
    Image.new("RGB", (40, 40), "red").save(image)
    run = subprocess.run([bin_dir / "clipdemo", "predict", "--weights", "random:tiny", "--image", str(image),
                          "--labels", "red,blue", "--json"], capture_output=True, text=True, timeout=300, cwd=tmp_path,
                         env={"PATH": f"{bin_dir}:/usr/bin:/bin", "CLIPDEMO_DOWNLOAD": "0",
                              "CLIPDEMO_CACHE": str(tmp_path / "cache")})
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout)
    assert out["schema"] == 1 and {r["label"] for r in out["top"]} == {"red", "blue"}
