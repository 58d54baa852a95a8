"""The Space settings: space.yaml, README front matter and the gradio pin agree."""

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_space_yaml_matches_readme_front_matter_and_pins():
    import gradio

    space = yaml.safe_load((ROOT / "space.yaml").read_text())
    readme = (ROOT / "README.md").read_text()
    assert readme.startswith("---\n")
    front = yaml.safe_load(readme.split("---\n")[1])
    assert front == space
    assert space["sdk"] == "gradio" and space["app_file"] == "app.py" and space["python_version"] == "3.11"
    pins = dict(line.split("==") for line in (ROOT / "requirements.txt").read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert space["sdk_version"] == pins["gradio"] == gradio.__version__


def test_app_py_is_thin_and_has_no_import_side_effects():
    import subprocess
    import sys

    code = ("import app, sys, threading; "
            "assert threading.active_count() == 1, threading.enumerate(); "
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    assert len((ROOT / "app.py").read_text().splitlines()) <= 10
