"""The real app on loopback, driven by gradio_client: endpoints, predictions, per-session labels."""

import pytest
from gradio_client import Client, handle_file
from PIL import Image

from clipdemo.core.labels import CIFAR100_CLASSES, LabelSet
from clipdemo.serving.service import ZeroShot
from uiserver import running_app, runtime_for
from clipdemo.tasks.classify import predict_image

pytestmark = pytest.mark.slow
PUBLIC = {"/status", "/predict_index", "/random_index", "/predict_image", "/set_labels", "/architecture", "/attention",
          "/tokens", "/label_similarity", "/ping", "/evaluate", "/classify_batch_ui", "/relevancy", "/search_page",
          "/explain_match", "/add_to_gallery"}  # the page's events: callable, not documented
TYPED = {"/classify", "/classify_cifar", "/classify_batch", "/search", "/architecture_summary"}  # the documented API (and the MCP tools)


@pytest.fixture(scope="module")
def app(tiny_loaded, cifar_root, tmp_path_factory):
    with running_app(runtime_for(tiny_loaded, cifar_root, tmp=tmp_path_factory.mktemp("c"))) as (url, demo):
        yield url, demo


def _client(url):
    return Client(url, verbose=False, download_files=False)


def test_every_named_endpoint_exists_and_only_the_typed_ones_are_documented(app):
    import httpx

    url, demo = app
    info = _client(url).view_api(print_info=False, return_format="dict")
    assert set(info["named_endpoints"]) == TYPED
    assert set(httpx.get(f"{url}/gradio_api/info", timeout=30).json()["named_endpoints"]) == TYPED
    config = httpx.get(f"{url}/config", timeout=30).json()
    visibility = {"/" + d["api_name"]: d.get("api_visibility") for d in config["dependencies"] if d.get("api_name")}
    assert PUBLIC <= {name for name, v in visibility.items() if v == "undocumented"}  # callable, not documented


def test_run_history_is_off_and_the_browser_keeps_no_runs(app):
    """Gradio 6 would keep each visitor's runs (inputs and outputs, uploaded images among them) in their browser
    and list them at /gradio_api/runs: on a shared computer the next person would find them. It is off."""
    import httpx

    url, _ = app
    config = httpx.get(f"{url}/config", timeout=30).json()
    assert config["run_history"] is False and "runs" not in str(config.get("footer_links"))
    assert httpx.get(f"{url}/gradio_api/runs", timeout=30).status_code == 404
    assert config["mcp_server"] is False  # Gradio's own MCP server is off: clipdemo.ui.mcp serves the tools


def test_predict_index_matches_the_engine(app, tiny_loaded, cifar_root):
    from clipdemo.io.cifar import open_cifar100
    url, _ = app
    out = _client(url).predict(15, 5, api_name="/predict_index")
    original, model_input, label, plot, lines, truth, files, share, verdict, share_note = out
    assert share_note == ""  # the default set travels whole
    assert verdict == ""  # no "none of these" threshold in this session
    ref = predict_image(ZeroShot(tiny_loaded), open_cifar100(cifar_root).image(15), LabelSet.preset(), 5)
    got = [(c["label"], c["confidence"]) for c in label["confidences"]]
    assert [lab for lab, _ in got] == [lab for lab, _ in ref.top]
    assert [p for _, p in got] == pytest.approx([p for _, p in ref.top], abs=1e-6)
    assert lines.splitlines() == ref.lines()
    assert "True class: **lion**" in truth
    assert len(files) == 2


def test_upload_and_per_session_labels(app, tmp_path):
    url, _ = app
    alice, bob = _client(url), _client(url)
    summary, hint = alice.predict("red thing\ngreen thing\nblue thing", "a photo of a {}", "clip",
                                  api_name="/set_labels")
    assert "3 labels × 1 template(s) = 3 prompts" in summary and hint == ""  # English labels: nothing to offer
    img = tmp_path / "green.png"
    Image.new("RGB", (64, 64), (0, 200, 0)).save(img)
    a = alice.predict(handle_file(str(img)), 3, api_name="/predict_image")[1]
    b = bob.predict(handle_file(str(img)), 3, api_name="/predict_image")[1]
    assert {c["label"] for c in a["confidences"]} == {"red thing", "green thing", "blue thing"}
    assert {c["label"] for c in b["confidences"]} <= set(CIFAR100_CLASSES)
    b_index = bob.predict(7, 5, api_name="/predict_index")[2]
    assert {c["label"] for c in b_index["confidences"]} <= set(CIFAR100_CLASSES)


def test_bad_input_is_a_clear_error_and_server_survives(app):
    url, _ = app
    c = _client(url)
    with pytest.raises(Exception, match="greater than maximum value 9999"):
        c.predict(10_000, 5, api_name="/predict_index")
    with pytest.raises(Exception, match="must contain exactly one"):
        c.predict("a\nb", "no placeholder", "clip", api_name="/set_labels")
    assert c.predict(1, 2, api_name="/predict_index")[2]["label"]


def test_architecture_and_status_endpoints(app):
    url, _ = app
    c = _client(url)
    card, vis, vis_text, txt, txt_text, tree, treemap, flops = c.predict(3, api_name="/architecture")
    assert treemap["type"] == "plotly" and "inside attention" in flops and vis["headers"][-1] == "FLOPs"
    assert card["text"]["context_length"] == 77 and vis["headers"][0] == "layer"
    assert "VisionTransformer" in vis_text and tree.startswith("CLIP(")
    status, *_ = c.predict(api_name="/status")
    assert "tiny-state.pt" in status.replace("\\", "")


def test_inside_views_through_the_server(app):
    url, _ = app
    c = _client(url)
    c.predict(15, 3, api_name="/predict_index")
    patches, overlay, caption = c.predict("1", "mean", api_name="/attention")
    assert "layer 1, mean over heads" in caption and overlay and patches["type"] == "plotly"
    table, note = c.predict("a photo of a lion", api_name="/tokens")
    assert table["data"][5][2] == "lion" and "7 of 77" in note
    c.predict("cat\ndog\ncar", "a photo of a {}", "clip", api_name="/set_labels")
    sim = c.predict(api_name="/label_similarity")
    assert sim["type"] == "plotly" and '"cat"' in sim["plot"]
    fresh = _client(url)  # a new session has no last image
    with pytest.raises(Exception, match="Classify an image first"):
        fresh.predict("rollout", "mean", api_name="/attention")
    with pytest.raises(Exception, match="Classify an image first"):
        fresh.predict("cat", "", api_name="/relevancy")


def test_relevancy_endpoint_explains_the_sessions_last_image(app, tiny_loaded, cifar_root):
    import torch

    from clipdemo.io.cifar import open_cifar100
    from clipdemo.core.inside import image_relevancy
    from clipdemo.serving.service import ZeroShot
    url, _ = app
    c = _client(url)
    c.predict("cat\ndog\nlion", "a photo of a {}", "clip", api_name="/set_labels")
    c.predict(15, 3, api_name="/predict_index")
    relevancy, rollout, words, caption = c.predict("lion", "", api_name="/relevancy")
    assert relevancy and rollout and "Relevancy for **lion**" in caption and "a photo of a lion" in caption
    assert [w["token"].strip() for w in words] == ["a", "photo", "of", "a", "lion"]
    assert all(0 <= w["class_or_confidence"] <= 1 for w in words) and max(w["class_or_confidence"] for w in words) == 1
    _, _, diff_caption = c.predict("lion", "cat", api_name="/relevancy")[1:]
    assert "where **lion** has more relevancy than **cat**" in diff_caption
    with pytest.raises(Exception, match="'tiger' is not one of the active labels"):
        c.predict("tiger", "", api_name="/relevancy")
    zs = ZeroShot(tiny_loaded)  # the same numbers as the core computes
    text = zs.text_features(LabelSet.of(("cat", "dog", "lion"), ("a photo of a {}",)))[2]
    ref, _, _ = image_relevancy(tiny_loaded.model, zs.pixels(open_cifar100(cifar_root).image(15))[None], text)
    assert torch.isfinite(ref).all() and (ref >= 0).all()


def test_evaluate_endpoint(app):
    url, _ = app
    summary, chart, confusion, pairs, worst, files = _client(url).predict(
        "first", 120, 1, 0, "single", "cifar100", api_name="/evaluate")
    assert "| single | 120 |" in summary and chart["type"] == "plotly" and confusion["type"] == "plotly"
    assert len(files) == 2 and isinstance(worst, list)
    with pytest.raises(Exception, match="less than minimum value 1"):
        _client(url).predict("first", 0, 1, 0, "single", "cifar100", api_name="/evaluate")


def test_no_weights_and_no_dataset_app_still_starts(tmp_path):
    """The Space with nothing available: page served, status explains, architecture works."""
    from clipdemo.core.words import Refusal
    from clipdemo.serving.runtime import Runtime
    from clipdemo.serving.settings import Settings
    rt = Runtime(Settings(weights="ViT-B/32", cache_dir=tmp_path / "cache", data_root=tmp_path / "data",
                          allow_download=False))
    rt.start()
    with running_app(rt) as (url, _):
        c = _client(url)
        with pytest.raises(Refusal, match="could not be loaded"):
            rt.service(timeout=30)
        status, *_ = c.predict(api_name="/status")
        status = status.replace("\\", "")  # Markdown escapes, as rendered
        assert "The model could not be loaded" in status and "CLIPDEMO_WEIGHTS=random" in status
        assert "CIFAR-100 test images are unavailable" in status
        card, *_ = c.predict(1, api_name="/architecture")
        assert card["vision"]["width"] == 768 and card["parameters"]["total"] == 151_277_313
        assert "random weights" in card["note"]
        with pytest.raises(Exception, match="CIFAR-100 is not available"):
            c.predict(15, 5, api_name="/predict_index")
        img = tmp_path / "x.png"
        Image.new("RGB", (8, 8)).save(img)
        with pytest.raises(Exception, match="The model could not be loaded"):
            c.predict(handle_file(str(img)), 5, api_name="/predict_image")
