"""clipdemo: OpenAI CLIP zero-shot image classification, as a library, a CLI and a Gradio Space.

As a library, three lines (`load` reads the same settings as the app: CLIPDEMO_WEIGHTS and the rest):

    from clipdemo import load, classify
    clip = load()                                                  # ViT-B/32, fetched once and verified
    print(classify(clip, "lion.png", ["lion", "tiger", "house cat"]))  # [{label, score, cosine}, ...]

The package is layered, each layer importing only those below it (`lint-imports` checks it): `core` (the
CLIP math, label sets, checks, words), then `weights` and `io` (where weights and images come from), then
`serving` (the one shared model, its caches and its gate), then `tasks` (classify, evaluate, self-check),
then the shells, `ui` (the Gradio Space, the only importer of gradio) and `cli`. Importing the package loads
nothing and touches no network or disk.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["load", "classify"]


def load(weights: str | None = None, *, device: str | None = None):
    """The model, ready to classify: `weights` is a name (ViT-B/32), "random", or a checkpoint path (default:
    CLIPDEMO_WEIGHTS, else ViT-B/32); `device` "auto", "cpu" or "cuda" (default: CLIPDEMO_DEVICE, else auto).
    Returns the service (`clipdemo.serving.service.ZeroShot`); a `Refusal` says what went wrong."""
    import dataclasses

    from .serving.runtime import open_service
    from .serving.settings import from_env

    settings = from_env()
    return open_service(dataclasses.replace(settings, weights=weights or settings.weights,
                                            device=device or settings.device))


def classify(model, image, labels, template: str = "a photo of a {}", top_k: int = 5) -> list[dict]:
    """`image` (a path or a PIL image) against `labels` (a list, or "cat, dog" text) with one prompt template:
    `[{label, score, cosine}]`, best first (the Hugging Face zero-shot-image-classification schema, plus the
    raw cosine). `model` is what `load` returned."""
    from .tasks.classify import classify as run

    return run(model, image, labels, template, top_k)
