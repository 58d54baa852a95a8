"""The multilingual text tower (issue #25): parity with sentence-transformers' own `encode`, the registry's pins,
the real loading path through a loopback Hub, the lazy load, the cache keys, the Turkish presets, the refusals,
the label-language hint, the evaluation of the label languages, and the CLI."""

from __future__ import annotations

import hashlib
import re
import json
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest
import torch
from PIL import Image

from clipdemo.core.labels import (CIFAR100_CLASSES, CIFAR100_CLASSES_PAPER, LABEL_PRESETS, PROMPT_BUDGET,
                                  TEMPLATE_SETS, LabelSet, PromptError, suggests_multilingual, true_name, with_turkish)
from clipdemo.core.model import WeightsError
from clipdemo.core.multilingual import (HUB_REPO, MAX_TOKENS, TOWER_PRESETS, VOCAB_SIZE, WordPieces,
                                        build_from_state_dicts, standin_vocabulary, text_features)
from clipdemo.core.turkish import CIFAR100_CLASSES_TR, CIFAR_TEMPLATES_TR
from clipdemo.serving.service import ZeroShot
from clipdemo.weights.download import Hub
from clipdemo.weights.formats import read_checkpoint
from clipdemo.weights.load import load_tower
from clipdemo.weights.sources import TOWER_ROLES, TOWER_SOURCES, Mirror, TowerSource, WeightSource
from fixtures import loopback_server, write_tower_snapshot
from clipdemo.tasks.classify import predict_image

ROOT = Path(__file__).resolve().parent.parent
TEXTS = ["bir aslan fotoğrafı", "a photo of a lion", "Kedi, köpek ve kuş.", "مرحبا بالعالم", "שלום עולם",
         "🦁 aslan", "日本の猫", "x " * 60]


def _normalised(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


@pytest.fixture(scope="module")
def full_snapshot(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """A full-size random tower (DistilBERT 6 x 768, the real vocabulary's size) in the Hub repo's layout."""
    folder = tmp_path_factory.mktemp("mclip-full")
    return folder, write_tower_snapshot(folder, TOWER_PRESETS["multilingual"], seed=0)


@pytest.fixture(scope="module")
def tiny_snapshot(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    folder = tmp_path_factory.mktemp("mclip-tiny")
    return folder, write_tower_snapshot(folder)


def _sentence_transformers(folder: Path, texts: list[str]) -> torch.Tensor:
    from sentence_transformers import SentenceTransformer

    return _normalised(SentenceTransformer(str(folder), device="cpu").encode(texts, convert_to_tensor=True).float())


def test_our_forward_pass_equals_sentence_transformers_encode_at_full_size(full_snapshot):
    """Same files, same texts: our DistilBERT -> masked mean -> dense equals sentence-transformers' `encode` (its
    own Transformer, Pooling and Dense modules reading the repo's layout) to 1e-5, on random weights of the real
    architecture and a vocabulary of the real size; the pieces are the cased WordPiece ones (nothing lower-cased,
    no accent stripped, nothing cut)."""
    folder, files = full_snapshot
    tower = build_from_state_dicts(read_checkpoint(files["bert"]), read_checkpoint(files["dense"]))
    assert tower.config == TOWER_PRESETS["multilingual"]  # 6 layers, 768 wide, 12 heads, 119,547 pieces, -> 512
    tokenizer = WordPieces(str(files["vocab"]))
    ours = text_features(tower, *tokenizer(TEXTS))  # [8, 512]
    ref = _sentence_transformers(folder, TEXTS)
    assert ours.shape == (len(TEXTS), 512)
    assert torch.allclose(ours, ref, atol=1e-5), (ours - ref).abs().max()
    assert tokenizer.pieces("Fotoğrafı") == ["F", "##oto", "##ğra", "##fı"]  # cased, ğ kept (the stand-in's pieces)


def test_the_registry_pins_each_file_of_the_hub_repo_by_sha256():
    source = TOWER_SOURCES["multilingual"]
    assert tuple(source.files) == TOWER_ROLES == ("bert", "dense", "vocab")
    mirrors = [m for role in TOWER_ROLES for m in source.files[role].mirrors]
    assert {m.repo_id for m in mirrors} == {HUB_REPO} == {"sentence-transformers/clip-ViT-B-32-multilingual-v1"}
    assert {m.revision for m in mirrors} == {"58edf8cada9e398793dca955574a48cbb7f18be2"}  # one commit, not a branch
    pins = {m.filename: m.sha256 for m in mirrors}
    assert pins == {
        "model.safetensors": "7b968c09938603158413ea2c91af82e82158ebb6db901a6cf97c28ce7d7ebc6d",
        "pytorch_model.bin": "a220db68008f8d22d5899fbb71f51e95a34bc42402ecb967c8d42b3ab0e5000f",
        "2_Dense/model.safetensors": "d12568dc7300970a4d3dbb49068ad16cd89b99840b74b026f8e48071e9414f74",
        "2_Dense/pytorch_model.bin": "616d24a48f22b1097c30423a6054b8ac025fedf31ee9fbb05d5c963c56a14ecf",
        "vocab.txt": "fe0fda7c425b48c516fc8f160d594c8022a0808447475c1a7c6d6479763f310c",
    }
    # safetensors first (no pickle); the torch.save files after them are read with weights_only=True
    assert [source.files[r].mirrors[0].filename for r in ("bert", "dense")] == ["model.safetensors",
                                                                               "2_Dense/model.safetensors"]


def _loopback_source(base: str, files: dict[str, Path], revision: str) -> dict[str, TowerSource]:
    def mirror(path: Path, name: str) -> Mirror:
        return Mirror(name, hashlib.sha256(path.read_bytes()).hexdigest(), repo_id="org/mclip", revision=revision,
                      endpoint=base)
    names = {"bert": "model.safetensors", "dense": "2_Dense/model.safetensors", "vocab": "vocab.txt"}
    return {"tiny": TowerSource("tiny", {r: WeightSource(r, (mirror(files[r], names[r]),)) for r in TOWER_ROLES},
                                aligned_with="tiny release")}


def _released(loaded, release: str):
    """`loaded` as if its file were the known release `release` (the real tower goes with that release only)."""
    import dataclasses

    return dataclasses.replace(loaded, info=dataclasses.replace(loaded.info, release=release))


def test_the_real_loading_path_through_a_loopback_hub_equals_sentence_transformers(tiny_snapshot, tiny_loaded,
                                                                                   tmp_path):
    """The Hub files fetched at a pinned revision (hf_hub_download, each verified), read with no pickle, loaded into
    the tower: its features equal sentence-transformers' on the same files; the second load asks no host."""
    folder, files = tiny_snapshot
    revision = "0123456789abcdef0123456789abcdef01234567"
    names = {"bert": "model.safetensors", "dense": "2_Dense/model.safetensors", "vocab": "vocab.txt"}
    routes = {f"/org/mclip/resolve/{revision}/{names[r]}": files[r].read_bytes() for r in TOWER_ROLES}
    hub = Hub(tmp_path / "hf")
    image = _released(tiny_loaded, "tiny release")
    with loopback_server(routes) as (base, hits):
        sources = _loopback_source(base, files, revision)
        tower = load_tower(image, cache_dir=tmp_path / "c", hub=hub, sources=sources, name="tiny")
        assert set(routes) <= set(hits)
        n = len(hits)
        again = load_tower(image, cache_dir=tmp_path / "c", hub=hub, sources=sources, name="tiny")
        assert len(hits) == n  # from the Hugging Face cache, no request
        other = load_tower(tiny_loaded, cache_dir=tmp_path / "c", hub=hub, sources=sources, name="tiny")
        assert len(hits) == n and not other.info.trained  # other image weights: a random tower, said so
    assert tower.info.trained and tower.info.name == "tiny" and again.info.sha256 == tower.info.sha256
    assert tower.info.origin.endswith("@0123456/model.safetensors")  # the file actually used
    ours = text_features(tower.model, *tower.tokenizer(TEXTS))
    assert torch.allclose(ours, _sentence_transformers(folder, TEXTS), atol=1e-5)


def test_a_tampered_hub_file_is_refused_with_the_fix(tiny_snapshot, tiny_loaded, tmp_path):
    _, files = tiny_snapshot
    revision = "0123456789abcdef0123456789abcdef01234567"
    routes = {f"/org/mclip/resolve/{revision}/model.safetensors": files["bert"].read_bytes() + b"x",
              f"/org/mclip/resolve/{revision}/2_Dense/model.safetensors": files["dense"].read_bytes(),
              f"/org/mclip/resolve/{revision}/vocab.txt": files["vocab"].read_bytes()}
    with loopback_server(routes) as (base, _):
        with pytest.raises(WeightsError, match=r"multilingual text encoder could not be loaded: no verified file for "
                                               r"bert \(tried: .*SHA-256 mismatch.*Fix: preload its files"):
            load_tower(_released(tiny_loaded, "tiny release"), cache_dir=tmp_path / "c", hub=Hub(tmp_path / "hf"),
                       sources=_loopback_source(base, files, revision), name="tiny")


def test_no_download_allowed_says_what_was_tried_and_how_to_fix_it(vitb32, tmp_path):
    """OpenAI's ViT-B/32 goes with the registered tower: with no file cached and downloads off, the sentence names
    the file, what was tried and the fixes (nothing is fetched)."""
    with pytest.raises(WeightsError) as err:
        load_tower(_released(vitb32, "OpenAI ViT-B/32"), cache_dir=tmp_path, hub=Hub(tmp_path / "hf"),
                   allow_download=False)
    assert str(err.value).startswith("The multilingual text encoder could not be loaded: no verified file for "
                                     "multilingual DistilBERT (tried: downloads are disabled")
    assert 'choose "English (CLIP\'s own text encoder)"' in str(err.value)


def test_a_checkpoint_that_is_not_the_tower_is_refused_by_name(tiny_snapshot):
    _, files = tiny_snapshot
    bert, dense = read_checkpoint(files["bert"]), read_checkpoint(files["dense"])
    with pytest.raises(WeightsError, match="no tensor embeddings.word_embeddings.weight"):
        build_from_state_dicts({k: v for k, v in bert.items() if "word_embeddings" not in k}, dense)
    with pytest.raises(WeightsError, match=r"missing \[\], unexpected \['extra'\]"):
        build_from_state_dicts({**bert, "extra": torch.zeros(1)}, dense)


@pytest.mark.slow  # a fresh interpreter in a subprocess
def test_the_tower_loads_lazily_no_transformers_and_no_memory_until_first_use(tmp_path):
    """In a fresh process: the service runs CLIP's own text tower without importing transformers or building the
    tower; the first multilingual prediction loads it (once), and the second reuses it."""
    script = f"""
import json, sys
from PIL import Image
sys.path.insert(0, {str(ROOT / 'tests')!r})
from clipdemo.serving.runtime import open_service
from clipdemo.serving.settings import Settings
from clipdemo.core.labels import LabelSet
from clipdemo.tasks.classify import predict_image
zs = open_service(Settings(weights="random:tiny", cache_dir=__import__("pathlib").Path({str(tmp_path)!r}),
                           allow_download=False))
image = Image.new("RGB", (32, 32), "red")
predict_image(zs, image, LabelSet.of(["lion", "tiger"], ["a photo of a {{}}"]), k=2)
before = ("transformers" in sys.modules, zs.tower_loaded is None, zs._engine.tower is None)
predict_image(zs, image, LabelSet.of(["aslan", "kaplan"], ["bir {{}} fotoğrafı"], encoder="multilingual"), k=2)
first = zs.tower_loaded
predict_image(zs, image, LabelSet.of(["deve", "kedi"], ["{{}}"], encoder="multilingual"), k=2)
print(json.dumps({{"before": before, "after": ["transformers" in sys.modules, first is not None,
                  zs.tower_loaded is first, zs._engine.tower is first.model], "random": not first.info.trained}}))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out == {"before": [False, True, True], "after": [True, True, True, True], "random": True}


class _Counting:
    """Counts the service's text model calls by tower."""

    def __init__(self, zs: ZeroShot, monkeypatch):
        self.calls = {"clip": 0, "multilingual": 0}
        for name, task in (("clip", "encode_prompts"), ("multilingual", "encode_multilingual")):
            real = getattr(zs._tasks, task)

            def counted(*args, _real=real, _name=name):
                self.calls[_name] += 1
                return _real(*args)
            monkeypatch.setattr(zs._tasks, task, counted)


def test_switching_the_tower_re_encodes_and_switching_back_does_not(tiny_loaded, monkeypatch):
    zs = ZeroShot(tiny_loaded)
    count = _Counting(zs, monkeypatch)
    english = LabelSet.of(["lion", "tiger", "camel"], ["a photo of a {}"])
    multi = LabelSet.of(["lion", "tiger", "camel"], ["a photo of a {}"], encoder="multilingual")
    assert multi != english and hash(multi) != hash(english) and multi.labels == english.labels
    clip_feats = zs.text_features(english)
    assert count.calls == {"clip": 1, "multilingual": 0}
    multi_feats = zs.text_features(multi)
    assert count.calls == {"clip": 1, "multilingual": 1} and not torch.allclose(clip_feats, multi_feats)
    assert zs.text_features(english) is clip_feats and zs.text_features(multi) is multi_feats  # both cached
    assert count.calls == {"clip": 1, "multilingual": 1}
    assert zs.has_text_features(LabelSet.of(["lion", "tiger", "camel"], ["a photo of a {}"]))  # switched back: cached


def test_multilingual_features_are_the_towers_own_ensembled_per_label(tiny_loaded):
    """Label features from the service equal the tower's features of the prompts (the reference), averaged over
    the templates and normalised, as CLIP's own."""
    zs = ZeroShot(tiny_loaded)
    label_set = LabelSet.of(["aslan", "kaplan"], ["bir {} fotoğrafı", "bulanık bir {} fotoğrafı."],
                            encoder="multilingual")
    got = zs.text_features(label_set)  # [2, 32]
    tower = zs.tower_loaded
    prompts = text_features(tower.model, *tower.tokenizer(label_set.prompts())).reshape(2, 2, -1)  # [L, T, D]
    assert torch.allclose(got, _normalised(prompts.mean(dim=1)), atol=1e-6)


def test_the_turkish_presets_are_cifar_100_in_order_and_unique():
    names = LABEL_PRESETS["cifar100-tr"].items
    assert names == CIFAR100_CLASSES_TR and len(names) == 100
    assert len({n.casefold() for n in names}) == 100
    assert all(unicodedata.is_normalized("NFC", n) and n == " ".join(n.split()) for n in names)
    assert names[CIFAR100_CLASSES.index("lion")] == "aslan" and names[CIFAR100_CLASSES.index("ray")] == "vatoz"
    assert names[CIFAR100_CLASSES.index("seal")] == "fok" and names[CIFAR100_CLASSES.index("sea")] == "deniz"
    assert TEMPLATE_SETS["single-tr"].items == ("bir {} fotoğrafı",)
    assert TEMPLATE_SETS["cifar18-tr"].items == CIFAR_TEMPLATES_TR and len(set(CIFAR_TEMPLATES_TR)) == 18
    assert all(t.count("{}") == 1 for t in CIFAR_TEMPLATES_TR)
    turkish = LabelSet.preset("cifar100-tr", "cifar18-tr", encoder="multilingual")
    assert turkish.size == 1800 and turkish.language == "tr" and LabelSet.preset().language == "en"
    counts = WordPieces(standin_vocabulary()).counts(turkish.prompts())
    assert max(counts) <= MAX_TOKENS and PROMPT_BUDGET < sum(counts) <= TOWER_PRESETS["multilingual"].prompt_budget


def test_class_names_in_the_sets_spelling_and_turkish_beside_english():
    assert true_name(LABEL_PRESETS["cifar100-tr"].items, "lion", "cifar100-tr") == "aslan"
    assert true_name(CIFAR100_CLASSES_PAPER, "aquarium_fish", "cifar100-paper") == "aquarium fish"
    assert true_name(("cat", "dog"), "lion", None) == "lion"
    assert with_turkish("lion") == "lion (aslan)" and with_turkish("maple tree") == "maple tree (akçaağaç)"
    assert with_turkish("aslan") == "aslan" and with_turkish("cat") == "cat"


def test_the_stand_in_vocabulary_has_the_real_size_and_bert_layout():
    vocab = standin_vocabulary()
    assert len(vocab) == len(set(vocab)) == VOCAB_SIZE == 119_547
    assert [vocab[i] for i in (0, 100, 101, 102, 103)] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    pieces = WordPieces(vocab)
    assert pieces.size == VOCAB_SIZE and "[UNK]" not in pieces.pieces("çğıöşü İstanbul")


@pytest.mark.parametrize("labels, templates, message", [
    (["a " * 99, "b"], ["{} " + "c " * 30], "The prompt for label 1 is 131 tokens long; the multilingual text "
                                             "encoder reads at most 128, and nothing is cut short."),
    ([f"l{i} " + "x " * 8 for i in range(300)], [f"t{j} {{}}" for j in range(12)],
     "These prompts are 56,880 tokens for the multilingual text encoder; the limit is 30,000."),
])
def test_too_many_tokens_are_refused_never_cut(tiny_loaded, labels, templates, message):
    zs = ZeroShot(tiny_loaded)
    label_set = LabelSet.of(labels, templates, encoder="multilingual")  # CLIP's 77 tokens do not apply here
    with pytest.raises(PromptError, match=message):
        zs.text_features(label_set)
    with pytest.raises(PromptError, match="79 tokens long; CLIP reads at most 77"):
        LabelSet.of(["a " * 77, "b"], ["{}"])  # CLIP's own tower keeps its limit


@pytest.mark.parametrize("label", ["🦁 aslan", "שלום", "مرحبا", "中文 mixed Türkçe", "ǅemal"])
def test_emoji_right_to_left_and_mixed_scripts_classify(tiny_loaded, label):
    zs = ZeroShot(tiny_loaded)
    pred = predict_image(zs, Image.new("RGB", (32, 32), "red"), LabelSet.of([label, "kedi"], ["{}"], encoder="multilingual"))
    assert {lab for lab, _ in pred.top} == {label, "kedi"} and abs(sum(p for _, p in pred.top) - 1) < 1e-5


@pytest.mark.parametrize("label", ["a\u200bb", "\u202eevil", "x\u2066y"])
def test_zero_width_and_direction_controls_are_refused(label):
    with pytest.raises(PromptError, match="control or invisible characters"):
        LabelSet.of([label, "kedi"], ["{}"], encoder="multilingual")


def test_an_unknown_text_encoder_is_refused_by_name():
    with pytest.raises(PromptError, match="Unknown text encoder 'klingon'; choose one of: clip, multilingual."):
        LabelSet.of(["a", "b"], ["{}"], encoder="klingon")
    link = LabelSet.from_query({"labels": "aslan,kaplan", "encoder": "multilingual"}, 50)
    assert link.encoder == "multilingual" and link.query()["encoder"] == "multilingual"
    assert LabelSet.from_json(link.json()) == link and LabelSet.from_json({**link.json(), "encoder": "x"}) is None


def test_the_hint_offers_the_multilingual_tower_when_it_is_called_for():
    assert suggests_multilingual("aslan\nkaplan\nçiçek", "en")  # outside ASCII
    assert suggests_multilingual("lion\ntiger", "tr")  # a Turkish page
    assert suggests_multilingual("lion\ntiger", "en", "tr")  # a Turkish preset
    assert not suggests_multilingual("lion\ntiger", "en", "en")


def test_the_label_languages_evaluate_side_by_side(tiny_loaded, cifar_root):
    """English with CLIP's tower, English and Turkish with the multilingual one, scored on the same images; each
    row equals the reference computation from the stored image features and the tower's text features."""
    from clipdemo.io.cifar import open_cifar100
    from clipdemo.tasks.evaluate import Evaluation, evaluate

    zs, data = ZeroShot(tiny_loaded), open_cifar100(cifar_root)
    report = evaluate(zs, data, Evaluation("first", 40, templates="languages"))
    assert [r.setting for r in report.results] == ["en · CLIP", "en · multilingual", "tr · multilingual"]
    assert report.results[2].classes == CIFAR100_CLASSES_TR and report.results[1].classes == CIFAR100_CLASSES
    from clipdemo.core import zeroshot

    feats = zs.cifar.gather(list(range(40)))  # [40, D]
    tower = zs.tower_loaded
    reference = {  # each tower run by hand on the prompts (one template: a prompt's feature is its label's)
        "en · CLIP": zeroshot.prompt_features(tiny_loaded.model, zeroshot.tokenize([f"a photo of a {c}"
                                                                                  for c in CIFAR100_CLASSES])),
        "en · multilingual": text_features(tower.model, *tower.tokenizer([f"a photo of a {c}"
                                                                           for c in CIFAR100_CLASSES])),
        "tr · multilingual": text_features(tower.model, *tower.tokenizer([f"bir {c} fotoğrafı"
                                                                           for c in CIFAR100_CLASSES_TR]))}
    for r in report.results:
        assert torch.equal(r.predicted, (feats @ reference[r.setting].T).argmax(dim=-1)), r.setting


def test_cli_takes_the_text_encoder_and_says_which(tmp_path, tiny_ckpts, monkeypatch, capsys):
    from clipdemo.cli import main
    monkeypatch.setenv("CLIPDEMO_CACHE", str(tmp_path))
    monkeypatch.setenv("CLIPDEMO_DOWNLOAD", "0")
    image = tmp_path / "red.png"
    Image.new("RGB", (40, 40), "red").save(image)
    assert main(["predict", "--image", str(image), "--labels", "aslan,kaplan,deve", "--template", "bir {} fotoğrafı",
                 "--text-encoder", "multilingual", "--weights", str(tiny_ckpts["state_dict"]), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {p["label"] for p in out["top"]} == {"aslan", "kaplan", "deve"}
    assert (out["text_encoder"], out["text_encoder_weights"]) == ("multilingual",
                                                                  {"name": "random multilingual", "trained": False})
    with pytest.raises(SystemExit) as bad:
        main(["predict", "--image", str(image), "--labels", "a,b", "--text-encoder", "klingon"])
    assert bad.value.code == 2 and "invalid choice: 'klingon'" in capsys.readouterr().err


# -- the page's handlers ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def page(tiny_loaded, cifar_root, tmp_path_factory):
    from uiserver import built_page, runtime_for

    return built_page(runtime_for(tiny_loaded, cifar_root, tmp=tmp_path_factory.mktemp("mclip-page")))


def test_the_labels_tab_hint_and_label_language(page):
    from uiserver import Turkish, no_progress

    lab = page.labels
    english = LabelSet.preset()
    assert lab.check_labels("lion\ntiger", "a photo of a {}", "clip")[lab.hint_md] == ""
    hint = lab.check_labels("aslan\nkaplan\nçiçek", "a photo of a {}", "clip")[lab.hint_md]
    assert hint.startswith("💡") and "**Any language (multilingual encoder)**" in hint
    assert lab.check_labels("aslan\nkaplan\nçiçek", "{}", "multilingual")[lab.hint_md] == ""  # it is active
    assert lab.check_labels("lion\ntiger", "{}", "clip", request=Turkish())[lab.hint_md].startswith("💡 Bu etiketler")
    assert lab.check_labels("lion\ntiger", "{}", "clip", "cifar100-tr")[lab.hint_md] != ""  # a Turkish preset
    check = lab.check_labels("aslan\nkaplan", "bir {} fotoğrafı", "multilingual")[lab.check]
    assert check.startswith("✓ 2 labels × 1 template(s) = 2 prompts. The multilingual encoder counts its tokens")
    out = lab.set_labels("aslan\nkaplan", "bir {} fotoğrafı", "multilingual", english, None, no_progress)
    assert out[lab.state] == LabelSet.of(["aslan", "kaplan"], ["bir {} fotoğrafı"], encoder="multilingual")
    assert "Text encoder: **Any language (multilingual encoder)** · ⚠️ multilingual text encoder: random " \
           "multilingual, untrained" in out[lab.summary] and out[lab.hint_md] == ""  # random weights say so
    assert "Text encoder: **English (CLIP's own text encoder)**" in lab.label_summary(english, "en", ready=False)


def test_a_turkish_page_with_the_turkish_preset_and_the_multilingual_tower(page):
    """The About tab's Turkish button is the Labels tab's preset pick with the multilingual tower; the prediction
    names the tower, finds the true class in Turkish, and the English preset on a Turkish page shows both names."""
    from uiserver import Turkish, no_progress

    lab, p = page.labels, page.predict
    picked = lab.pick_preset("cifar100-tr", "single-tr", "", "", "multilingual", LabelSet.preset(), Turkish(),
                             no_progress)
    turkish = picked[lab.state]
    assert turkish.labels == CIFAR100_CLASSES_TR and turkish.encoder == "multilingual"
    assert "Metin kodlayıcısı: **Her dil (çok dilli kodlayıcı)**" in picked[lab.summary]
    out = p.predict_index(15, 5, turkish, None, Turkish(), no_progress)
    assert set(out[p.result]) <= set(CIFAR100_CLASSES_TR)
    true = CIFAR100_CLASSES_TR[CIFAR100_CLASSES.index(page.rt.dataset().true_label(15))]
    assert f"**{true}**" in out[p.truth] and "sıra" in out[p.truth]  # the true class is found in Turkish
    assert "çok dilli metin kodlayıcısı" in out[p.chart].layout.title.text  # the chart names the tower
    assert "eğitilmemiş" in out[p.chart].layout.title.text  # and says its weights are random
    english = p.predict_index(15, 5, LabelSet.preset(), None, Turkish(), no_progress)
    shown = english[p.chart].data[0].y
    assert all(re.fullmatch(r".+ \(.+\)", y) for y in shown)  # "lion (aslan)": Turkish beside English
    assert with_turkish(page.rt.dataset().true_label(15)) in english[p.truth].replace("\\", "")


def test_explaining_a_multilingual_label_shows_the_image_side_and_says_so(page):
    from uiserver import no_progress

    p, ex = page.predict, page.predict.explain
    turkish = LabelSet.of(["aslan", "kaplan", "deve"], ["bir {} fotoğrafı"], encoder="multilingual")
    p.predict_index(3, 3, turkish, None, None, no_progress)
    out = ex.explain("aslan", None, {"kind": "index", "index": 3}, turkish, None, no_progress)
    assert out[ex.relevancy].size[0] > 0
    assert out[ex.words] == [("bir ", None), ("aslan ", None), ("fotoğrafı ", None)]  # its words, unshaded
    long_cjk = LabelSet.of(["猫" * 100, "犬"], ["{}"], encoder="multilingual")  # past CLIP's 77 tokens: no matter
    out = ex.explain("猫" * 100, None, {"kind": "index", "index": 3}, long_cjk, None, no_progress)
    assert out[ex.words] == [("猫" * 100 + " ", None)]
    assert "Word relevancy is computed for CLIP's own text encoder only" in out[ex.caption]


def test_the_status_line_and_about_tab_name_the_text_towers(tiny_loaded, cifar_root, tmp_path):
    from uiserver import built_page, runtime_for

    page = built_page(runtime_for(tiny_loaded, cifar_root, tmp=tmp_path))
    status = page.status.status()
    assert "not loaded yet (it loads on first use)" in status[page.status.towers]
    assert "multilingual" not in status[page.status.line]
    page.rt.service().tower()  # what a visitor's first multilingual label set does
    status = page.status.status()
    assert "multilingual text encoder: random multilingual, untrained" in status[page.status.line]
    assert "sentence-transformers/clip-ViT-B-32-multilingual-v1" in status[page.status.towers]
    assert "random multilingual, untrained" in status[page.status.towers]


def test_the_evaluate_tab_shows_the_label_languages_side_by_side(page):
    from uiserver import no_progress

    ev = page.evaluate
    *_, shown = ev.run("first", 30, 1, 0, "languages", "cifar100", None, no_progress)
    rows = [line for line in shown[ev.summary].splitlines() if line.startswith("| ") and "%" in line]
    assert [row.split(" | ")[0].removeprefix("| ") for row in rows] == ["en · CLIP", "en · multilingual",
                                                                        "tr · multilingual"]
    assert [trace.name for trace in shown[ev.chart].data] == ["en · CLIP", "en · multilingual", "tr · multilingual"]
    assert "⚠️ multilingual text encoder: random multilingual, untrained" in shown[ev.summary]  # said so


def test_transformers_missing_is_said_with_the_fix(monkeypatch):
    """The tower's package not installed: a WeightsError with the fix, never an ImportError in a visitor's face."""
    from clipdemo.core import multilingual
    from clipdemo.core.clip_package import import_transformers

    monkeypatch.setitem(sys.modules, "transformers", None)  # what `import transformers` sees when it is absent
    monkeypatch.setattr(multilingual, "import_transformers", import_transformers.__wrapped__)  # not the cached one
    with pytest.raises(WeightsError, match=r"needs the transformers package .* Fix: pip install -r requirements.txt"):
        multilingual.transformers_module()


def test_two_visitors_encoding_multilingual_sets_at_once(tiny_loaded):
    """The tower's fast tokenizer is shared: label sets encoded by many threads at once each get their own
    features, equal to encoding them alone."""
    from concurrent.futures import ThreadPoolExecutor

    sets = [LabelSet.of([f"etiket {i} {j} " + "uzun " * (j % 7) for j in range(150)],
                        [f"{{}} {i}", "bir {} fotoğrafı"], encoder="multilingual")
            for i in range(16)]  # prompts of many lengths: padding matters
    alone = ZeroShot(tiny_loaded)
    expected = [alone.text_features(s) for s in sets]
    together = ZeroShot(tiny_loaded)
    together.tower()
    with ThreadPoolExecutor(8) as pool:  # counting one set's tokens while padding another's, in other threads
        got = list(pool.map(together.text_features, sets))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, expected))


def test_a_tower_that_cannot_load_is_said_at_once_and_not_retried_every_time(tiny_loaded, monkeypatch):
    from clipdemo.serving import service

    calls = []

    def failing(progress):
        calls.append(1)
        raise WeightsError("ml_unavailable", "multilingual DistilBERT", "host unreachable")

    zs = ZeroShot(tiny_loaded, tower_loader=failing)
    label_set = LabelSet.of(["aslan", "kaplan"], ["{}"], encoder="multilingual")
    for _ in range(3):
        with pytest.raises(WeightsError, match="no verified file for multilingual DistilBERT"):
            zs.text_features(label_set)
    assert len(calls) == 1  # said again from memory, not loaded again
    monkeypatch.setattr(service, "TOWER_RETRY_S", 0.0)
    with pytest.raises(WeightsError):
        zs.text_features(label_set)
    assert len(calls) == 2  # after its time, tried again
    zs.hold_tower_failure(WeightsError("ml_unavailable", "multilingual DistilBERT", "host unreachable"))
    with pytest.raises(Exception, match="on ZeroGPU it cannot be loaded later"):
        zs.text_features(label_set)
    assert len(calls) == 2 and zs.text_features(LabelSet.of(["lion", "tiger"], ["{}"])).shape == (2, 32)


def test_an_evaluation_that_needs_a_missing_tower_says_so_before_encoding_any_image(tiny_loaded, cifar_root):
    from clipdemo.io.cifar import open_cifar100
    from clipdemo.tasks.evaluate import Evaluation, evaluate

    def failing(progress):
        raise WeightsError("ml_unavailable", "multilingual DistilBERT", "downloads are disabled")

    zs = ZeroShot(tiny_loaded, tower_loader=failing)
    with pytest.raises(WeightsError, match="multilingual text encoder could not be loaded"):
        evaluate(zs, open_cifar100(cifar_root), Evaluation("first", 50, templates="languages"))
    assert zs.cifar is None or len(zs.cifar) == 0  # no image was encoded
