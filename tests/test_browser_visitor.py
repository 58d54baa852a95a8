"""The visitor's experience in a real browser: shared links, remembered label sets, English and Turkish,
dark mode, a phone's width, accessible names, and failure states that read well."""

import os
import re

import numpy as np
import pytest
from PIL import Image

from clipdemo.fakes import fake_target
from clipdemo.core.words import STRINGS
from clipdemo.core.labels import CIFAR100_CLASSES, LABEL_PRESETS
from clipdemo.core.turkish import CIFAR100_CLASSES_TR
from test_browser import ARGS, ARTIFACTS, CHROMIUM
from uiserver import running_app, runtime_for

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail("Debian's chromium is not installed in CI (tools/ensure-chromium installs it)")
        pytest.skip("Debian's chromium is not installed (tools/ensure-chromium installs it)")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=30_000)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="module")
def app_url(tiny_loaded, cifar_root, tmp_path_factory, tiny_index):
    rt = runtime_for(tiny_loaded, cifar_root, tmp=tmp_path_factory.mktemp("v"))
    rt.service().add_stored_features(tiny_index)  # the search index, as the runtime builds it in the background
    with running_app(rt) as (url, _):
        yield url


def _open(browser, url, locale="en-US", width=1280, height=1000):
    ctx = browser.new_context(locale=locale, viewport={"width": width, "height": height})
    page = ctx.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    return ctx, page


def _shot(page, name):
    page.screenshot(path=str(ARTIFACTS / f"visitor-{name}.png"), full_page=True)


def test_a_link_opens_an_image_classified_with_k_results(browser, app_url):
    from playwright.sync_api import expect

    ctx, page = _open(browser, app_url + "/?index=42&k=3")
    expect(page.locator("#truth")).to_contain_text(f"True class: {CIFAR100_CLASSES[fake_target(42)]}")
    expect(page.locator("#notebook-lines textarea")).to_have_value(re.compile(r"^([^\n]+: \d+\.\d\d%\n){2}[^\n]+%$"))
    expect(page.locator("#share-link textarea, #share-link input").first).to_have_value(
        re.compile(re.escape(app_url) + r"/\?index=42&k=3&tab=predict$"))
    _shot(page, "link-index-42")
    # the notebook's own link: image 15 is the slider's default, so the page classifies it itself
    page.goto(app_url + "/?index=15&k=5")
    expect(page.locator("#truth")).to_contain_text("True class: lion")
    ctx.close()


def test_a_link_sets_the_labels_and_a_bad_index_gets_a_note(browser, app_url):
    from playwright.sync_api import expect

    ctx, page = _open(browser, app_url + "/?labels=cat,dog,lion&tab=labels")
    expect(page.locator("#label-summary")).to_contain_text("3 labels × 1 template(s)")
    expect(page.locator("#label-editor textarea")).to_have_value("cat\ndog\nlion")
    _shot(page, "link-labels")
    # a label that looks like a URL stays text on the page: a shared link can't plant a live link
    page.goto(app_url + "/?labels=https://evil.example/login,www.evil.example,cat&tab=labels")
    expect(page.locator("#label-summary")).to_contain_text("https://evil.example/login, www.evil.example, cat")
    assert page.locator("#label-summary a").count() == 0
    page.goto(app_url + "/?index=99999")
    expect(page.locator("#link-note")).to_contain_text("index 99999 is not a CIFAR-100 test image")
    assert page.get_by_role("slider", name="CIFAR-100 test image index").input_value() == "15"  # the default
    page.get_by_role("button", name="Classify", exact=True).click()
    expect(page.locator("#truth")).to_contain_text("True class: lion")
    _shot(page, "link-bad-index")
    ctx.close()


def test_saved_labels_survive_a_reload_and_stay_in_their_browser(browser, app_url, tmp_path):
    from playwright.sync_api import expect

    ctx, page = _open(browser, app_url + "/?tab=labels")
    page.locator("#label-editor textarea").fill("red car\nblue bike\ngreen tram")
    page.locator("#apply-labels").click()
    expect(page.locator("#label-summary")).to_contain_text("3 labels × 1 template(s)")
    page.get_by_text("My label sets").click()
    page.locator("#set-name input, #set-name textarea").first.fill("vehicles")
    page.locator("#set-save").click()
    expect(page.locator("#set-note")).to_contain_text("Saved vehicles (3 labels)")
    with page.expect_download() as info:  # the active labels as a file, at the first click
        page.locator("#set-download").click()
    assert info.value.suggested_filename == "labels.txt"
    assert open(info.value.path(), encoding="utf-8").read() == "red car\nblue bike\ngreen tram\n"
    # Enter in the label box adds a line: nothing typed is lost
    box = page.locator("#label-editor textarea")
    box.press("End")
    box.press("Enter")
    expect(box).to_have_value("red car\nblue bike\ngreen tram\n")
    page.reload()
    expect(page.locator("#label-summary")).to_contain_text("3 labels × 1 template(s)")  # the active set is back
    expect(page.locator("#label-editor textarea")).to_have_value("red car\nblue bike\ngreen tram")
    page.get_by_text("My label sets").click()
    page.locator("#set-choice input").click()
    expect(page.get_by_role("option", name="vehicles")).to_be_visible()
    _shot(page, "saved-sets-after-reload")
    # a label file loads and applies
    (tmp_path / "pets.csv").write_text("label\ncat\ndog\nhamster\nparrot\n", encoding="utf-8")
    page.locator("#set-file input[type=file]").set_input_files(str(tmp_path / "pets.csv"))
    expect(page.locator("#label-summary")).to_contain_text("4 labels × 1 template(s)")
    page.get_by_role("tab", name="About", exact=True).click()  # About's way back to the English labels
    page.locator("#use-english").click()
    page.get_by_role("tab", name="Labels", exact=True).click()
    expect(page.locator("#label-summary")).to_contain_text("100 labels × 1 template(s)")
    expect(page.locator("#label-editor textarea")).to_have_value(re.compile(r"^apple\naquarium_fish\n"))
    other_ctx, other = _open(browser, app_url + "/?tab=labels")
    expect(other.locator("#label-summary")).to_contain_text("100 labels")
    other.get_by_text("My label sets").click()
    other.locator("#set-choice input").click()
    expect(other.get_by_role("option", name="vehicles")).to_have_count(0)
    other_ctx.close()
    ctx.close()


def test_turkish_and_english_follow_the_browser(browser, app_url):
    from playwright.sync_api import expect

    for locale, lang in (("tr-TR", "tr"), ("en-US", "en")):
        ctx, page = _open(browser, app_url, locale=locale)
        for key in ("tab_predict", "tab_labels", "tab_evaluate", "tab_about"):
            expect(page.get_by_role("tab", name=STRINGS[lang][key], exact=True)).to_be_visible()
        page.get_by_role("button", name=STRINGS[lang]["classify"], exact=True).click()
        expect(page.locator("#truth")).to_contain_text(STRINGS[lang]["truth_line"].split("**")[0])  # server-side text
        _shot(page, f"locale-{lang}")
        ctx.close()


def test_dark_mode_charts_sit_on_the_dark_page(browser, app_url):
    from playwright.sync_api import expect

    ctx, page = _open(browser, app_url + "/?index=15&k=5&__theme=dark")
    chart = page.locator("#result-chart .js-plotly-plot")
    expect(chart).to_be_visible()
    expect(page.locator("#result-chart .bartext").first).to_be_attached()
    shot = ARTIFACTS / "visitor-dark-chart.png"
    chart.screenshot(path=str(shot))
    _shot(page, "dark")
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float32)
    near_white = (pixels.min(axis=2) > 235).mean()
    assert near_white < 0.05, f"{near_white:.0%} of the chart is white on a dark page"
    assert pixels.mean() < 100  # mostly the dark page behind a transparent chart
    ctx.close()


def test_a_phone_width_page_fits_and_classifies(browser, app_url, tmp_path):
    from playwright.sync_api import expect

    ctx, page = _open(browser, app_url, width=390, height=844)
    page.get_by_role("button", name="Classify", exact=True).click()
    expect(page.locator("#truth")).to_contain_text("True class: lion")
    widths = page.evaluate("[document.documentElement.scrollWidth, document.body.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[2] and widths[1] <= widths[2], widths
    _shot(page, "phone-390")
    page.get_by_role("tab", name="Upload", exact=True).click()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(tmp_path / "red.png")
    page.locator("input[type=file]").first.set_input_files(str(tmp_path / "red.png"))
    page.get_by_role("button", name="Classify upload").click()
    expect(page.locator("#notebook-lines textarea")).to_have_value(re.compile("%"))
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    _shot(page, "phone-390-upload")
    ctx.close()


def test_every_control_has_an_accessible_name(browser, app_url):
    from playwright.sync_api import expect

    ctx, page = _open(browser, app_url)
    expect(page.locator("#status")).to_contain_text("tiny-state.pt")  # loaded and settled
    page.get_by_role("button", name="Classify", exact=True).click()  # a result's controls too
    expect(page.locator("#truth")).to_contain_text("True class: lion")
    page.get_by_text("Why this label?").click()
    unnamed = []
    for tab in ("Predict", "Search", "Labels", "Evaluate", "Architecture", "About"):  # every tab's controls, as shown
        page.get_by_role("tab", name=tab, exact=True).click()
        if tab == "Labels":
            page.get_by_text("My label sets").click()
        lines = page.locator("body").aria_snapshot().splitlines()
        unnamed += [f"{tab}: " + " / ".join(x.strip() for x in lines[max(0, i - 2):i + 1]) for i, line in enumerate(lines)
                    if re.match(r"^\s*- (button|textbox|slider|combobox|spinbutton|checkbox|radio|tab)\s*(\[[^\]]*\])?:?$",
                                line)]
    assert unnamed == [], unnamed
    ctx.close()


def test_a_server_with_no_weights_and_no_data_says_one_sentence(browser, tmp_path, monkeypatch):
    from playwright.sync_api import expect

    empty = tmp_path / "nothing_here-at.all"
    empty.mkdir()
    runtime = runtime_for(None, empty, weights=str(empty / "ViT-B-32.pt"), tmp=empty)
    runtime.start()
    with running_app(runtime) as (url, _):
        ctx, page = _open(browser, url)
        status = page.locator("#status")
        expect(status).to_contain_text("The model could not be loaded")
        expect(status).to_contain_text("The CIFAR-100 test images are unavailable")
        expect(status.locator("details")).to_have_count(1)
        assert status.locator("details").get_attribute("open") is None  # collapsed
        shown = page.locator("body").inner_text()
        assert str(tmp_path) not in shown and str(empty) not in shown
        assert not re.search(r"\\[.\-_]", shown), re.findall(r".{20}\\[.\-_].{20}", shown)
        _shot(page, "failure-status")
        # a dataset error holding angle brackets and a URL reaches the toast whole
        from clipdemo.io.cifar import DataUnavailable

        def unavailable():
            raise DataUnavailable("cifar_missing", empty, "Could not fetch https://www.cs.toronto.edu/~kriz/"
                                  "cifar-100-python.tar.gz: <urlopen error x>", empty)

        monkeypatch.setattr(runtime, "dataset", unavailable)
        page.get_by_role("button", name="Classify", exact=True).click()
        toast = page.locator(".toast-body").first
        expect(toast).to_contain_text("<urlopen error x>")
        expect(toast).to_contain_text("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz")
        assert str(empty) not in toast.inner_text()
        _shot(page, "failure-toast")
        ctx.close()


def test_why_this_label_shows_the_relevancy_map(browser, app_url):
    from playwright.sync_api import expect

    ctx, page = _open(browser, app_url + "/?index=15&k=5")
    expect(page.locator("#truth")).to_contain_text("True class: lion")
    page.get_by_text("Why this label?").click()
    top1 = page.locator("#notebook-lines textarea").input_value().splitlines()[0].split(":")[0].strip()
    expect(page.locator("#explain-label input")).to_have_value(top1)  # the top-1 label by default
    page.locator("#explain-run").click()
    caption = page.locator("#explain-caption")
    expect(caption).to_contain_text(f"Relevancy for {top1}")
    expect(page.locator("#explain-map img")).to_be_visible()
    expect(page.locator("#explain-words")).to_contain_text("photo")
    _shot(page, "why-this-label")
    page.locator("#explain-versus input").click()
    page.get_by_role("option", name="lion", exact=True).click()
    page.locator("#explain-run").click()
    expect(caption).to_contain_text(f"where {top1} has more relevancy than lion" if top1 != "lion" else "Relevancy for")
    page.locator("#explain").screenshot(path=str(ARTIFACTS / "visitor-why-this-label-versus.png"))
    ctx.close()


def test_search_from_a_link_then_a_click_more_like_this_and_predict(browser, app_url):
    from playwright.sync_api import expect

    ctx, page = _open(browser, app_url + "/?tab=search&q=a+red+car&n=12")
    status, found = page.locator("#search-status"), page.locator("#search-results .thumbnail-item")
    expect(status).to_contain_text("12 results for a photo of a red car.")
    expect(status).to_contain_text("Search covers all 10,000 test images.")
    expect(found).to_have_count(12)
    expect(page.locator("#search-classes .js-plotly-plot")).to_be_visible()  # the classes found, as a chart
    expect(page.locator("#search-link textarea, #search-link input").first).to_have_value(
        re.compile(re.escape(app_url) + r"/\?q=a\+red\+car&n=12&tab=search$"))
    _shot(page, "search-en")
    found.nth(2).click()
    expect(page.locator("#search-info")).to_contain_text("true class")
    index = re.search(r"#(\d+)", page.locator("#search-info").inner_text()).group(1)
    page.locator("#search-more").click()
    expect(status).to_contain_text(f"like CIFAR-100 #{index}")
    expect(page.locator("#search-query textarea, #search-query input").first).to_have_value("")
    found.first.click()  # the image itself, first
    expect(page.locator("#search-info")).to_contain_text(f"#{index}")
    page.locator("#search-classify").click()
    expect(page.locator("#truth")).to_contain_text(f"True class: {CIFAR100_CLASSES[fake_target(int(index))]}")
    ctx.close()
    ctx, page = _open(browser, app_url + "/?tab=search&q=a+red+car&n=12", locale="tr-TR")
    expect(page.get_by_role("tab", name=STRINGS["tr"]["tab_search"], exact=True)).to_be_visible()
    expect(page.locator("#search-status")).to_contain_text("12 sonuç")
    expect(page.locator("#search-classes .js-plotly-plot")).to_be_visible()
    _shot(page, "search-tr")
    ctx.close()


def test_a_turkish_page_classifies_with_the_turkish_preset_and_the_multilingual_encoder(browser, app_url):
    """A Turkish visitor: the Labels tab offers the multilingual encoder (the hint), they pick the Turkish
    CIFAR-100 preset and 'Any language', then classify image 15: Turkish labels, the true class in Turkish, the
    encoder named on the chart and in the summary."""
    from playwright.sync_api import expect

    tr = STRINGS["tr"]
    ctx, page = _open(browser, app_url, locale="tr-TR")
    page.get_by_role("tab", name=tr["tab_labels"], exact=True).click()
    hint = page.locator("#encoder-hint")
    expect(hint).to_contain_text("Bu etiketler İngilizce görünmüyor ya da sayfa Türkçe")  # offered on a Turkish page
    page.locator("#label-preset input").click()
    page.get_by_role("option", name=LABEL_PRESETS["cifar100-tr"].title, exact=True).click()
    expect(page.locator("#label-editor textarea")).to_have_value(re.compile(r"^elma\nakvaryum balığı\n"))
    page.get_by_label(tr["encoder_multilingual"], exact=True).check()
    summary = page.locator("#label-summary")
    expect(summary).to_contain_text("Metin kodlayıcısı: Her dil (çok dilli kodlayıcı)")
    expect(hint).to_have_text("")  # the multilingual encoder is active: nothing to offer
    page.get_by_role("tab", name=tr["tab_predict"], exact=True).click()
    page.get_by_role("button", name=tr["classify"], exact=True).click()
    true = CIFAR100_CLASSES_TR[fake_target(15)]
    expect(page.locator("#truth")).to_contain_text(true)
    lines = page.locator("#notebook-lines textarea")
    expect(lines).to_have_value(re.compile(r"^ +\S.*: \d+\.\d\d%"))
    assert lines.input_value().splitlines()[0].split(":")[0].strip() in CIFAR100_CLASSES_TR
    expect(page.locator("#result-chart")).to_contain_text("çok dilli metin kodlayıcısı")
    _shot(page, "turkish-multilingual")
    ctx.close()


def test_a_visitor_measures_their_own_labelled_images_and_takes_the_threshold(browser, app_url, tmp_path):
    """Evaluate → Your labelled images: upload a zip (three colour folders and an "other" folder), edit a label,
    ask for 2 few-shot examples per class, see the report (zero-shot vs few-shot side by side, calibration, the
    threshold drawn on the cosines), take the recommended threshold, and see it on Predict's verdict."""
    from playwright.sync_api import expect

    from test_yourdata import _colours, _zip

    zipped = _zip(tmp_path / "colours.zip", _colours(per_class=5, other=3))
    ctx, page = _open(browser, app_url)
    threshold = page.locator("#threshold input, #threshold textarea").first
    expect(threshold).to_have_value("")  # off: empty, and its placeholder says so (#36: it showed 0)
    expect(threshold).to_have_attribute("placeholder", "off (e.g. 0.2)")
    page.get_by_role("tab", name="Evaluate", exact=True).click()
    expect(page.locator("#eval-results")).to_be_hidden()  # nothing but the controls before a run
    page.get_by_role("tab", name="Your labelled images", exact=True).click()
    expect(page.locator("#labelled-results")).to_be_hidden()
    page.locator("#labelled-zip input[type=file]").set_input_files(str(zipped))
    expect(page.locator("#labelled-note")).to_contain_text("Read 18 images in 3 classes (3")
    classes = page.locator("#labelled-classes textarea")
    expect(classes).to_have_value("dark blue\ngreen\nred")
    classes.fill("navy square\ngreen square\nred square")
    page.locator("#labelled-examples input[type=number]").fill("2")
    page.locator("#labelled-examples input[type=number]").press("Enter")
    page.locator("#labelled-run").click()
    summary = page.locator("#labelled-summary")
    expect(summary).to_contain_text("few-shot (2 per class)")
    expect(summary).to_contain_text("Zero-shot vs few-shot")
    expect(summary).to_contain_text("ECE")
    expect(page.locator("#labelled-reliability .js-plotly-plot")).to_be_visible()
    expect(page.locator("#labelled-cosines .js-plotly-plot")).to_be_visible()
    recommended = re.search(r"\*\*(-?\d\.\d{3})\*\*|best cosine of (-?\d\.\d{3})|is (-?\d\.\d{3})",
                            summary.inner_text())
    _shot(page, "your-labelled-images")
    page.locator("#labelled-use-threshold").click()
    page.locator("#labelled-use-examples").click()  # the report's held-out examples, for Predict's few-shot
    page.get_by_role("tab", name="Predict", exact=True).click()
    expect(page.locator("#threshold input, #threshold textarea").first).not_to_have_value("")
    page.get_by_text("Teach it with examples (few-shot, no training)").click()
    expect(page.locator("#examples-note")).to_contain_text("navy square (2), green square (2), red square (2)")
    page.get_by_role("button", name="Classify", exact=True).click()
    expect(page.locator("#verdict")).to_contain_text("the threshold")
    assert recommended is not None
    ctx.close()


def test_the_clip_family_side_by_side(browser, app_url):
    from playwright.sync_api import expect

    ctx, page = _open(browser, app_url)
    page.get_by_role("tab", name="Architecture", exact=True).click()
    page.get_by_text("Compare with the CLIP family").click()
    page.locator("#family-show").click()
    expect(page.locator("#family-table")).to_contain_text("87.85M")
    expect(page.locator("#family-table")).to_contain_text("RN50x64")
    expect(page.locator("#family-plot .js-plotly-plot")).to_be_visible()
    expect(page.locator("#family-note")).to_contain_text("meta device")
    expect(page.locator("#family-cost .js-plotly-plot")).to_be_visible()  # make bench's figures, and estimates
    expect(page.locator("#family-cost-note")).to_contain_text("make bench")
    expect(page.locator("#family-compare-note")).to_contain_text(
        "ViT-B/16 has 0.98× the parameters and 3.98× the FLOPs of ViT-B/32 in the vision tower.")
    expect(page.locator("#family-compare-b")).to_contain_text("35126906880")  # ViT-B/16's image FLOPs, exact
    expect(page.locator("#flops-note")).to_contain_text("inside attention")
    page.locator("#family").screenshot(path=str(ARTIFACTS / "clip-family.png"))
    ctx.close()
