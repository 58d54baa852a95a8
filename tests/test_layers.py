"""The layers as import contracts (`lint-imports`, configured in pyproject.toml): kept by the tree, and broken,
naming the import, when a module of the core reaches up into the UI."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT = str(Path(sys.executable).with_name("lint-imports"))


def _lint(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LINT, "--no-cache"], cwd=root, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})


def test_the_tree_keeps_every_contract():
    out = _lint(ROOT)
    assert out.returncode == 0, out.stdout[-3000:]
    assert "Contracts: 5 kept, 0 broken." in out.stdout


def test_a_ui_import_in_the_core_breaks_the_layers(tmp_path):
    shutil.copytree(ROOT / "clipdemo", tmp_path / "clipdemo", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    core = tmp_path / "clipdemo" / "core" / "checks.py"
    core.write_text(core.read_text() + "\nfrom ..ui.common import md_text  # a shell's helper, reached from below\n")
    out = _lint(tmp_path)
    assert out.returncode == 1
    assert "Layers: each imports only those below it BROKEN" in out.stdout
    assert "clipdemo.core.checks -> clipdemo.ui.common" in out.stdout
