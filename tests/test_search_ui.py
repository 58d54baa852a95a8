"""The Search tab: its handlers on the built page (results, a click, Predict, the match's map, more like this,
the coverage sentence, the visitor's pictures), and one visitor's pictures unreachable for another through a
real server."""

from __future__ import annotations

import gradio as gr
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from clipdemo.core.labels import LabelSet
from clipdemo.serving.runtime import IndexStatus
from clipdemo.tasks.search import Gallery
from uiserver import Turkish, built_page, no_progress, running_app, runtime_for


@pytest.fixture(scope="module")
def page(tiny_loaded, cifar_root, tmp_path_factory, tiny_index):
    built = built_page(runtime_for(tiny_loaded, cifar_root, tmp=tmp_path_factory.mktemp("s")))
    built.rt.service().add_stored_features(tiny_index)
    return built


def _search(page, text="a red car", negative="", n=24, source="cifar", like=None, gallery=Gallery(), request=None,
            raw=False):
    return page.search.search(text, negative, raw, n, source, None, 0.5, like, gallery, request, no_progress)


def test_a_search_shows_results_a_chart_a_link_and_files(page):
    s = page.search
    out = _search(page, "a red car", "rain", n=12)
    found = out[s.found]
    assert len(out[s.results]) == 12 and len(found.hits) == 12
    image, caption = out[s.results][0]
    h = found.hits[0]
    assert caption == f"{h.cosine:.3f} #{h.index} {h.label}" and image.size == (96, 96)  # 32x32, enlarged
    assert "**12 results** for a photo of a red car · not a photo of rain." in out[s.status]
    assert "Search covers all 10,000 test images." in out[s.status]
    bars = out[s.chart].data[0]
    assert sum(bars.x) == 12 and out[s.chart].layout.title.text.startswith("Your query mostly finds: ")
    assert out[s.share] == "?q=a+red+car&neg=rain&n=12&tab=search"
    csv_path, json_path = out[s.files]
    assert open(csv_path).read().splitlines()[1] == f"1,{h.index},{h.label},{h.cosine:.6f}"
    assert out[s.selected] is None and out[s.big] is None  # a new search clears the last selection


def test_refusals_are_sentences_in_the_visitors_language(page):
    with pytest.raises(gr.Error, match="Type what to look for"):
        _search(page, "")
    with pytest.raises(gr.Error) as err:
        _search(page, "", "yağmur", request=Turkish())
    assert err.value.message == "Olumsuz sorgu yalnızca çıkarır: aradığınızı da yazın ya da bir görüntü verin."
    with pytest.raises(gr.Error, match="between 1 and 100, not 0"):
        _search(page, n=0)
    with pytest.raises(gr.Error, match="Add your own pictures first"):
        _search(page, source="gallery")


def test_a_click_shows_the_result_large_and_opens_it_in_predict(page):
    s, p = page.search, page.predict
    found = _search(page, "a lion", n=6)[s.found]
    picked = s.select(found, Gallery(), gr.SelectData(None, {"index": 2, "value": None}))
    hit = found.hits[2]
    assert picked[s.selected] == {"source": "cifar", "index": hit.index} and picked[s.big].size == (224, 224)
    assert f"**#{hit.index}**, true class **{hit.label}**" in picked[s.info]
    opened = s.open_in_predict(picked[s.selected], 15)
    assert opened[p.index] == hit.index and opened[s.classify] is (hit.index == 15)
    assert opened[s.tabs].selected == "predict" and opened[p.sources].selected == "index"
    same = s.open_in_predict(picked[s.selected], hit.index)
    assert same[s.classify] is True  # the slider already shows it: classified by the chained event instead
    shown = s.classify_same(True, hit.index, 5, LabelSet.preset(), None, None, no_progress)
    assert hit.label in shown[p.truth]
    assert all(v == gr.skip() for v in s.classify_same(False, 0, 5, LabelSet.preset()).values())  # left as it is
    with pytest.raises(gr.Error, match="Click a result first"):
        s.open_in_predict(None, 15)


def test_more_like_this_searches_by_the_result_and_explain_maps_the_match(page):
    s = page.search
    found = _search(page, "a lion", n=6)[s.found]
    selected = {"source": "cifar", "index": found.hits[3].index}
    moved = s.more_like(selected)
    assert moved[s.like] == selected and moved[s.query] == "" and moved[s.image] is None
    again = _search(page, "", like=moved[s.like], n=5)
    assert again[s.found].hits[0].index == selected["index"]  # the image itself, first
    assert f"like CIFAR-100 #{selected['index']}" in again[s.status] and again[s.share] == ""  # no link for an image
    explained = s.explain_match(selected, "a lion", "", False, Gallery(), None, no_progress)
    assert explained[s.big].size[1] == 224 and "Where this image matches **a photo of a lion**" in explained[s.info]
    with pytest.raises(gr.Error, match="needs a text query"):
        s.explain_match(selected, "", "", False, Gallery(), None, no_progress)


def test_the_coverage_sentence_follows_the_index(page, monkeypatch):
    s = page.search
    for status, sentence in [(IndexStatus(0, 0), "Search starts once the model"),
                             (IndexStatus(3400, 10_000, True, 25.0), "Search covers 3,400 of 10,000 images; the rest are "
                                                                    "being encoded (about 5 min left)."),
                             (IndexStatus(3400, 10_000, True, None), "the rest are being encoded (timing the first images)."),
                             (IndexStatus(60, 10_000), "Search covers 60 of 10,000 images: those encoded so far"),
                             (IndexStatus(10_000, 10_000), "Search covers all 10,000 test images.")]:
        monkeypatch.setattr(page.rt, "index_status", lambda st=status: st)
        assert sentence in s.coverage("en")
    monkeypatch.setattr(page.rt, "index_status", lambda: IndexStatus(3400, 10_000, True, 25.0))
    assert s.coverage("tr") == "Arama 3,400 / 10,000 görüntüyü kapsıyor; geri kalanlar kodlanıyor (yaklaşık 5 dk kaldı)."
    line = page.status.status()  # the status line counts it too, and keeps polling while it builds
    assert line[page.status.line].endswith(" · **search:** 3,400 of 10,000 images encoded") and "· ·" not in line[
        page.status.line]
    assert line[page.status.index_timer].active is True
    assert page.status.index_tick(Turkish())[page.status.line].endswith(" · **arama:** 3,400 / 10,000 görüntü kodlandı")
    monkeypatch.setattr(page.rt, "index_status", lambda: IndexStatus(10_000, 10_000))
    done = page.status.status()
    assert "search:" not in done[page.status.line] and done[page.status.index_timer].active is False


def test_a_visitors_pictures_are_searched_like_the_split(page, tmp_path):
    s = page.search
    for name, colour in (("red.png", "red"), ("blue.png", "blue")):
        Image.new("RGB", (60, 40), colour).save(tmp_path / name)
    added = s.add_to_gallery([str(tmp_path / "red.png"), str(tmp_path / "blue.png")], Gallery(), None, no_progress)
    gallery = added[s.gallery]
    assert len(gallery) == 2 and added[s.source] == "gallery" and "2 of 200 images" in added[s.gallery_note]
    out = _search(page, "", like={"source": "gallery", "index": 1}, source="gallery", gallery=gallery, n=2)
    assert [h.label for h in out[s.found].hits] == ["blue.png", "red.png"] and out[s.chart] is None
    picked = s.select(out[s.found], gallery, gr.SelectData(None, {"index": 0, "value": None}))
    assert picked[s.selected] == {"source": "gallery", "index": 1} and "**blue&#46;png**" in picked[s.info]
    with pytest.raises(gr.Error, match="Only CIFAR-100 results open in Predict"):
        s.open_in_predict(picked[s.selected], 15)
    cleared = s.clear_gallery(out[s.found])
    assert len(cleared[s.gallery]) == 0 and cleared[s.source] == "cifar"
    assert cleared[s.found] is None and cleared[s.results] == []  # results from the pictures go with them
    late = s.select(out[s.found], cleared[s.gallery], gr.SelectData(None, {"index": 0, "value": None}))
    assert late[s.selected] is None and "no longer" in late[s.info]  # a click on a stale result: a sentence
    assert s.results not in s.clear_gallery(_search(page, n=3)[s.found])  # CIFAR results stay


def test_the_match_of_one_visitors_picture_is_never_anothers_from_the_shared_cache(page, tmp_path):
    s, maps = page.search, []
    for colour in ("red", "blue"):  # two visitors, each with one picture: both at index 0 of their gallery
        Image.new("RGB", (60, 40), colour).save(tmp_path / f"{colour}.png")
        gallery = s.add_to_gallery([str(tmp_path / f"{colour}.png")], Gallery(), None, no_progress)[s.gallery]
        shown = s.explain_match({"source": "gallery", "index": 0}, "red", "", False, gallery, None, no_progress)
        fresh = page.rt.service().inside.explain_prompt(gallery.thumbs[0], ("test", colour), "a photo of red")
        maps.append((shown[s.info], f"(cosine {fresh.logit / 100:.3f}, on the 96-pixel thumbnail"))
    assert maps[0][1] != maps[1][1]  # the two pictures match "red" differently ...
    assert all(cosine in info for info, cosine in maps)  # ... and each visitor sees their own picture's match


def test_one_visitors_pictures_are_not_anothers(tiny_loaded, cifar_root, tmp_path, tiny_index):
    """Through a real server: two clients are two sessions; what one adds, the other cannot search."""
    rt = runtime_for(tiny_loaded, cifar_root, tmp=tmp_path)
    rt.service().add_stored_features(tiny_index)
    Image.new("RGB", (60, 40), "red").save(tmp_path / "mine.png")
    with running_app(rt) as (url, _):
        alice, bob = Client(url, verbose=False), Client(url, verbose=False)
        alice.predict([handle_file(str(tmp_path / "mine.png"))], api_name="/add_to_gallery")
        mine = alice.predict("red", "", False, 5, "gallery", None, 0.5, api_name="/search_page")
        assert "**1 result** for" in mine[1] and "mine.png" in str(mine[0])
        with pytest.raises(Exception, match="Add your own pictures first"):
            bob.predict("red", "", False, 5, "gallery", None, 0.5, api_name="/search_page")
        theirs = bob.predict("red", "", False, 5, "cifar", None, 0.5, api_name="/search_page")
        assert "mine.png" not in str(theirs[0]) and "**5 results**" in theirs[1]


def test_opening_the_tab_says_the_coverage_without_touching_a_search_answered_meanwhile(page):
    """A link's search and the tab's own coverage line arrive in either order: the coverage has a line of its own,
    so the search's answer is never overwritten (it was, under load, when both wrote the one status)."""
    s = page.search
    opened = s.show_coverage()
    assert set(opened) == {s.cover} and opened[s.cover] == s.coverage("en")  # not the status
