"""The Space settings: space.yaml, README front matter and the gradio pin agree."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def _front_matter() -> dict:
    readme = (ROOT / "README.md").read_text()
    assert readme.startswith("---\n")
    return yaml.safe_load(readme.split("---\n")[1])


def test_space_yaml_matches_readme_front_matter_and_pins():
    import gradio

    space = yaml.safe_load((ROOT / "space.yaml").read_text())
    assert _front_matter() == space
    assert space["sdk"] == "gradio" and space["app_file"] == "app.py"
    pins = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert space["sdk_version"] == pins["gradio"] == gradio.__version__


# ZeroGPU's supported Pythons (hub docs, spaces-zerogpu.md, 2026): the CPU hardware takes any 3.x.
ZEROGPU_PYTHONS = {"3.10.13", "3.12.12"}
DURATION = re.compile(r"\d+(s|m|h)")  # "30m", "1h": the Hub's duration strings


def test_front_matter_follows_the_hub_rules():
    front = _front_matter()
    assert len(front["short_description"]) <= 60  # the Hub refuses longer
    assert str(front["python_version"]) in ZEROGPU_PYTHONS  # accepted by ZeroGPU and by the CPU hardware
    assert DURATION.fullmatch(str(front["startup_duration_timeout"]))
    assert {"clip", "zero-shot-image-classification"} <= set(front["tags"])
    assert front["suggested_hardware"] in {"cpu-basic", "cpu-upgrade", "zero-a10g"}


def test_preload_names_a_pinned_file_of_the_weights_registry():
    from clipdemo.weights.sources import TOWER_ROLES, TOWER_SOURCES, WEIGHT_SOURCES
    front = _front_matter()
    image, tower = (entry.split(" ") for entry in front["preload_from_hub"])
    hub = [m for m in WEIGHT_SOURCES["ViT-B/32"].mirrors if m.repo_id is not None]
    assert tuple(image) == (hub[0].repo_id, hub[0].filename, hub[0].revision)
    assert WEIGHT_SOURCES["ViT-B/32"].mirrors[0] == hub[0]  # the preloaded file is the chain's first, found offline
    # the multilingual text tower: the first (safetensors, no pickle) mirror of each of its files, at one commit
    first = [TOWER_SOURCES["multilingual"].files[role].mirrors[0] for role in TOWER_ROLES]
    assert tower == [first[0].repo_id, ",".join(m.filename for m in first), first[0].revision]
    assert {m.revision for m in first} == {first[0].revision} and {m.repo_id for m in first} == {first[0].repo_id}
    for revision in (image[2], tower[2]):
        assert len(revision) == 40 and int(revision, 16) >= 0  # a commit, never a branch
    assert front["models"] == [image[0], tower[0]]


@pytest.mark.slow  # a fresh interpreter in a subprocess
def test_app_py_is_thin_and_has_no_import_side_effects():
    import subprocess
    import sys

    code = ("import app, sys, threading; "
            "assert threading.active_count() == 1, threading.enumerate(); "
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    assert len((ROOT / "app.py").read_text().splitlines()) <= 10
