"""Search by text and image: the exact top-k against a sorted reference, the query's checks, the partial index,
the index saved and reused across a restart, a visitor's own pictures, and retrieval on a model whose right
answers are known by construction."""

from __future__ import annotations

import math

import pytest
import torch
from PIL import Image

from clipdemo.core.search import (SEARCH_TEMPLATE, SearchQuery, combine, nearest, results,
                                  retrieval_scores)
from clipdemo.core.words import Refusal
from clipdemo.io.cifar import open_cifar100
from clipdemo.serving.service import ZeroShot
from clipdemo.tasks.search import MAX_GALLERY, Gallery, query_feature, search_cifar


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


# -- the math ---------------------------------------------------------------------------------------------------
def test_nearest_equals_a_sorted_reference_with_ties_and_missing_rows():
    g = torch.Generator().manual_seed(0)
    feats = _unit(torch.randn(500, 16, generator=g))
    feats[7], feats[300] = feats[123], feats[123]  # three equal rows: ties go to the lower index
    filled = torch.rand(500, generator=g) > 0.3
    filled[[7, 123, 300]] = True
    q = _unit(feats[123] + 0.01 * torch.randn(16, generator=g))
    idx, cos = nearest(feats, q, 40, filled)
    reference = sorted(((float(feats[i] @ q), i) for i in range(500) if filled[i]), key=lambda t: (-t[0], t[1]))[:40]
    assert idx == [i for _, i in reference] and cos == pytest.approx([c for c, _ in reference], abs=1e-6)
    assert idx[:3] == [7, 123, 300]
    assert nearest(feats, q, 1000, filled)[0] == [i for _, i in sorted(
        ((float(feats[i] @ q), i) for i in range(500) if filled[i]), key=lambda t: (-t[0], t[1]))]  # k > filled
    assert nearest(feats, q, 5, torch.zeros(500, dtype=torch.bool)) == ([], [])


def test_combine_weighs_text_and_image_and_subtracts_the_negative():
    t, i, n = (_unit(torch.tensor(v, dtype=torch.float32)) for v in ([1, 0, 0], [0, 1, 0], [0, 0, 1]))
    assert torch.allclose(combine(t, None), t) and torch.allclose(combine(None, i), i)
    both = combine(t, i, image_weight=0.25)
    assert torch.allclose(both, _unit(torch.tensor([0.75, 0.25, 0.0])))
    assert torch.allclose(combine(t, None, n, negative_weight=0.5), _unit(torch.tensor([1.0, 0.0, -0.5])))
    with pytest.raises(Refusal, match="Type what to look for"):
        combine(None, None)


def test_retrieval_scores_against_a_hand_count():
    feats = _unit(torch.tensor([[1.0, 0.1], [0.9, 0.3], [0.1, 1.0], [0.8, 0.7]]))  # images 0..3
    targets = torch.tensor([0, 1, 1, 0])
    queries = _unit(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))  # class 0 "x-ish", class 1 "y-ish"
    p_at_2, ap = retrieval_scores(feats, targets, queries, k=2)
    # class 0 ranks images 0, 1, 3, 2: relevant at ranks 1 and 3 -> P@2 = 1/2, AP = (1/1 + 2/3) / 2
    # class 1 ranks images 2, 3, 1, 0: relevant at ranks 1 and 3 -> P@2 = 1/2, AP = (1/1 + 2/3) / 2
    assert p_at_2 == pytest.approx(0.5) and ap == pytest.approx((1 + 2 / 3) / 2)


@pytest.mark.parametrize("kwargs, message", [
    (dict(text=""), "Type what to look for"),
    (dict(text="   ", negative=""), "Type what to look for"),
    (dict(text="", negative="rain"), "A negative query only takes away"),
    (dict(text="x" * 301), "The query is 301 characters long; the limit is 300"),
    (dict(text="a," * 100), "tokens long as CLIP reads it; CLIP reads at most 77"),
    (dict(text="a lion\x00"), "The query contains control"),
    (dict(text="a lion", negative="\u202e"), "The negative query contains control"),
    (dict(text="a lion", image_weight=1.5), "from 0 to 1, not 1.5"),
    (dict(text=7), "The query must be text"),
])
def test_bad_queries_are_sentences(kwargs, message):
    with pytest.raises(Refusal, match=message):
        SearchQuery.of(**kwargs)


def test_a_query_is_checked_normalised_and_put_into_the_template_unless_raw():
    q = SearchQuery.of("  a red   car ", "rain")
    assert (q.text, q.negative, q.prompt) == ("a red car", "rain", SEARCH_TEMPLATE.replace("{}", "a red car"))
    assert q.negative_prompt == "a photo of rain" and SearchQuery.of("a red car", raw=True).prompt == "a red car"
    assert SearchQuery.of("", "rain", has_image=True).prompt == ""  # an image and a negative: allowed
    with pytest.raises(Refusal, match="The number of results must be between 1 and 100, not 101"):
        results(101)


# -- the index --------------------------------------------------------------------------------------------------
def test_the_index_is_the_apps_image_features(tiny_loaded, cifar_root, tiny_index):
    """The store the app fills equals `encode_image` by hand (a sample of it)."""
    data = open_cifar100(cifar_root)
    sample = [0, 15, 4321, 9999]
    with torch.inference_mode():
        hand = _unit(tiny_loaded.model.encode_image(torch.stack([tiny_loaded.preprocess(data.image(i))
                                                                 for i in sample])).float())
    assert len(tiny_index) == 10_000 and torch.allclose(tiny_index.gather(sample), hand, atol=1e-5)


def test_a_text_search_equals_a_hand_matmul_over_the_index(tiny_loaded, cifar_root, tiny_index):
    import clip

    zs, data = ZeroShot(tiny_loaded), open_cifar100(cifar_root)
    zs.add_stored_features(tiny_index)
    found = search_cifar(zs, data, SearchQuery.of("a red car", "rain"), 12)
    n_ctx = tiny_loaded.config.context_length
    with torch.inference_mode():
        t = _unit(tiny_loaded.model.encode_text(clip.tokenize(["a photo of a red car", "a photo of rain"],
                                                              context_length=n_ctx)).float())
    q = _unit(t[0] - 0.5 * t[1])  # the text, minus half the negative
    cos = tiny_index.gather(list(range(10_000))) @ q
    reference = sorted(range(10_000), key=lambda i: (-float(cos[i]), i))[:12]
    assert [h.index for h in found.hits] == reference
    assert [h.cosine for h in found.hits] == pytest.approx([float(cos[i]) for i in reference], abs=1e-5)
    assert [h.label for h in found.hits] == [data.true_label(i) for i in reference]
    assert (found.covered, found.total) == (10_000, 10_000)
    assert found.rows()[0] == {"index": reference[0], "true_label": data.true_label(reference[0]),
                               "cosine": found.hits[0].cosine}


def test_until_the_index_is_complete_search_covers_what_is_encoded(tiny_loaded, cifar_root):
    zs, data = ZeroShot(tiny_loaded), open_cifar100(cifar_root)
    with pytest.raises(Refusal, match="No CIFAR-100 test image is encoded yet"):
        search_cifar(zs, data, SearchQuery.of("a lion"), 24)
    for _ in zs.fill_store(data, list(range(100, 160))):  # 60 images encoded so far
        pass
    found = search_cifar(zs, data, SearchQuery.of("a lion"), 24)
    assert (found.covered, found.total) == (60, 10_000) and len(found.hits) == 24
    assert all(100 <= h.index < 160 for h in found.hits)
    assert len(search_cifar(zs, data, SearchQuery.of("a lion"), 100).hits) == 60  # fewer than asked: all there are


def test_the_fill_loop_skips_what_another_job_stored_meanwhile(tiny_loaded, cifar_root):
    from clipdemo.serving.scheduler import Priority

    zs, data = ZeroShot(tiny_loaded), open_cifar100(cifar_root)
    loop = zs.fill_store(data, list(range(32)))  # 4 chunks of 8
    assert next(loop) == 8
    theirs = torch.nn.functional.normalize(torch.randn(8, zs.loaded.config.embed_dim), dim=-1)  # [8, D]
    zs.cifar.put(list(range(8, 16)), theirs)  # an evaluation (say) stored the second chunk meanwhile
    assert list(loop) == [16, 24, 32]
    assert zs.gate_stats.grants[Priority.BULK] == 3  # chunks 1, 3 and 4 encoded; the second never again
    assert torch.equal(zs.cifar.gather(list(range(8, 16))), theirs) and len(zs.cifar) == 32


def test_where_the_model_runs_only_in_requests_the_first_search_builds_the_index(tiny_ckpts, cifar_root, tmp_path,
                                                                                  monkeypatch):
    """ZeroGPU (a path without `warm_up`): no thread at start-up; the first search builds the index in its request,
    with progress, and saves it; the next finds it complete."""
    import dataclasses

    from clipdemo.serving import accel
    from clipdemo.serving.runtime import Runtime
    from clipdemo.serving.scheduler import Priority
    from clipdemo.serving.settings import Settings

    monkeypatch.setitem(accel.PATHS, "cpu", dataclasses.replace(accel.PATHS["cpu"], warm_up=False))
    rt = Runtime(Settings(weights=str(tiny_ckpts["state_dict"]), cache_dir=tmp_path, data_root=cifar_root,
                          allow_download=False, backend="eager", search_index=True))
    rt.start(wait_for_model=True)
    rt.settle(120)
    zs = rt.service()
    assert rt._index_thread is None and not rt.index_status().building and rt.index_status().covered == 0
    steps = []
    rt.build_index_in_request(lambda step: steps.append((step.done, step.total, step.what.key)))
    assert steps[-1] == (10_000, 10_000, "progress_index") and len(steps) == 10_000 // zs.bulk_images
    assert rt.index_status().complete and zs.features_path(tmp_path).is_file()
    chunks = zs.gate_stats.grants[Priority.BULK]
    rt.build_index_in_request()
    assert zs.gate_stats.grants[Priority.BULK] == chunks  # complete: nothing encoded again


def test_more_like_this_finds_the_image_itself_first(tiny_loaded, cifar_root, tiny_index):
    zs, data = ZeroShot(tiny_loaded), open_cifar100(cifar_root)
    zs.add_stored_features(tiny_index)
    like = zs.cifar_feature(4321, data.image(4321), len(data))
    found = search_cifar(zs, data, SearchQuery.of("", has_image=True), 5, like)
    assert found.hits[0].index == 4321 and found.hits[0].cosine == pytest.approx(1.0, abs=1e-5)


def test_the_runtime_builds_the_index_saves_it_and_a_restart_reuses_it(tiny_ckpts, cifar_root, tmp_path):
    from clipdemo.serving.runtime import Runtime
    from clipdemo.serving.scheduler import Priority
    from clipdemo.serving.settings import Settings

    settings = Settings(weights=str(tiny_ckpts["state_dict"]), cache_dir=tmp_path, data_root=cifar_root,
                        allow_download=False, backend="eager", search_index=True)
    first = Runtime(settings)
    first.start(wait_for_model=True)
    first.settle(120)
    first.wait_for_index(120)
    zs = first.service()
    assert first.index_status().complete and zs.features_path(tmp_path).is_file()
    assert zs.gate_stats.grants[Priority.BACKGROUND] >= 10_000 // zs.bulk_images  # encoded, as background work
    again = Runtime(settings)
    again.start(wait_for_model=True)
    again.settle(120)
    again.wait_for_index(120)
    assert again.index_status().complete
    assert again.service().gate_stats.grants[Priority.BACKGROUND] == 0  # read back, nothing encoded again
    hits = search_cifar(again.service(), again.dataset(), SearchQuery.of("a lion"), 5).hits
    assert hits == search_cifar(zs, first.dataset(), SearchQuery.of("a lion"), 5).hits


# -- a visitor's own pictures -----------------------------------------------------------------------------------------
def test_a_gallery_keeps_features_and_thumbnails_and_searches_them(tiny_loaded):
    zs = ZeroShot(tiny_loaded)
    items = [(f"{c}.png", Image.new("RGB", (300, 200), c)) for c in ("red", "green", "blue")]
    g = Gallery().add(zs, items)
    assert len(g) == 3 and g.features.shape == (3, tiny_loaded.config.embed_dim)
    assert all(max(t.size) <= 96 for t in g.thumbs)
    with torch.inference_mode():
        hand = _unit(tiny_loaded.model.encode_image(torch.stack([tiny_loaded.preprocess(im) for _, im in items])).float())
    assert torch.allclose(g.features, hand, atol=1e-5)
    found = g.search(zs, SearchQuery.of("", has_image=True), 3, hand[2])
    assert found.hits[0].label == "blue.png" and found.rows()[0]["name"] == "blue.png" and found.source == "gallery"
    bigger = g.add(zs, items[:1])
    assert len(bigger) == 4 and len(g) == 3  # `add` returns a new gallery
    with pytest.raises(Refusal, match=f"can hold {MAX_GALLERY} images: it has 3, and 198 more"):
        g.add(zs, items[:1] * 198)
    with pytest.raises(Refusal, match="Add your own pictures first"):
        Gallery().search(zs, SearchQuery.of("red"), 3)


# -- truth by construction --------------------------------------------------------------------------------------------
def test_every_visitors_pictures_together_are_bounded_and_a_dropped_gallery_stops_counting(tiny_loaded):
    import gc

    from clipdemo.tasks.search import Galleries

    zs, pool = ZeroShot(tiny_loaded), Galleries(max_images=3)
    items = [(f"p{i}.png", Image.new("RGB", (20, 20), (40 * i, 0, 0))) for i in range(3)]
    alice = pool.add(Gallery(), zs, items[:2])
    alice = pool.add(alice, zs, items[2:])  # her own gallery grows: the old version is not counted twice
    assert len(alice) == 3 and pool.held() == 3
    with pytest.raises(Refusal, match=r"as many visitors' pictures as it can right now \(3 in all\)"):
        pool.add(Gallery(), zs, items[:1])  # another session, while Alice's pictures fill the process's room
    del alice  # her session ends
    gc.collect()
    assert pool.held() == 0 and len(pool.add(Gallery(), zs, items[:1])) == 1


def test_the_model_trained_on_coloured_squares_retrieves_red_squares_first_for_red(squares):
    """On random weights nothing can be scored against real labels, so the mechanism is proven on a model whose
    right answers are known: 20 red-square and 20 blue-square images, the 'red' text finds the 20 red ones first."""
    g = torch.Generator().manual_seed(1)
    positions = torch.randint(0, 16, (40,), generator=g).tolist()
    colours = [squares.RED] * 20 + [squares.BLUE] * 20
    order = torch.randperm(40, generator=g).tolist()  # interleaved, so the index order says nothing
    images = torch.stack([squares.image(positions[i], colours[i]) for i in order])  # [40, 3, 32, 32]
    with torch.inference_mode():
        feats = _unit(squares.model.visual(images))  # [40, 16]
    red = {j for j, i in enumerate(order) if i < 20}
    idx, _ = nearest(feats, combine(squares.texts[0], None), 20)
    assert set(idx) == red
    idx, _ = nearest(feats, combine(squares.texts[1], None), 20)
    assert set(idx) == set(range(40)) - red
    targets = torch.tensor([0 if j in red else 1 for j in range(40)])
    p10, ap = retrieval_scores(feats, targets, squares.texts, k=10)
    assert p10 == 1.0 and ap == pytest.approx(1.0)


def test_query_feature_is_the_text_encoder_on_the_prompt(tiny_loaded):
    import clip

    zs = ZeroShot(tiny_loaded)
    q = query_feature(zs, SearchQuery.of("lion", raw=True))
    with torch.inference_mode():
        hand = _unit(tiny_loaded.model.encode_text(clip.tokenize(["lion"], context_length=tiny_loaded.config
                                                                 .context_length)).float())[0]
    assert torch.allclose(q, hand, atol=1e-5) and math.isclose(float(q.norm()), 1.0, abs_tol=1e-6)
