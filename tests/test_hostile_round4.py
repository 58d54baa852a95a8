"""Reliability, round 4 (issue #34): the newest surfaces under hostile input. Each test names the defect it
covers; each fails on the code before the fix (see the issue's note) and asserts a mechanism, never seconds."""

from __future__ import annotations

import io
import itertools
import json
import threading
import zipfile

import gradio as gr
import httpx
import pytest
from PIL import Image

from clipdemo.core.words import Refusal
from clipdemo.core.labels import MAX_LABELS, LabelSet, PromptError
from clipdemo.core.zeroshot import cost_chunks
from clipdemo.serving.service import ZeroShot
from clipdemo.tasks.classify import read_batch
from clipdemo.tasks.yourdata import MAX_CSV_BYTES, MAX_IMAGES, read_labelled
from clipdemo.ui.bodycap import DATA_URL_CAP, MAX_BODY_ITEMS, SMALL_CAP
from clipdemo.ui.links import Link, left_out, link_query, read_link


def _png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(buf, "PNG")
    return buf.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.fixture(scope="module")
def zs(tiny_loaded):
    from clipdemo.weights.load import load_tower
    return ZeroShot(tiny_loaded, tower_loader=lambda progress: load_tower(tiny_loaded, allow_download=False))


# -- 1. an archive that zipfile cannot open, whatever it raises, is a sentence naming the file ------------------
def _bad_name_zip(tmp_path):
    """A zip whose member is flagged UTF-8 but is named by the bytes ff fe: zipfile raises UnicodeDecodeError."""
    raw = _zip({"cat/é.png": _png(), "dog/b.png": _png(), "cat/c.png": _png(), "dog/d.png": _png()})
    raw = raw.replace("é".encode(), b"\xff\xfe")
    path = tmp_path / "names.zip"
    path.write_bytes(raw)
    with pytest.raises(UnicodeDecodeError):  # what the boxes answered with Gradio's bare "Error"
        zipfile.ZipFile(path)
    return path


def test_a_zip_with_a_member_name_that_is_not_utf8_is_a_sentence_everywhere(zs, tmp_path):
    path = _bad_name_zip(tmp_path)
    with pytest.raises(Refusal, match="names.zip is not a readable zip"):
        read_batch([path], fit=32)  # the Batch tab, "My pictures", Predict's examples and the CLI read this way
    with pytest.raises(Refusal, match="names.zip is not a readable zip"):
        read_labelled(zs, path)  # the labelled-zip box and `evaluate --labelled`


# -- 2. nothing materialised before it is bounded; every upload event that unpacks runs one at a time ------------
def test_a_labels_csv_over_its_size_is_refused_before_it_is_read(zs, tmp_path, monkeypatch):
    members = {"a.png": _png(), "b.png": _png(), "labels.csv": b"ab\n" * (MAX_CSV_BYTES // 3 + 10)}
    (tmp_path / "big.zip").write_bytes(_zip(members))
    import clipdemo.tasks.yourdata as yourdata
    monkeypatch.setattr(yourdata, "read_member", lambda *a: pytest.fail("the CSV was read"))
    with pytest.raises(Refusal, match="The CSV labels.csv is larger than 2 MB"):
        read_labelled(zs, tmp_path / "big.zip")


def test_csv_rows_are_read_one_at_a_time_and_capped(zs, tmp_path, monkeypatch):
    import clipdemo.tasks.yourdata as yourdata
    read = []
    real = yourdata.csv.reader

    def counting(lines):
        for row in real(lines):
            read.append(row)
            yield row
    monkeypatch.setattr(yourdata.csv, "reader", counting)
    # the case: two-character rows (no label): refused at the first row, the rest never read
    (tmp_path / "short.zip").write_bytes(_zip({"a.png": _png(), "labels.csv": b"ab\n" * 500_000}))
    with pytest.raises(Refusal, match="A CSV row needs a file name and a label: ab"):
        read_labelled(zs, tmp_path / "short.zip")
    assert len(read) == 1
    read.clear()
    rows = yourdata._csv_rows("filename,label\n" + "".join(f"x{i}.png,cat\n" for i in range(3 * MAX_IMAGES)))
    with pytest.raises(Refusal, match=f"This set has {MAX_IMAGES:,}\\+ images; the limit is {MAX_IMAGES}"):
        list(rows)
    assert len(read) == MAX_IMAGES + 2  # the header, the images allowed, and the first row over the cap


def test_every_upload_event_that_unpacks_runs_one_at_a_time(tiny_loaded, cifar_root, tmp_path):
    from uiserver import built_page, runtime_for
    page = built_page(runtime_for(tiny_loaded, cifar_root, tmp=tmp_path))
    unpacking = {"load": page.evaluate.yours, "add_examples": page.predict, "classify_all": page.predict.batch,
                 "add_to_gallery": page.search}
    found = {}
    for block in page.demo.fns.values():
        fn = getattr(block.fn, "__func__", None)
        owner = getattr(block.fn, "__self__", None)
        if fn is not None and unpacking.get(fn.__name__) is owner:
            found[fn.__name__] = block.concurrency_limit
    assert found == {name: 1 for name in unpacking}


# -- 3. every cheap check before any decoding ----------------------------------------------------------------
@pytest.mark.parametrize("call, message", [
    (lambda api, img: api.classify(img, ["cat", "dog"], top_k=0), "top-k"),
    (lambda api, img: api.classify(img, ["cat", "dog"], threshold=5), "threshold"),
    (lambda api, img: api.classify(img, ["cat"]), "at least 2"),
    (lambda api, img: api.classify(img, ["cat", "dog"], examples={"cow": [img]}), "cow"),
    (lambda api, img: api.classify(img, ["cat", "dog"], examples={"cat": [img] * 17}), "16"),
    (lambda api, img: api.classify_batch([img] * 2, ["cat", "dog"], top_k=0), "top-k"),
    (lambda api, img: api.search("", image=img, top_k=0), "1"),
    (lambda api, img: api.search("\x00bad", image=img), "control"),
])
def test_the_api_checks_everything_cheap_before_decoding_any_image(tiny_loaded, cifar_root, tmp_path, monkeypatch,
                                                                   call, message):
    import clipdemo.ui.api as api_module
    from uiserver import runtime_for
    monkeypatch.setattr(api_module, "image_from_reference", lambda *a, **k: pytest.fail("an image was decoded"))
    api = api_module.ApiEndpoints(runtime_for(tiny_loaded, cifar_root, tmp=tmp_path))
    with pytest.raises(gr.Error, match=f"(?i){message}"):
        call(api, "data:image/png;base64,AAAA")


# -- 4. text encoded in chunks by cost, so a visitor waits behind one short chunk --------------------------------
def test_cost_chunks_keep_every_chunk_within_its_budget_and_are_greedy():
    lengths = [3, 128, 7, 7, 7, 40, 128, 3, 3, 3, 3, 90]
    for budget in (1, 50, 128, 300, 10_000):
        chunks = cost_chunks(lengths, budget, most=5)
        assert [i for c in chunks for i in range(c.start, c.stop)] == list(range(len(lengths)))  # all, in order
        for c in chunks:
            n, longest = c.stop - c.start, max(lengths[c])
            assert n == 1 or (n * longest <= budget and n <= 5)
        for a, b in itertools.pairwise(chunks):  # greedy: the next prompt would not have fitted
            grown = lengths[a.start:b.start + 1]
            assert len(grown) > 5 or len(grown) * max(grown) > budget


@pytest.mark.parametrize("encoder", ["clip", "multilingual"])
def test_long_prompts_are_encoded_in_short_chunks_by_cost_and_a_visitor_waits_behind_one(zs, monkeypatch, encoder):
    """The largest set a visitor may send with long prompts: each model call within the budget (prompts x the
    chunk's longest <= text_chunk_s x the tower's rate), where chunks of 64 prompts cost 64 x 128 tokens before.
    An upload arriving meanwhile is encoded right after the chunk it arrived during."""
    zs._token_rates[encoder] = 1200.0  # the 2-vCPU rate: a budget of 300 tokens
    budget = zs.chunk_budget(encoder)
    long = "x " * (60 if encoder == "multilingual" else 30)
    label_set = LabelSet.of([f"{long}{i}" for i in range(80)], ["a photo of a {}"], encoder=encoder)
    calls, events, upload = [], [], {}
    task = "encode_prompts" if encoder == "clip" else "encode_multilingual"
    real_text, real_images = getattr(zs._tasks, task), zs._tasks.encode_images

    def text_call(key, tokens, *rest):
        length = int(rest[0].sum(-1).max()) if rest else int(tokens.argmax(-1).max()) + 1
        calls.append((len(tokens), length, zs.chunk_budget(encoder)))
        events.append("chunk")
        if len(calls) == 2:  # a visitor's upload arrives during the second chunk and waits at the gate
            upload["thread"] = threading.Thread(target=lambda: zs.image_features([Image.new("RGB", (40, 40))]))
            upload["thread"].start()
            while zs.waiting == 0:
                threading.Event().wait(0.001)
        return real_text(key, tokens, *rest)

    def image_call(key, pixels):
        events.append("upload")
        return real_images(key, pixels)
    monkeypatch.setattr(zs._tasks, task, text_call)
    monkeypatch.setattr(zs._tasks, "encode_images", image_call)
    zs.text_features(label_set)
    upload["thread"].join()
    assert len(calls) > 1 and all(n * length <= planned for n, length, planned in calls if n > 1)
    assert all(planned == pytest.approx(budget) or n == 1 for n, _, planned in calls[:1])
    assert max(n * length for n, length, _ in calls) <= max(budget, max(length for _, length, _ in calls))
    assert events.index("upload") == 2  # right after the chunk it arrived during: behind one chunk, no more


# -- 5 and 6. bodies bounded before they are parsed; MCP arguments checked by name, off the event loop -----------
def test_a_list_of_millions_is_refused_by_its_length_before_it_is_walked():
    walked = []

    def labels():
        for i in range(3_000_000):
            walked.append(i)
            yield f"{i}"
    with pytest.raises(PromptError, match="Too many labels"):
        LabelSet.of(labels(), ["{}"])
    assert len(walked) == 2 * MAX_LABELS + 1
    with pytest.raises(PromptError, match="Too many labels: 20,000,000; the limit is 500"):
        LabelSet.of(["ab"] * 20_000_000, ["{}"])


@pytest.fixture(scope="module")
def app(tiny_loaded, cifar_root, tmp_path_factory):
    """One served app for the body cap and MCP tests."""
    from uiserver import running_app, runtime_for
    with running_app(runtime_for(tiny_loaded, cifar_root, tmp=tmp_path_factory.mktemp("r4"))) as (url, _):
        yield url


@pytest.mark.slow
class TestServed:
    """Bodies and MCP calls through the real HTTP routes."""

    def test_a_body_over_its_routes_cap_is_refused_unread(self, app):
        huge = b"x" * (DATA_URL_CAP + 1)
        r = httpx.post(f"{app}/gradio_api/call/classify", content=huge, headers={"content-type": "application/json"},
                       timeout=30)
        assert r.status_code == 413 and "the limit here is 27.7 MB" in r.json()["error"]
        r = httpx.post(f"{app}/gradio_api/cancel", content=b"x" * (SMALL_CAP + 1),
                       headers={"content-type": "application/json"}, timeout=30)
        assert r.status_code == 413 and "the limit here is 4.0 MB" in r.json()["error"]

    def test_a_streamed_body_without_a_length_is_counted_as_it_arrives(self, app):
        def chunks():
            for _ in range(40):
                yield b"x" * 2**20
        r = httpx.post(f"{app}/gradio_api/queue/join", content=chunks(), headers={"content-type": "application/json"},
                       timeout=30)
        assert r.status_code == 413 and "is over 27" in r.json()["error"] and "limit here is 27.7 MB" in r.json()["error"]

    def test_a_body_of_millions_of_labels_is_refused_before_it_is_parsed(self, app):
        body = json.dumps({"data": ["data:image/png;base64,AAAA", ["ab"] * (MAX_BODY_ITEMS + 10)]})
        r = httpx.post(f"{app}/gradio_api/call/classify", content=body, headers={"content-type": "application/json"},
                       timeout=30)
        assert r.status_code == 413 and "no endpoint takes more than 100,000" in r.json()["error"]

    def _rpc(self, app, arguments: dict, name: str = "classify") -> dict:
        body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
        r = httpx.post(f"{app}/gradio_api/mcp/", json=body, timeout=30,
                       headers={"accept": "application/json, text/event-stream"})
        text = r.text
        return json.loads(text.split("data: ", 1)[1]) if "data: " in text else r.json()

    def test_a_4_mib_mcp_call_of_empty_labels_is_refused_before_the_sdk_parses_it(self, app):
        answer = self._rpc(app, {"image": "data:,", "candidate_labels": [""] * 1_398_007})
        assert "no endpoint takes more than 100,000" in answer["error"]["message"]

    def test_the_sse_transports_message_route_is_capped_too(self, app):
        """#36 serves MCP over SSE as well: its message route is under the same prefix, so the same cap holds."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                           "params": {"name": "classify", "arguments": {"candidate_labels": ["ab"] * 200_000}}})
        r = httpx.post(f"{app}/gradio_api/mcp/messages/?session_id=00000000000000000000000000000000", content=body,
                       headers={"content-type": "application/json"}, timeout=30)
        assert r.status_code == 413 and "no endpoint takes more than 100,000" in r.text

    def test_mcp_arguments_are_checked_by_name_in_a_worker_thread(self, app, monkeypatch):
        import clipdemo.ui.mcp as mcp
        threads = []
        real = mcp._check_arguments
        monkeypatch.setattr(mcp, "_check_arguments", lambda *a: threads.append(threading.current_thread().name)
                            or real(*a))
        too_many = self._rpc(app, {"image": "data:,", "candidate_labels": ["a"] * 1001})
        assert "The argument 'candidate_labels' is too large (1,001 items); at most 1,000." in str(too_many)
        inner = self._rpc(app, {"image": "data:,", "candidate_labels": ["a", "b"], "examples": {"a": ["data:,"] * 1001}})
        assert "The argument 'examples' is too large (1,001 items); at most 1,000." in str(inner)  # one of its items
        extra = self._rpc(app, {"image": "data:,", "candidate_labels": ["a", "b"], "colour": "red"})
        assert "Unknown argument 'colour' for classify; it takes: image, candidate_labels" in str(extra)
        wrong = self._rpc(app, {"image": "data:,", "candidate_labels": ["a", "b"], "top_k": "five"})
        assert "The argument 'top_k' is not valid" in str(wrong)
        assert len(threads) == 4 and not any(t == "MainThread" or "uvicorn" in t.lower() for t in threads)


# -- 7. links carry every choice that fits, and the page says what a link leaves out ---------------------------
def test_every_link_field_round_trips():
    from clipdemo.core.search import SearchQuery
    turkish = LabelSet.of(["kedi", "köpek", "kuş"], ["bir {} fotoğrafı"], encoder="multilingual")
    links = [Link(index=15, k=3, label_set=turkish, tab="predict"),
             Link(label_set=LabelSet.preset("cifar100-tr", "single-tr", encoder="multilingual"), tab="labels"),
             Link(label_set=LabelSet.preset(encoder="multilingual")),
             Link(tab="search", search=SearchQuery.of("a red car", "rain", raw=True), n=12)]
    for link in links:
        back, notes = read_link(link_query(link))
        assert (back, notes, left_out(link)) == (link, (), ())
    assert "encoder=multilingual" in link_query(links[0])


def test_a_link_says_what_it_cannot_carry():
    from clipdemo.tasks.classify import Answering
    from clipdemo.ui.tabs.predict import link_note
    many = Link(index=1, label_set=LabelSet.of([f"thing {i}" for i in range(101)], ["{}"]))
    two = Link(index=1, label_set=LabelSet.of(["cat", "dog"], ["a {}", "the {}"], encoder="multilingual"))
    assert (left_out(many), left_out(two)) == (("labels",), ("templates",))
    assert read_link(link_query(two))[0].label_set.encoder == "multilingual"  # what fits still travels
    note = link_note(two, Answering(threshold=0.2), "en")
    assert note == ("This link cannot carry your prompt templates (several of your own); the threshold, examples "
                    "and temperature (they stay in this session): whoever opens it gets the defaults there.")
    assert link_note(Link(index=1, label_set=LabelSet.preset()), Answering(), "en") == ""


# -- also: a bench run never rewrites a tracked file --------------------------------------------------------------
def test_the_family_bench_writes_to_the_cache_and_only_publish_writes_the_packages_file(tmp_path, monkeypatch):
    from bench import family
    from clipdemo.io.measured import COST_FILE, Measured, read_measured
    before = COST_FILE.read_bytes()
    monkeypatch.setattr(family, "measure", lambda q: Measured("2026-12-08T00:00:00+00:00", "test", 1.0,
                                                              {"ViT-B/32": 1.0, "ViT-B/16": 2.0}))
    monkeypatch.setattr(family, "default_cache", lambda: tmp_path)
    out = family.run(True)
    assert out == tmp_path / "bench" / "family_cost.json" and read_measured(out).machine == "test"
    assert COST_FILE.read_bytes() == before
