"""The typed, stateless API: endpoints for scripts and agents, apart from the page's own events.

Each endpoint takes everything it needs in the call (no session state) and returns plain JSON; the same functions
are the MCP tools (`clipdemo.ui.mcp`). Web addresses are refused without any request. The API speaks English (a
script has no page language).
"""

from __future__ import annotations

from typing import Literal

import gradio as gr

from ..core import checks
from ..core.architecture import config_card
from ..core.family import FAMILY, member, member_card, member_summary
from ..core.labels import CLIP, TEXT_ENCODERS
from ..io.images import image_from_reference
from ..serving.runtime import Runtime
from ..core.search import DEFAULT_RESULTS, SearchQuery, results
from ..core.words import Refusal
from ..tasks.classify import DEFAULT_TEMPLATE, batch_count, check_examples, candidates, classify, classify_batch, \
    classify_index
from ..tasks.search import search_cifar
from .common import MODEL_WAIT_S, saying

FamilyName = Literal[("", *FAMILY)]  # "" for the loaded model; else an architecture, built with no weights

__all__ = ["ApiEndpoints", "TextEncoder"]

TextEncoder = Literal[TEXT_ENCODERS]  # "clip" | "multilingual": the type the API and the MCP tools show


class ApiEndpoints:
    """The typed endpoints over the shared runtime; `register` adds them to the app being built."""

    def __init__(self, runtime: Runtime):
        self.rt = runtime

    def classify(self, image: str, candidate_labels: list[str], hypothesis_template: str = DEFAULT_TEMPLATE,
                 top_k: int = 5, text_encoder: TextEncoder = CLIP, threshold: float | None = None,
                 examples: dict[str, list[str]] | None = None, temperature: float = 1.0) -> list[dict]:
        """Zero-shot classify one image against your own labels with OpenAI CLIP ViT-B/32.

        Args:
            image: The image, as a base64 data URL ("data:image/png;base64,...") or a file uploaded to this
                Space. Web addresses are not fetched.
            candidate_labels: The labels to choose from (2 to 500), e.g. ["cat", "dog", "car"].
            hypothesis_template: The prompt each label is put into; it must hold "{}" exactly once.
            top_k: How many labels to return, best first (1 to 20).
            text_encoder: The text tower that reads the labels: "clip" (CLIP's own, trained on English) or
                "multilingual" (sentence-transformers/clip-ViT-B-32-multilingual-v1: labels in 50+ languages,
                Turkish among them, aligned with the same ViT-B/32 image features).
            threshold: Optional: a cosine (-1 to 1, e.g. 0.2) below which a label does not fit. When given, each
                prediction carries "fits" (true or false); none fitting means "none of these labels".
            examples: Optional few-shot examples: {label: [images]} with 1 to 16 images (data URLs or uploaded files)
                for any of the labels. The scores then mix the text prompts with the examples (Tip-Adapter, no
                training); the cosines stay the image-prompt ones.
            temperature: Optional: divides the logits (0.01 to 100; 1 leaves softmax(100 x cosine) as it is), e.g.
                a temperature fitted on your own labelled images.

        Returns:
            A list of {"label", "score", "cosine"}, best first. "score" is the probability over the candidate
            labels (softmax of 100 x cosine; all labels together sum to 1); "cosine" is the raw cosine
            similarity of the image and the prompt (-1 to 1), comparable across label sets.
        """
        with saying("en"):
            # Every cheap check first, in the order the arguments come; only then is any image decoded.
            label_set = candidates(candidate_labels, hypothesis_template, text_encoder)
            checks.top_k(top_k)
            checks.threshold(threshold)
            checks.temperature(temperature)
            if examples is not None and not (isinstance(examples, dict)
                                             and all(isinstance(v, list) for v in examples.values())):
                raise Refusal("examples_shape")
            check_examples(label_set, {label: len(refs) for label, refs in (examples or {}).items()})
            root, fit = gr.utils.get_upload_folder(), self.rt.config().image_resolution
            picture = image_from_reference(image, root, fit)
            shots = {label: [image_from_reference(ref, root, fit) for ref in refs]
                     for label, refs in (examples or {}).items()}
            zs = self.rt.service(timeout=MODEL_WAIT_S)
            return classify(zs, picture, candidate_labels, hypothesis_template, top_k, text_encoder, threshold,
                            shots, temperature)

    def classify_cifar(self, index: int, candidate_labels: list[str] | None = None,
                       hypothesis_template: str = DEFAULT_TEMPLATE, top_k: int = 5,
                       text_encoder: TextEncoder = CLIP) -> dict:
        """Zero-shot classify a CIFAR-100 test image (by index) with OpenAI CLIP ViT-B/32.

        Args:
            index: The test image, 0 to 9999 (index 15 is the classic notebook's lion).
            candidate_labels: The labels to choose from; leave empty for CIFAR-100's 100 classes.
            hypothesis_template: The prompt each label is put into; it must hold "{}" exactly once.
            top_k: How many labels to return, best first (1 to 20).
            text_encoder: The text tower that reads the labels: "clip" (CLIP's own, trained on English) or
                "multilingual" (sentence-transformers/clip-ViT-B-32-multilingual-v1: labels in 50+ languages,
                Turkish among them, aligned with the same ViT-B/32 image features).

        Returns:
            {"index", "true_label", "predictions"}: the image's true CIFAR-100 class, and the predictions as
            `classify` returns them.
        """
        with saying("en"):
            checks.top_k(top_k)
            candidates(candidate_labels or None, hypothesis_template, text_encoder)  # before the dataset is read
            data = self.rt.dataset()
            zs = self.rt.service(timeout=MODEL_WAIT_S)
            return classify_index(zs, data, index, candidate_labels or None, hypothesis_template, top_k, text_encoder)

    def classify_batch(self, images: list[str], candidate_labels: list[str],
                       hypothesis_template: str = DEFAULT_TEMPLATE, top_k: int = 5,
                       text_encoder: TextEncoder = CLIP, threshold: float | None = None) -> list[dict]:
        """Zero-shot classify up to 64 images against your own labels with OpenAI CLIP ViT-B/32, in one call.

        Args:
            images: The images, each a base64 data URL ("data:image/png;base64,...") or a file uploaded to this
                Space (1 to 64). Web addresses are not fetched.
            candidate_labels: The labels to choose from (2 to 500), e.g. ["cat", "dog", "car"].
            hypothesis_template: The prompt each label is put into; it must hold "{}" exactly once.
            top_k: How many labels to return per image, best first (1 to 20).
            text_encoder: The text tower that reads the labels: "clip" (CLIP's own, trained on English) or
                "multilingual" (sentence-transformers/clip-ViT-B-32-multilingual-v1: labels in 50+ languages,
                Turkish among them, aligned with the same ViT-B/32 image features).
            threshold: Optional: a cosine (-1 to 1, e.g. 0.2) below which a label does not fit. When given, each
                prediction carries "fits" (true or false); none fitting means "none of these labels".

        Returns:
            One {"image", "predictions"} per image, in the order given: "image" is its position (0-based) and
            "predictions" a list of {"label", "score", "cosine"} as `classify` returns them.
        """
        with saying("en"):
            batch_count(images)  # before any image is decoded
            label_set = candidates(list(candidate_labels or []), hypothesis_template, text_encoder)
            k, threshold = checks.top_k(top_k), checks.threshold(threshold)
            root, fit = gr.utils.get_upload_folder(), self.rt.config().image_resolution
            # One at a time, each reduced to the model's R x R as it is decoded: 64 of them hold ~10 MB.
            pictures = [image_from_reference(ref, root, fit) for ref in images]
            zs = self.rt.service(timeout=MODEL_WAIT_S)
            return [{"image": i, "predictions": pred.rows(threshold)}
                    for i, pred in enumerate(classify_batch(zs, pictures, label_set, k))]

    def architecture_summary(self, depth: int = 2, model: FamilyName = "") -> dict:
        """The architecture of a CLIP model: its configuration, and torchinfo summaries of both towers with the FLOPs
        torch's FlopCounterMode counts (attention included) beside torchinfo's mult-adds.

        Args:
            depth: How deep the layer tables go (1 to 4).
            model: Empty for the model this Space runs, with its weights; or any OpenAI CLIP architecture (RN50,
                RN101, RN50x4, RN50x16, RN50x64, ViT-B/32, ViT-B/16, ViT-L/14, ViT-L/14@336px), built from its
                configuration on PyTorch's meta device: no weights are loaded or downloaded.

        Returns:
            {"config": the configuration (derived from the weights, or the architecture's), "towers": {"visual" and
            "text": their total "parameters", torchinfo's "mult_adds", "flops" (2 x multiply-adds, every matmul and
            convolution), "attention_flops" (the part inside attention, which torchinfo's total leaves out) and
            torchinfo's "table" as text}}.
        """
        with saying("en"):
            depth = checks.summary_depth(depth)
            if model:
                chosen = member(model)
                card, towers = member_card(chosen), {t: member_summary(chosen, t, depth) for t in checks.TOWERS}
            else:
                zs = self.rt.architecture_service()
                card, towers = config_card(zs.loaded), {t: zs.inside.tower_summary(t, depth) for t in checks.TOWERS}
            return {"config": card,
                    "towers": {t: {"parameters": s.total_params, "mult_adds": s.total_mult_adds, "flops": s.total_flops,
                                   "attention_flops": s.attention_flops, "table": s.text} for t, s in towers.items()}}

    def search(self, query: str = "", top_k: int = DEFAULT_RESULTS, negative: str = "", image: str = "",
               raw: bool = False) -> list[dict]:
        """Find CIFAR-100 test images by text, by image, or both, with OpenAI CLIP ViT-B/32.

        Args:
            query: What to look for, e.g. "a red car at night" (it is read as "a photo of a red car at night"
                unless raw is true). May be empty when an image is given.
            top_k: How many images to return, best first (1 to 100).
            negative: What the images should not look like, e.g. "rain" (subtracted from the query).
            image: An image to look like, as a base64 data URL or a file uploaded to this Space (weighted
                equally with the query when both are given). Web addresses are not fetched.
            raw: True to send the query to CLIP as typed, without "a photo of ...".

        Returns:
            A list of {"index", "true_label", "cosine"}, best first: the CIFAR-100 test index (0 to 9999), its
            true class, and the cosine similarity of the image and the query. While the app is still encoding
            the test images after a start, only those encoded so far are searched.
        """
        with saying("en"):
            k = results(top_k)
            q = SearchQuery.of(query, negative, raw=raw, has_image=bool(image))  # checked before any decoding
            picture = (image_from_reference(image, gr.utils.get_upload_folder(), self.rt.config().image_resolution)
                       if image else None)
            zs = self.rt.service(timeout=MODEL_WAIT_S)
            feature = zs.image_features([picture])[0] if picture is not None else None
            self.rt.build_index_in_request()  # on ZeroGPU the first search builds the index, in its request
            return search_cifar(zs, self.rt.dataset(), q, k, feature).rows()

    def functions(self) -> list:
        """The endpoints: the API's, and the MCP server's tools (`clipdemo.ui.mcp`)."""
        return [self.classify, self.classify_cifar, self.classify_batch, self.search, self.architecture_summary]

    def register(self) -> None:
        """Add the endpoints to the `gr.Blocks` being built."""
        for fn in self.functions():
            batch = fn == self.classify_batch  # many images at once: one batch decodes at a time (memory)
            gr.api(fn, api_name=fn.__name__, concurrency_id="batch" if batch else None,
                   concurrency_limit=1 if batch else "default")
