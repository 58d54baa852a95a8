"""Zero-shot classification as the Hugging Face task defines it: one image, the caller's own labels.

Holds `classify` (an image against candidate labels and one hypothesis template; the output of the
Hugging Face zero-shot-image-classification task, a list of `{label, score}` best first, with each
entry's raw cosine added) and `classify_index` (the same for a CIFAR-100 test image, with its true
label). Validation, the prompt budget, the text cache and the model calls are the app's own
(`prompts.validate_set`, the service). No gradio.
"""

from __future__ import annotations

from PIL import Image

from .batch import classify_batch
from .engine import check_top_k
from .presets import CIFAR100_CLASSES
from .prompts import validate_set
from .service import ZeroShot

__all__ = ["classify", "classify_index", "DEFAULT_TEMPLATE"]

DEFAULT_TEMPLATE = "a photo of a {}"


def _labels(candidate_labels: list[str] | str | None) -> list[str]:
    if candidate_labels is None:
        return list(CIFAR100_CLASSES)
    if isinstance(candidate_labels, str):  # "cat, dog" or one per line, as in the Labels tab
        from .prompts import parse_label_text

        return parse_label_text(candidate_labels)
    return [str(x) for x in candidate_labels]


def classify(zs: ZeroShot, image: Image.Image, candidate_labels: list[str] | str | None,
             hypothesis_template: str = DEFAULT_TEMPLATE, top_k: int = 5) -> list[dict]:
    """`[{label, score, cosine}]`, best first, `top_k` long: `score` is `softmax(100 * cos)` over the
    candidate labels (all of them sum to 1), `cosine` the image-prompt cosine similarity in [-1, 1]."""
    label_set, templates, _ = validate_set(_labels(candidate_labels), [hypothesis_template])
    (item,) = classify_batch(zs, [("image", image)], label_set.labels, templates, top_k)  # one image, one call
    return item.predictions()


def classify_index(zs: ZeroShot, data, index: int, candidate_labels: list[str] | str | None = None,
                   hypothesis_template: str = DEFAULT_TEMPLATE, top_k: int = 5) -> dict:
    """A CIFAR-100 test image (by index) against the candidate labels (default: the 100 classes):
    `{"index", "true_label", "predictions": classify(...)}`. The image's feature comes from the feature store
    (encoded once, then shared with the page), as the page's own index predictions take it."""
    i = data.check_index(index)
    label_set, templates, _ = validate_set(_labels(candidate_labels), [hypothesis_template])
    k = check_top_k(top_k)
    pred = zs.classify(zs.cifar_feature(i, data.image(i), len(data)), label_set.labels, templates, k)
    return {"index": i, "true_label": data.classes[data.target(i)],
            "predictions": [{"label": lab, "score": p, "cosine": pred.cosine(lab)} for lab, p in pred.top]}
