"""The typed, stateless API and the MCP server, through a real server: `classify`, `classify_cifar` and
`architecture_summary` with gradio_client and with the `mcp` package's streamable-HTTP client, and the
hostile inputs an API opens (web addresses, paths, oversized images, label sets over the budget)."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import socket

import pytest
from gradio_client import Client, handle_file
from PIL import Image

from clipdemo.core.words import say
from clipdemo.io.images import MAX_BYTES
from clipdemo.core.labels import CIFAR100_CLASSES
from fixtures import loopback_server
from uiserver import running_app, runtime_for

pytestmark = pytest.mark.slow
TOOLS = {"classify", "classify_cifar", "classify_batch", "search", "architecture_summary"}


def _data_url(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, "PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


@pytest.fixture(scope="module")
def server(tiny_loaded, cifar_root, tmp_path_factory, tiny_index):
    rt = runtime_for(tiny_loaded, cifar_root, tmp=tmp_path_factory.mktemp("api"))
    rt.service().add_stored_features(tiny_index)  # the search index, as the runtime builds it in the background
    with running_app(rt) as (url, _):
        yield url, rt


@pytest.fixture
def picture(tmp_path):
    image = Image.effect_mandelbrot((96, 64), (-2, -1.2, 1, 1.2), 40).convert("RGB")
    image.save(tmp_path / "p.png")
    return image, tmp_path / "p.png"


def test_classify_is_stateless_typed_and_equals_the_page(server, picture):
    url, _ = server
    image, path = picture
    labels = ["red thing", "green thing", "blue thing", "a {0.__class__} label"]  # format syntax stays plain text
    api = Client(url, verbose=False)
    out = api.predict(_data_url(image), labels, "a photo of a {}", 4, api_name="/classify")
    assert [set(entry) for entry in out] == [{"label", "score", "cosine"}] * 4
    assert sorted(e["label"] for e in out) == sorted(labels)
    assert abs(sum(e["score"] for e in out) - 1) < 1e-6 and all(-1 <= e["cosine"] <= 1 for e in out)
    assert [e["score"] for e in out] == sorted((e["score"] for e in out), reverse=True)
    uploaded = api.predict(handle_file(str(path)), labels, api_name="/classify")  # a file uploaded to the Space
    assert uploaded[0] == out[0] and len(uploaded) == 4  # top_k defaults to 5, capped by the labels
    page = Client(url, verbose=False, download_files=False)  # the page's path: set labels, then classify
    page.predict("\n".join(labels), "a photo of a {}", "clip", api_name="/set_labels")
    shown = page.predict(handle_file(str(path)), 4, api_name="/predict_image")[1]["confidences"]
    assert {c["label"]: round(c["confidence"], 6) for c in shown} == {e["label"]: round(e["score"], 6) for e in out}


def test_classify_cifar_gives_the_true_label(server, cifar_root):
    from clipdemo.io.cifar import open_cifar100
    url, _ = server
    out = Client(url, verbose=False).predict(15, None, "a photo of a {}", 3, api_name="/classify_cifar")
    assert out["index"] == 15 and out["true_label"] == CIFAR100_CLASSES[open_cifar100(cifar_root).target(15)]
    assert len(out["predictions"]) == 3 and all(p["label"] in CIFAR100_CLASSES for p in out["predictions"])
    custom = Client(url, verbose=False).predict(15, ["cat", "dog"], api_name="/classify_cifar")
    assert {p["label"] for p in custom["predictions"]} == {"cat", "dog"}


def test_the_text_encoder_parameter_reads_labels_in_any_language(server, cifar_root):
    """`text_encoder="multilingual"` through a real server equals the library's classification with the tower
    (and differs from CLIP's own); a tower that is not one is refused in a sentence, and the default is CLIP's."""
    from clipdemo.io.cifar import open_cifar100
    from clipdemo.tasks.classify import classify_index

    url, rt = server
    c = Client(url, verbose=False)
    labels = ["aslan", "kaplan", "deve", "kedi"]
    out = c.predict(15, labels, "bir {} fotoğrafı", 4, "multilingual", api_name="/classify_cifar")
    reference = classify_index(rt.service(), open_cifar100(cifar_root), 15, labels, "bir {} fotoğrafı", 4,
                               "multilingual")
    assert out == reference and {p["label"] for p in out["predictions"]} == set(labels)
    clip = c.predict(15, labels, "bir {} fotoğrafı", 4, api_name="/classify_cifar")
    assert [p["cosine"] for p in clip["predictions"]] != [p["cosine"] for p in out["predictions"]]
    image = _data_url(Image.new("RGB", (8, 8), "red"))
    batch = c.predict([image, image], labels, "{}", 2, "multilingual", api_name="/classify_batch")
    assert [len(b["predictions"]) for b in batch] == [2, 2]
    with pytest.raises(Exception, match="Unknown text encoder 'klingon'; choose one of: clip, multilingual"):
        c.predict(image, labels, "{}", 2, "klingon", api_name="/classify")


def test_threshold_and_few_shot_examples_through_the_api(server):
    """`threshold` marks what fits (and leaves the rows as before without it); `examples` turns the scores
    few-shot, equal to the library's, and a label that is not a candidate is refused in a sentence."""
    from clipdemo.tasks.classify import classify

    url, rt = server
    c = Client(url, verbose=False)
    red, blue = Image.new("RGB", (16, 16), (220, 20, 20)), Image.new("RGB", (16, 16), (20, 20, 220))
    labels = ["red thing", "blue thing", "tree"]
    plain = c.predict(_data_url(red), labels, "a photo of a {}", 3, "clip", None, None, api_name="/classify")
    assert all("fits" not in row for row in plain)
    marked = c.predict(_data_url(red), labels, "a photo of a {}", 3, "clip", 0.99, None, api_name="/classify")
    assert [row["fits"] for row in marked] == [False, False, False]
    shots = {"red thing": [_data_url(red)] * 2, "blue thing": [_data_url(blue)]}
    few = c.predict(_data_url(red), labels, "a photo of a {}", 3, "clip", None, shots, api_name="/classify")
    reference = classify(rt.service(), red, labels, top_k=3, examples={"red thing": [red, red], "blue thing": [blue]})
    assert [r["label"] for r in few] == [r["label"] for r in reference]
    assert [r["score"] for r in few] == pytest.approx([r["score"] for r in reference], abs=1e-5)
    assert few[0]["label"] == "red thing" and few[0]["score"] > max(r["score"] for r in plain if r["label"] == "red thing")
    with pytest.raises(Exception, match="Few-shot examples were given for lion, which is not one of the labels"):
        c.predict(_data_url(red), labels, "a photo of a {}", 3, "clip", None, {"lion": [_data_url(red)]},
                  api_name="/classify")


def test_architecture_summary_is_plain_json(server):
    url, _ = server
    out = Client(url, verbose=False).predict(1, api_name="/architecture_summary")
    assert out["config"]["vision"]["width"] == 64  # the tiny model the server runs
    assert out["towers"]["visual"]["parameters"] > 0 and "Total params" in out["towers"]["text"]["table"]


def test_architecture_summary_of_any_family_member_loads_no_weights(server):
    """`model="ViT-L/14"`: the architecture built on the meta device, with its exact counts; the Space's own model
    (the tiny one here) stays what the default answers."""
    from clipdemo.core.family import FAMILY, profile

    url, _ = server
    client = Client(url, verbose=False)
    large = client.predict(1, "ViT-L/14", api_name="/architecture_summary")
    p = profile(FAMILY["ViT-L/14"])
    assert large["config"]["weights"].startswith("none: ViT-L/14") and large["config"]["device"] == "meta"
    assert large["config"]["vision"]["tokens"] == 257 and large["config"]["parameters"]["total"] == p.params + 1
    assert (large["towers"]["visual"]["parameters"], large["towers"]["visual"]["flops"]) == (p.image_params, p.image_flops)
    assert large["towers"]["text"]["flops"] == p.text_flops and large["towers"]["visual"]["attention_flops"] > 0
    own = client.predict(1, "", api_name="/architecture_summary")
    assert own["config"]["vision"]["width"] == 64 and own["towers"]["visual"]["flops"] < p.image_flops / 10_000


@pytest.mark.parametrize("image, labels, message", [
    ("/etc/passwd", ["cat", "dog"], "Only images uploaded to this Space"),
    ("data:image/png;base64," + "A" * (MAX_BYTES * 4 // 3 + 8), ["cat", "dog"], "the limit is 20 MB"),
    ("data:image/png;base64,not-base64!", ["cat", "dog"], "not valid base64"),
    ("PIXEL", [f"thing {i} " + "x " * 40 for i in range(500)], "about 24,890 tokens to encode; the limit is 20,000"),
    ("PIXEL", ["cat"], "at least 2 different labels"),
    ("PIXEL", [["cat"], "dog"], "Label 1 is not text"),
    ("PIXEL", ["cat", "dog"], None),  # the control: the same call with good inputs answers
])
def test_bad_api_inputs_are_sentences(server, image, labels, message):
    url, _ = server
    image = _data_url(Image.new("RGB", (8, 8), "red")) if image == "PIXEL" else image
    c = Client(url, verbose=False)
    if message is None:
        assert len(c.predict(image, labels, api_name="/classify")) == 2
        return
    with pytest.raises(Exception, match=message):
        c.predict(image, labels, api_name="/classify")


# -- MCP ------------------------------------------------------------------------------------------------------
def _mcp(url: str, calls):
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def run():
        async with streamable_http_client(url + "/gradio_api/mcp/") as (read, write, _):
            async with ClientSession(read, write) as session:
                await session.initialize()
                return await calls(session)

    return asyncio.run(run())


def test_mcp_lists_exactly_the_typed_tools_and_classifies_a_base64_image(server, picture):
    url, _ = server
    image, _ = picture

    async def calls(session):
        tools = (await session.list_tools()).tools
        result = await session.call_tool("classify", {"image": _data_url(image), "candidate_labels": ["cat", "dog", "car"],
                                                      "top_k": 2})
        return tools, result

    tools, result = _mcp(url, calls)
    assert {t.name for t in tools} == TOOLS  # no status polling, attention figures, heatmaps or private events
    described = {t.name: t.description for t in tools}
    assert described["classify"].startswith("Zero-shot classify one image against your own labels")
    schema = next(t for t in tools if t.name == "classify").inputSchema
    assert set(schema["properties"]) == {"image", "candidate_labels", "hypothesis_template", "top_k", "text_encoder",
                                         "threshold", "examples", "temperature"}
    encoder = schema["properties"]["text_encoder"]
    assert encoder["enum"] == ["clip", "multilingual"] and encoder["default"] == "clip"
    assert encoder["description"].startswith("The text tower that reads the labels")
    assert schema["properties"]["top_k"] == {"type": "integer", "default": 5,
                                             "description": "How many labels to return, best first (1 to 20)."}
    assert not result.isError
    reference = Client(url, verbose=False).predict(_data_url(image), ["cat", "dog", "car"], "a photo of a {}", 2,
                                                   api_name="/classify")
    assert [c.type for c in result.content] == ["text"] and json.loads(result.content[0].text) == reference
    assert result.structuredContent == {"result": reference}


def test_every_mcp_tool_answers_json_with_structured_content_that_fits_its_schema(server):
    """Gradio 6.31's MCP server answered with a Python repr; ours answers with JSON text, and the same data as
    `structuredContent`, valid against the tool's output schema; gradio_client callers get the same values."""
    import jsonschema

    url, _ = server
    pixel = _data_url(Image.new("RGB", (8, 8), "red"))
    args = {"classify": {"image": pixel, "candidate_labels": ["cat", "dog"]},
            "classify_cifar": {"index": 15, "top_k": 3},
            "classify_batch": {"images": [pixel, pixel], "candidate_labels": ["cat", "dog"], "top_k": 1},
            "search": {"query": "a lion", "top_k": 4, "negative": "rain"},
            "architecture_summary": {"depth": 1}}

    async def calls(session):
        tools = {t.name: t for t in (await session.list_tools()).tools}
        return tools, {name: await session.call_tool(name, a) for name, a in args.items()}

    tools, results = _mcp(url, calls)
    assert set(results) == TOOLS
    for name, result in results.items():
        assert not result.isError, (name, result.content)
        data = json.loads(result.content[0].text)
        assert result.structuredContent == (data if isinstance(data, dict) else {"result": data})
        jsonschema.validate(result.structuredContent, tools[name].outputSchema)
    client = Client(url, verbose=False)
    assert json.loads(results["classify_cifar"].content[0].text) == client.predict(15, None, "a photo of a {}", 3,
                                                                                    api_name="/classify_cifar")
    assert json.loads(results["classify_batch"].content[0].text) == client.predict(
        [pixel, pixel], ["cat", "dog"], "a photo of a {}", 1, api_name="/classify_batch")
    assert json.loads(results["search"].content[0].text) == client.predict("a lion", 4, "rain", "", False,
                                                                            api_name="/search")


def test_mcp_over_sse_and_the_schema_where_hugging_faces_clients_look(server):
    """#36: the SSE transport at /gradio_api/mcp/sse (Hugging Face's docs, smolagents) answers as streamable HTTP
    does, and /gradio_api/mcp/schema lists the tools in Gradio's format (the Hub reads it without a session)."""
    import httpx
    from mcp import ClientSession
    from mcp.client.sse import sse_client

    url, _ = server

    async def run():
        async with sse_client(url + "/gradio_api/mcp/sse") as (read, write):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = [t.name for t in (await session.list_tools()).tools]
                return tools, await session.call_tool("classify_cifar", {"index": 15, "top_k": 3})

    tools, over_sse = asyncio.run(run())
    streamed = _mcp(url, lambda session: session.call_tool("classify_cifar", {"index": 15, "top_k": 3}))
    assert set(tools) == TOOLS and not over_sse.isError
    assert json.loads(over_sse.content[0].text) == json.loads(streamed.content[0].text)
    listed = httpx.get(url + "/gradio_api/mcp/schema", timeout=30).json()
    assert {t["name"] for t in listed} == TOOLS
    for tool in listed:
        assert set(tool) == {"name", "description", "inputSchema", "meta"} and tool["inputSchema"]["type"] == "object"
        assert tool["meta"] == {"file_data_present": False, "mcp_type": "tool", "endpoint_name": tool["name"]}


@pytest.mark.parametrize("target", ["loopback", "private", "link-local", "metadata", "file"])
def test_mcp_never_fetches_a_web_address_or_reads_a_path(server, target, monkeypatch):
    url, _ = server
    port = int(url.rsplit(":", 1)[1])
    seen = []  # every address any socket of this process (client, server, a fetch) connects to
    for name in ("connect", "connect_ex"):
        real = getattr(socket.socket, name)

        def watch(sock, address, _real=real):
            seen.append(address)
            return _real(sock, address)

        monkeypatch.setattr(socket.socket, name, watch)
    with loopback_server({"/cat.png": b"not fetched"}) as (base, hits):
        image = {"loopback": f"{base}/cat.png", "private": "http://10.1.2.3/cat.png",
                 "link-local": "http://169.254.10.10/cat.png", "metadata": "http://169.254.169.254/latest/meta-data/",
                 "file": "file:///etc/passwd"}[target]
        result = _mcp(url, lambda session: session.call_tool("classify", {"image": image,
                                                                          "candidate_labels": ["cat", "dog"]}))
        assert hits == []  # nothing arrived at the loopback host
    assert result.isError and result.content[0].text == say("not_fetched")
    assert seen and all(isinstance(a, tuple) and a[1] == port for a in seen), seen  # only the MCP client's own


def test_the_readme_curl_recipe(server):
    """POST /gradio_api/call/classify, then GET its stream (a raw HTTP call sends every parameter, the text
    encoder too; gradio_client and MCP callers may leave out the optional ones)."""
    import json

    import httpx

    url, _ = server
    body = {"data": [_data_url(Image.new("RGB", (8, 8), "red")), ["cat", "dog"], "a photo of a {}", 2, "clip", None,
                     None, 1]}
    event_id = httpx.post(f"{url}/gradio_api/call/classify", json=body, timeout=60).json()["event_id"]
    stream = httpx.get(f"{url}/gradio_api/call/classify/{event_id}", timeout=60).text
    lines = stream.splitlines()
    assert "event: complete" in lines
    data = json.loads(lines[lines.index("event: complete") + 1].removeprefix("data: "))
    assert [{"label", "score", "cosine"} == set(e) for e in data[0]] == [True, True]


def test_the_tools_descriptions_name_the_limits_the_code_enforces():
    """Agents read these docstrings as the tools' parameter descriptions: every range said is the one checked."""
    from clipdemo.core import checks
    from clipdemo.core.labels import MAX_LABELS, MIN_LABELS
    from clipdemo.tasks.classify import MAX_BATCH
    from clipdemo.ui.api import ApiEndpoints

    labels, k = f"({MIN_LABELS} to {MAX_LABELS})", f"(1 to {checks.MAX_TOP_K})"
    said = {name: getattr(ApiEndpoints, name).__doc__ for name in
            ("classify", "classify_cifar", "classify_batch", "architecture_summary")}
    assert labels in said["classify"] and k in said["classify"]
    assert f"0 to {checks.TEST_SIZE - 1}" in said["classify_cifar"] and k in said["classify_cifar"]
    assert f"up to {MAX_BATCH} images" in said["classify_batch"] and f"(1 to {MAX_BATCH})" in said["classify_batch"]
    assert labels in said["classify_batch"] and k in said["classify_batch"]
    assert f"({checks.DEPTHS[0]} to {checks.DEPTHS[1]})" in said["architecture_summary"]


def test_search_finds_cifar_images_as_the_task_does_and_refuses_bad_queries_in_a_sentence(server, cifar_root):
    from clipdemo.core.search import SearchQuery
    from clipdemo.tasks.search import search_cifar

    url, rt = server
    c = Client(url, verbose=False)
    got = c.predict("a red car", 6, "rain", "", False, api_name="/search")
    expected = search_cifar(rt.service(), rt.dataset(), SearchQuery.of("a red car", "rain"), 6).rows()
    assert [r["index"] for r in got] == [r["index"] for r in expected] and len(got) == 6
    assert [set(r) for r in got] == [{"index", "true_label", "cosine"}] * 6
    assert [r["cosine"] for r in got] == pytest.approx([r["cosine"] for r in expected], abs=1e-6)
    like = c.predict("", 3, "", _data_url(rt.dataset().image(4321).resize((64, 64))), False, api_name="/search")
    assert len(like) == 3  # by image alone
    for args, message in [(("", 5, "", "", False), "Type what to look for"),
                          (("", 5, "rain", "", False), "A negative query only takes away"),
                          (("a lion", 0, "", "", False), "between 1 and 100, not 0"),
                          (("a lion", 5, "", "/etc/passwd", False), "Only images uploaded to this Space"),
                          (("x" * 301, 5, "", "", False), "301 characters long")]:
        with pytest.raises(Exception, match=message):
            c.predict(*args, api_name="/search")
