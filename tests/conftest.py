"""Shared fixtures: every model, checkpoint and dataset here is made by the tests (nothing downloads)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from clipdemo.fakes import cifar_checksums, write_cifar100
from fixtures import Squares, write_tiny_checkpoints

os.environ.setdefault("CLIPDEMO_DOWNLOAD", "0")  # a test that forgets to isolate itself must not hit the network


def _own_cpus() -> None:
    """Under pytest-xdist (`make test` runs two workers), each worker owns its share of the CPUs: its threads and
    its children's (a server, a CLI, Ray) see that many, as the app would on a machine of that size, so two workers
    never oversubscribe the cores their torch threads spin on."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER"), int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if not worker or count < 2 or not hasattr(os, "sched_setaffinity"):
        return
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < count:
        return
    mine = cpus[int(worker.removeprefix("gw")) % count::count]
    os.sched_setaffinity(0, mine)
    import torch
    torch.set_num_threads(len(mine))


_own_cpus()

# The longest modules first, so that two workers end together (`--dist loadfile` hands out whole modules, in order).
LONGEST_FIRST = ("test_browser_visitor", "test_bulk", "test_startup", "test_sharing", "test_served_parity",
                 "test_browser", "test_request_memory")


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.module.__name__.rsplit(".", 1)[-1], len(rank)))  # stable: else as found


@pytest.fixture(scope="session")
def tiny_ckpts(tmp_path_factory) -> dict[str, Path]:
    return write_tiny_checkpoints(tmp_path_factory.mktemp("ckpt"))


@pytest.fixture(scope="session")
def tiny_loaded(tiny_ckpts):
    from clipdemo.weights.load import load_model
    return load_model(str(tiny_ckpts["state_dict"]), device="cpu")


@pytest.fixture(scope="session")
def vitb32():
    """Full-size ViT-B/32 with seeded random weights (same shapes and cost as the real one)."""
    from clipdemo.weights.load import load_model
    return load_model("random", device="cpu", seed=0)


@pytest.fixture(scope="session")
def cifar_root(tmp_path_factory) -> Path:
    """A CIFAR-100 test split (10,000 images) in the real format, with torchvision's checksums pointed at it."""
    root = tmp_path_factory.mktemp("cifar")
    md5 = write_cifar100(root)
    with cifar_checksums(md5):
        yield root


@pytest.fixture(scope="session")
def squares() -> Squares:
    """The tiny CLIP trained to tell a red square from a blue one (ground truth by construction)."""
    return Squares()


@pytest.fixture(scope="session")
def tiny_index(tiny_loaded, cifar_root):
    """The tiny model's search index of the CIFAR-100 fixture, filled once by the app's own loop
    (`ZeroShot.fill_store`); merge it into a runtime's service with `add_stored_features`."""
    from clipdemo.io.cifar import open_cifar100
    from clipdemo.serving.service import ZeroShot

    zs, data = ZeroShot(tiny_loaded), open_cifar100(cifar_root)
    for _ in zs.fill_store(data, list(range(len(data)))):
        pass
    return zs.cifar


def pytest_terminal_summary(terminalreporter):
    """After a run of the `real` tests, their results as one table (reference, measured, difference, pass)."""
    import sys

    real = sys.modules.get("test_real")
    if real is not None and real.CHECKS:
        from clipdemo.tasks.selfcheck import table
        terminalreporter.section("real weights and data against the published figures")
        terminalreporter.write_line(table(real.CHECKS))


@pytest.fixture(scope="session")
def vitb32_cache(vitb32, tmp_path_factory) -> Path:
    """A cache folder holding the full-size model's vision tower exported to ONNX (once a session), where the
    app's start-up would keep it: tests of the served ONNX path use it instead of exporting again."""
    from clipdemo.serving.backends import export_onnx, onnx_cache_path

    folder = tmp_path_factory.mktemp("vitb32-cache")
    export_onnx(vitb32.model, 224, onnx_cache_path(folder, vitb32.info.identity))
    return folder
