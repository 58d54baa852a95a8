"""Classification as tasks: one image, a CIFAR-100 test image, or a batch, against a label set.

Inputs are checked here, once for every shell (the API, the MCP tools, the CLI, the library). Every member of a zip
is checked before any is read, and members are read in memory, never written anywhere; a batch's images are encoded
in bulk chunks, so other visitors' predictions go in between. No gradio.
"""

from __future__ import annotations

import dataclasses
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from ..core import checks
from ..core.labels import CLIP, DEFAULT_LABELS, LABEL_PRESETS, LabelSet, normalise, parse_label_text
from ..core.calibration import tip_adapter, tune_tip
from ..core.words import ProgressFn, Refusal, Text
from ..core.zeroshot import LOGIT_SCALE, Prediction
from ..io.cifar import Cifar100
from ..io.images import ImageError, open_image
from ..io.zips import checked_members, member_image, open_zip
from ..serving.service import Priority, ZeroShot

__all__ = ["FewShot", "Answering", "PLAIN", "answer", "predictions", "predict_with", "predict_image",
           "label_text", "read_examples", "check_examples", "MAX_EXAMPLES", "batch_count",
           "candidates", "classify", "classify_index", "read_batch", "classify_batch", "MAX_BATCH", "DEFAULT_TEMPLATE"]

DEFAULT_TEMPLATE = "a photo of a {}"  # the Hugging Face task's hypothesis template, and the notebook's prompt
MAX_BATCH = 64  # images in one batch
MAX_EXAMPLES = 16  # few-shot example images per label


def candidates(candidate_labels: list[str] | str | None, hypothesis_template: str = DEFAULT_TEMPLATE,
               text_encoder: str = CLIP) -> LabelSet:
    """The label set of the Hugging Face task's inputs: a list of labels, or the editors' text ("cat, dog", or
    one per line), or None for CIFAR-100's 100 classes; one template; and the text tower (TEXT_ENCODERS)."""
    if candidate_labels is None:
        labels = list(LABEL_PRESETS[DEFAULT_LABELS].items)
    elif isinstance(candidate_labels, str):
        labels = parse_label_text(candidate_labels)
    else:
        labels = list(candidate_labels)
    return LabelSet.of(labels, [hypothesis_template], encoder=text_encoder or CLIP)


def classify(zs: ZeroShot, image: Image.Image | str | Path, candidate_labels: list[str] | str | None,
             hypothesis_template: str = DEFAULT_TEMPLATE, top_k: int = 5, text_encoder: str = CLIP,
             threshold: float | None = None, examples: dict[str, list[Image.Image]] | None = None,
             temperature: float = 1.0) -> list[dict]:
    """One image (or an image file's path) against the candidate labels: `[{label, score, cosine}]`, best first,
    `top_k` long. `score` is `softmax(100 * cos)` over the candidate labels (all of them sum to 1), `cosine` the
    image-prompt cosine similarity in [-1, 1]. `text_encoder`: "clip" (CLIP's own, English) or "multilingual".
    With a `threshold` on the cosine, each row also says whether its label `fits` ("none of these" when none does).
    With `examples` (label -> 1..16 images), the scores are few-shot (Tip-Adapter, training-free); with a
    `temperature`, the logits are divided by it."""
    label_set, k = candidates(candidate_labels, hypothesis_template, text_encoder), checks.top_k(top_k)
    answering = Answering.of(zs, label_set, examples, threshold=threshold, temperature=temperature)
    if not isinstance(image, Image.Image):
        image = open_image(image, fit=zs.loaded.config.image_resolution)
    (pred,) = classify_batch(zs, [image], label_set, k, answering=answering)
    return pred.rows(answering.threshold)


def classify_index(zs: ZeroShot, data: Cifar100, index: int, candidate_labels: list[str] | str | None = None,
                   hypothesis_template: str = DEFAULT_TEMPLATE, top_k: int = 5, text_encoder: str = CLIP) -> dict:
    """A CIFAR-100 test image (by index) against the candidate labels (default: the 100 classes):
    `{"index", "true_label", "predictions": [{label, score, cosine}]}`. The image's feature comes from the feature
    store (encoded once, then shared with the page), as the page's own index predictions take it."""
    i = checks.cifar_index(index, len(data))
    label_set, k = candidates(candidate_labels, hypothesis_template, text_encoder), checks.top_k(top_k)
    pred = predict_with(zs, zs.cifar_feature(i, data.image(i), len(data)), label_set, k)
    return {"index": i, "true_label": data.true_label(i), "predictions": pred.rows()}


def _too_many(n: int, limit: int) -> Refusal:
    return Refusal("batch_many", n, limit)


def _zip_members(path: Path, name: str, fit: int, limit: int) -> list[tuple[str, Image.Image]]:
    with open_zip(path, name) as zf:
        return [(info.filename, member_image(zf, info, fit)) for info in checked_members(zf, limit)]


def read_batch(paths: list[str | Path], names: list[str] | None = None, *, fit: int,
               limit: int = MAX_BATCH) -> list[tuple[str, Image.Image]]:
    """`(name, RGB image)` for every image among `paths` (image files, or zips of images), each reduced to what a
    model of input resolution `fit` keeps of it; a Refusal, naming the file, for anything else or for more than
    `limit` images. `names` are what to call the files (default: theirs)."""
    items: list[tuple[str, Image.Image]] = []
    for i, raw in enumerate(paths):
        path = Path(raw)
        name = names[i] if names else path.name
        if zipfile.is_zipfile(path):
            items += _zip_members(path, name, fit, limit)
        else:
            try:
                items.append((name, open_image(path, fit=fit)))
            except ImageError as exc:
                raise Refusal("batch_not_image", name, exc.text) from None
        if len(items) > limit:
            raise _too_many(len(items), limit)
    if not items:
        raise Refusal("batch_empty")
    return items


def batch_count(images: list | None) -> int:
    """How many images a batch holds, 1..MAX_BATCH; checked before any is decoded (a Refusal otherwise)."""
    if not images or len(images) > MAX_BATCH:
        raise Refusal("batch_count", MAX_BATCH, len(images or []))
    return len(images)


def label_text(folder: str) -> str:
    """A class folder's name as a prompt's label: `golden_retriever` -> "golden retriever"."""
    return normalise(folder.replace("_", " "))


def read_examples(folder: str | Path, label_set: LabelSet, fit: int) -> dict[str, list[Image.Image]]:
    """Few-shot examples from a folder holding one folder of images per label, named as the label (`_` for a
    space): label -> images, checked by count (`check_examples`) before any is decoded; a Refusal otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise Refusal("examples_folder", str(folder)[:80])
    by_label = {label_text(sub.name): sorted(p for p in sub.iterdir() if p.is_file())
                for sub in sorted(folder.iterdir()) if sub.is_dir()}
    check_examples(label_set, {label: len(paths) for label, paths in by_label.items()})
    return {label: [image for _, image in read_batch(paths, fit=fit, limit=MAX_EXAMPLES)]
            for label, paths in by_label.items()}


def check_examples(label_set: LabelSet, counts: dict[str, int]) -> None:
    """Few-shot examples' shape, before any image is decoded: each for one of the set's labels, 1..MAX_EXAMPLES a
    label, at most MAX_BATCH in all; a Refusal naming what is not."""
    for label, n in counts.items():
        if label not in label_set.labels:
            raise Refusal("examples_label", str(label)[:40])
        if not 1 <= n <= MAX_EXAMPLES:
            raise Refusal("examples_count", MAX_EXAMPLES, str(label)[:40], n)
    if (total := sum(counts.values())) > MAX_BATCH:
        raise _too_many(total, MAX_BATCH)


@dataclass(frozen=True, eq=False)
class FewShot:
    """Example images' features for some labels of a set (issue #26): `[M, D]` normalised features and `[M]`
    indices into the set's labels. Empty: zero-shot."""

    keys: torch.Tensor
    targets: torch.Tensor
    alpha: float = 0.0  # Tip-Adapter's weights, chosen on the examples alone (`core.calibration.tune_tip`)
    beta: float = 0.0


@dataclass(frozen=True, eq=False)
class Answering:
    """How a visitor's session answers, beyond its labels (issue #26): a "none of these" `threshold` on the best
    cosine (None: off), few-shot `examples`: label -> `[n, D]` example features (at most MAX_EXAMPLES each), used
    for whichever of them the active label set holds, and a calibration `temperature`. Immutable: each change makes
    a new one."""

    threshold: float | None = None
    examples: dict[str, torch.Tensor] = field(default_factory=dict)
    temperature: float = 1.0  # scores as softmax(100 cos / T): a temperature fitted on the visitor's labelled images

    @classmethod
    def of(cls, zs: ZeroShot, label_set: LabelSet, examples: dict[str, list[Image.Image]] | None = None, *,
           threshold: object = None, temperature: object = 1.0) -> Answering:
        """An answering from a call's values, for the API and the CLI alike: `examples` (label -> 1..MAX_EXAMPLES
        images, every label one of the set's, at most MAX_BATCH in all; a Refusal otherwise) encoded as the page
        encodes a visitor's, the threshold and the temperature checked."""
        examples = examples or {}
        check_examples(label_set, {label: len(images) for label, images in examples.items()})
        answering = cls(checks.threshold(threshold), {}, checks.temperature(temperature))
        priority = Priority.BULK if sum(map(len, examples.values())) > zs.bulk_images else Priority.INTERACTIVE
        for label, images in examples.items():
            answering = answering.with_examples(label, zs.image_features(images, priority))  # [n, D]
        return answering

    def with_threshold(self, value: object) -> Answering:
        return dataclasses.replace(self, threshold=checks.threshold(value))

    def with_temperature(self, value: float) -> Answering:
        return dataclasses.replace(self, temperature=float(value))

    def with_examples(self, label: str, feats: torch.Tensor) -> Answering:
        """`feats` `[n, D]` added to `label`'s examples (the latest MAX_EXAMPLES kept)."""
        if label in self.examples:  # an example given twice is one example (it would vote for its copy)
            old = self.examples[label]
            feats = feats[(feats @ old.T).max(dim=-1).values < 1 - 1e-5] if len(old) else feats
            feats = torch.cat([old, feats])
        return dataclasses.replace(self, examples={**self.examples, label: feats[-MAX_EXAMPLES:]})

    def without_examples(self) -> Answering:
        return dataclasses.replace(self, examples={})

    def few_shot(self, zs: ZeroShot, label_set: LabelSet) -> FewShot | None:
        """The examples of the set's labels as a FewShot (its weights chosen on them), or None when it has none."""
        held = [(label_set.labels.index(lab), f) for lab, f in self.examples.items() if lab in label_set.labels]
        if not held:
            return None
        keys = torch.cat([f for _, f in held])
        targets = torch.tensor([i for i, f in held for _ in range(len(f))], dtype=torch.int64)
        return FewShot(keys, targets, *tune_tip(zs.text_features(label_set), keys, targets))

    def describe(self) -> list[tuple[str, int]]:
        """(label, how many examples) for each label with examples."""
        return [(lab, len(f)) for lab, f in self.examples.items()]


PLAIN = Answering()  # the notebook's answer: zero-shot softmax(100 cos), no threshold, no examples


def answer(feats: torch.Tensor, text: torch.Tensor, few_shot: FewShot | None = None,
           temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The one place image features become an answer, for every shell (the page, the API and MCP, the CLI, batches,
    bulk, the evaluations): `[B, D]` image and `[L, D]` label features, both normalised -> (`[B, L]` cosines,
    `[B, L]` probabilities). The probabilities are `softmax(100 cos / T)`, or with few-shot examples Tip-Adapter's
    (`core.calibration.tip_adapter`: the text prototypes mixed with the examples, no training); the cosines stay
    the image-prompt ones. A threshold reads the cosines (`Prediction.rows`)."""
    cosines = feats @ text.T  # [B, L]
    if few_shot is None or not len(few_shot.keys):
        logits = LOGIT_SCALE / temperature * cosines  # [B, L]
    else:
        logits = tip_adapter(feats, text, few_shot.keys, few_shot.targets, few_shot.alpha, few_shot.beta, temperature)
    return cosines, logits.softmax(dim=-1)  # [B, L], [B, L]


def predictions(zs: ZeroShot, feats: torch.Tensor, label_set: LabelSet, k: int, answering: Answering = PLAIN,
                true_labels: list[str | None] | None = None) -> list[Prediction]:
    """`[B, D]` image features answered against the label set as the session answers (`answer`): one Prediction
    each, top `k`."""
    text = zs.text_features(label_set)  # [L, D]
    cosines, probs = answer(feats, text, answering.few_shot(zs, label_set), answering.temperature)
    truths = true_labels or [None] * len(feats)
    return [Prediction.of(c, p, label_set.labels, k, zs.loaded.info, t) for c, p, t in zip(cosines, probs, truths)]


def predict_with(zs: ZeroShot, feat: torch.Tensor, label_set: LabelSet, k: int, answering: Answering = PLAIN,
                 true_label: str | None = None) -> Prediction:
    """One image's prediction from its feature `[D]` (`predictions` of one)."""
    return predictions(zs, feat[None], label_set, k, answering, [true_label])[0]


def predict_image(zs: ZeroShot, image: Image.Image, label_set: LabelSet, k: int = 5, answering: Answering = PLAIN,
                  true_label: str | None = None) -> Prediction:
    """One RGB image's prediction, the notebook's recipe: the labels encoded first (cached; a bad label costs no
    image forward pass), then the image."""
    zs.text_features(label_set)
    return predict_with(zs, zs.image_features([image])[0], label_set, k, answering, true_label)


def classify_batch(zs: ZeroShot, images: list[Image.Image], label_set: LabelSet, k: int = 5,
                   progress: ProgressFn | None = None, answering: Answering = PLAIN) -> list[Prediction]:
    """Every image against the label set, in order: its text features once (cached), the images in chunks of
    `zs.bulk_images`, each chunk one bulk model call once there is more than one chunk; answered as `answering`
    says (`predictions`)."""
    k = checks.top_k(k)
    batch_count(images)
    zs.text_features(label_set)  # [L, D], cached: before any image is encoded
    priority = Priority.BULK if len(images) > zs.bulk_images else Priority.INTERACTIVE
    feats = zs.image_features(images, priority, progress, Text("progress_classifying"))  # [B, D]
    return predictions(zs, feats, label_set, k, answering)
