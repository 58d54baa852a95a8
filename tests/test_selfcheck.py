"""The self-check's comparison logic on synthetic numbers (passing and failing), its refusals, and the
reference data against its sources (torchvision's md5 sums)."""

from __future__ import annotations

import pytest
import torch

from clipdemo.core.model import WeightsInfo
from clipdemo.tasks import selfcheck as ref
from clipdemo.tasks.selfcheck import (Check, accuracy_check, interval_check, not_real_data, not_real_weights,
                                      rollout_check, table, top5_check, wilson)

NB = ref.NOTEBOOK_TOP5  # lion 96.34, tiger 1.04, camel 0.28, lawn_mower 0.26, leopard 0.26


def test_top5_passes_within_tolerance_and_fails_outside():
    near = [(lab, p + 0.08) for lab, p in NB]
    assert top5_check(near, NB, 0.1).passed
    assert not top5_check([(lab, p + 0.12) for lab, p in NB], NB, 0.1).passed
    assert top5_check([(lab, p + 0.4) for lab, p in NB], NB, 0.5).passed  # the CPU tolerance


def test_top5_order_matters_except_between_neighbours_closer_than_the_tolerance():
    swapped_far = [NB[1], NB[0], *NB[2:]]  # tiger first: never within tolerance
    assert not top5_check(swapped_far, NB, 0.5).passed
    assert "order differ" in top5_check(swapped_far, NB, 0.5).difference
    swapped_close = [*NB[:3], NB[4], NB[3]]  # lawn_mower 0.26 and leopard 0.26: 0.004 points apart
    assert top5_check(swapped_close, NB, 0.1).passed
    other = [*NB[:4], ("cheetah", 0.26)]
    assert not top5_check(other, NB, 0.5).passed


def test_accuracy_and_interval_checks():
    assert accuracy_check("x", 64.7, ref.CIFAR100_TOP1_18).passed  # 65.1 - 0.4
    c = accuracy_check("x", 64.5, ref.CIFAR100_TOP1_18)
    assert not c.passed and c.difference == "-0.60 pts"
    assert accuracy_check("x", 10.0, ref.CIFAR100_BENCHMARK, None).passed is None  # information only
    lo, hi = wilson(620, 1000)
    assert (round(lo, 4), round(hi, 4)) == (0.5895, 0.6496)  # Wilson 95%: 62.0% of 1,000
    assert interval_check("s", 620, 1000, ref.CIFAR100_TOP1_SINGLE).passed
    assert not interval_check("s", 560, 1000, ref.CIFAR100_TOP1_SINGLE).passed  # 52.9%-59.0%: 62 outside


def test_rollout_check_is_weak_but_can_fail():
    centred = torch.zeros(7, 7)
    centred[2:5, 2:5] = 1.0
    assert rollout_check(centred / centred.sum()).passed
    cornered = torch.zeros(7, 7)
    cornered[[0, 0, 6, 6], [0, 6, 0, 6]] = 1.0
    assert not rollout_check(cornered / cornered.sum()).passed


def test_table_has_every_row_and_the_verdicts():
    rows = [Check("a", "1%", "1%", "+0.00 pts", True), Check("b", "2%", "3%", "+1.00 pts", False),
            Check("c", "4%", "4%", "+0.00 pts", None)]
    lines = table(rows).splitlines()
    assert lines[0].split() == ["check", "reference", "measured", "difference", "pass"]
    assert [line.split()[-1] for line in lines[1:]] == ["yes", "NO", "info"]


def test_refusals_name_what_is_missing(tmp_path, cifar_root):
    random = WeightsInfo("random", "seeded", None, trained=False)
    assert str(not_real_weights(random)) == "these are random weights; the self-check needs the real ViT-B/32"
    unverified = WeightsInfo("x.pt", "/x.pt", "ab" * 32, trained=True)
    assert "not a known release" in str(not_real_weights(unverified))
    import clip.clip

    from clipdemo.weights.sources import known_release
    openai = clip.clip._MODELS["ViT-B/32"].split("/")[-2]  # the SHA-256 in openai-clip's own URL
    assert not_real_weights(WeightsInfo("ViT-B/32", "u", openai, trained=True, release=known_release(openai))) is None
    assert "cifar-100-python/test is missing" in str(not_real_data(tmp_path))
    assert "not torchvision's f0ef6b0a" in str(not_real_data(cifar_root))  # the synthetic fixture is not the real data


def test_md5_references_are_torchvisions():
    """Read from torchvision's source text: the fixtures repoint the class attributes during the session."""
    import inspect
    import re

    import torchvision.datasets.cifar as tv

    source = inspect.getsource(tv)
    for rel, md5 in {**ref.CIFAR100_MD5, **ref.CIFAR10_MD5}.items():
        name = rel.split("/")[1]
        assert re.search(rf'"{re.escape(name)}".{{0,80}}"{md5}"', source, re.S), (rel, md5)
    assert 'base_folder = "cifar-100-python"' in source and 'base_folder = "cifar-10-batches-py"' in source


def test_the_notebook_reference_prints_as_the_notebook_printed_it():
    """What the classic notebook printed for index 15 ("lion: 96.34%", in its 16-wide column): the reference's
    full-precision values, put through the app's own notebook lines, give the printed text back; its labels are
    torchvision's class names (test_data checks that list against torchvision), best first."""
    from clipdemo.core.labels import CIFAR100_CLASSES
    from clipdemo.core.zeroshot import Prediction

    lines = Prediction((), (), tuple((lab, p / 100) for lab, p in NB), None).lines()
    assert lines[0] == "            lion: 96.34%"
    assert all(lab in CIFAR100_CLASSES for lab, _ in NB) and [p for _, p in NB] == sorted((p for _, p in NB), reverse=True)
    assert sum(p for _, p in NB) < 100


def test_cli_selfcheck_refuses_random_weights_in_one_line(tmp_path, monkeypatch, capsys):
    from clipdemo.cli import main

    monkeypatch.setenv("CLIPDEMO_DATA", str(tmp_path))
    monkeypatch.setenv("CLIPDEMO_CACHE", str(tmp_path))
    assert main(["selfcheck", "--weights", "random:tiny", "--device", "cpu"]) == 2
    assert capsys.readouterr().err == "error: these are random weights; the self-check needs the real ViT-B/32\n"


class _TenImages:
    """A stand-in CIFAR-10 split: 20 images, targets 0..9 twice (the wrapper's interface)."""

    def __init__(self, data):
        self._data = data
        self.targets = [i % 10 for i in range(20)]

    def __len__(self) -> int:
        return 20

    def image(self, i: int):
        return self._data.image(i)


@pytest.mark.slow
def test_full_checks_run_end_to_end_and_fail_loudly_on_the_wrong_model(tiny_loaded, cifar_root):
    from clipdemo.io.cifar import open_cifar100
    from clipdemo.tasks.selfcheck import full_checks
    from clipdemo.serving.service import ZeroShot
    data = open_cifar100(cifar_root)
    checks = full_checks(ZeroShot(tiny_loaded), data, cifar10=_TenImages(data))
    assert [c.name for c in checks] == ["notebook, index 15", "attention rollout, index 15", "CIFAR-100, single prompt",
                                        "CIFAR-100, 18 templates", "CIFAR-100, 18 templates (other recipe)",
                                        "CIFAR-100 text-to-image retrieval, P@10",
                                        "CIFAR-100 text-to-image retrieval, mAP", "CIFAR-10, 18 templates"]
    by = {c.name: c for c in checks}
    assert by["notebook, index 15"].passed is False  # a tiny random model is not the notebook's
    assert all(by[n].passed is False for n in ("CIFAR-100, single prompt", "CIFAR-100, 18 templates",
                                               "CIFAR-10, 18 templates"))
    assert by["CIFAR-100, 18 templates (other recipe)"].passed is None
    assert by["CIFAR-100 text-to-image retrieval, mAP"].passed is None  # no published figure: for information
    assert by["CIFAR-100 text-to-image retrieval, P@10"].reference == "chance 1.00%"
    assert "NO" in table(checks)


@pytest.mark.slow
def test_the_space_shows_its_self_check_only_on_real_files_and_a_failure_as_a_warning(
        tiny_ckpts, cifar_root, tmp_path, monkeypatch):
    from gradio_client import Client

    from clipdemo.tasks import selfcheck
    from clipdemo.serving.runtime import Runtime
    from clipdemo.serving.settings import Settings
    from uiserver import built_page, running_app

    settings = Settings(weights=str(tiny_ckpts["state_dict"]), cache_dir=tmp_path, data_root=cifar_root,
                        allow_download=False, backend="eager", search_index=False)
    plain = Runtime(settings, self_check=selfcheck.background_checks)
    plain.start()
    plain.settle(120)
    page = built_page(plain)
    view = page.status.status()
    assert plain.checks is None and view[page.status.checks] == "" and "self-check" not in view[page.status.line]
    monkeypatch.setattr(selfcheck, "not_real_weights", lambda info: None)  # pretend: the published weights ...
    monkeypatch.setattr(selfcheck, "not_real_data", lambda root, md5s=None: None)  # ... and the real CIFAR-100
    rt = Runtime(settings, self_check=selfcheck.background_checks)
    rt.start()
    rt.settle(300)
    assert [c.name for c in rt.checks] == ["notebook, index 15", "attention rollout, index 15",
                                           "CIFAR-100 sample, single prompt"]
    with running_app(rt) as (url, _):
        line, _timer, _index_timer, _layers, _heads, about, towers = Client(url, verbose=False).predict(
                api_name="/status")
    assert '<span title="Reproduces the notebook: lion 96.34% (ours ' in line
    assert "⚠️ the self-check differs from the published figures</span>" in line  # a tiny random model fails
    assert about.startswith("### Self-check on the real weights")
    assert "n=1,000" in about and "does not match" in about
    assert towers.startswith("**Text encoders.**") and "not loaded yet" in towers  # loaded on first use


def test_cifar10_check_counts_top1_as_a_hand_count_does_in_bulk_chunks(tiny_loaded, cifar_root):
    import clip

    from clipdemo.core.labels import CIFAR10_CLASSES, CIFAR_TEMPLATES
    from clipdemo.io.cifar import open_cifar100
    from clipdemo.serving.scheduler import Priority
    from clipdemo.serving.service import ZeroShot
    from clipdemo.tasks.selfcheck import cifar10_check

    split, zs = _TenImages(open_cifar100(cifar_root)), ZeroShot(tiny_loaded)
    check = cifar10_check(zs, split)
    m, pre, n_ctx = tiny_loaded.model, tiny_loaded.preprocess, tiny_loaded.config.context_length
    with torch.no_grad():  # by hand: encode_image, and each class's 18 prompts through encode_text, averaged
        img = m.encode_image(torch.stack([pre(split.image(i)) for i in range(len(split))])).float()
        img = img / img.norm(dim=-1, keepdim=True)
        cls = []
        for c in CIFAR10_CLASSES:
            t = m.encode_text(clip.tokenize([t.replace("{}", c) for t in CIFAR_TEMPLATES], context_length=n_ctx)).float()
            t = (t / t.norm(dim=-1, keepdim=True)).mean(0)
            cls.append(t / t.norm())
    hand = 100 * float(((img @ torch.stack(cls).T).argmax(1) == torch.tensor(split.targets)).float().mean())
    assert check.name == "CIFAR-10, 18 templates" and check.measured == f"{hand:.2f}%"
    assert zs.gate_stats.grants[Priority.BULK] >= 20 // zs.bulk_images  # the images went in bulk chunks
