"""The classic CLIP notebook's prediction code, as written there: the reference clipdemo is measured against.

Holds `notebook_top5`, which re-tokenises and re-encodes every prompt for each image and normalises in
place, exactly like the notebook. Used by the parity tests and by `bench/`; the app never calls it.
"""

from __future__ import annotations

import torch

from ._clip import import_clip

__all__ = ["notebook_top5"]


def notebook_top5(model, preprocess, image, classes, device="cpu") -> tuple[list[tuple[str, float]], torch.Tensor]:
    """The notebook's top-5 `[(label, probability)]` and its full `[n_classes]` probability row."""
    clip = import_clip()
    image_input = preprocess(image).unsqueeze(0).to(device)
    text_inputs = torch.cat([clip.tokenize(f"a photo of a {c}") for c in classes]).to(device)
    with torch.no_grad():
        image_features = model.encode_image(image_input)
        text_features = model.encode_text(text_inputs)
    image_features /= image_features.norm(dim=-1, keepdim=True)
    text_features /= text_features.norm(dim=-1, keepdim=True)
    similarity = (100.0 * image_features @ text_features.T).softmax(dim=-1)
    values, indices = similarity[0].topk(5)
    return [(classes[i], float(v)) for v, i in zip(values.tolist(), indices.tolist())], similarity[0]
