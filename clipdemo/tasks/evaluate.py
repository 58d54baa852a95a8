"""Evaluation on CIFAR-100's test split: one generator that encodes what is missing and scores every setting.

The generator encodes in bulk model calls, so visitors' predictions go in between, and stops at its time limit. The
Evaluate tab and the CLI render what `run` yields; neither encodes nor computes a rate itself. Scores come from
features alone, so they can be checked by hand.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from ..core import checks
from ..core.labels import CLASS_NAME_SPELLINGS, CLIP, LABEL_PRESETS, MULTILINGUAL, TEMPLATE_SETS, LabelSet
from ..core.words import Progress, Refusal, Text
from ..io.cifar import Cifar100
from ..serving.service import Priority, ZeroShot
from .classify import answer

__all__ = ["Evaluation", "Report", "run", "evaluate", "score", "score_probs", "EvalResult", "PUBLISHED", "SUBSETS",
           "TEMPLATE_CHOICES", "Setting", "SETTINGS", "SPELLINGS"]

# Published zero-shot CIFAR-100 figures for ViT-B/32 (quoted, not measured here), by template setting.
PUBLISHED: dict[str, tuple[str, ...]] = {
    "cifar18": ("65.1% top-1: CLIP paper (Radford et al., 2021), Table 11, 18-template ensemble",
                "64.5% top-1 / 88.8% top-5: LAION clip_benchmark"),
    "single": ('about 62% top-1: reproductions with "a photo of a {}" (openai/CLIP issue #153)',),
    "en · CLIP": ('about 62% top-1: reproductions with "a photo of a {}" (openai/CLIP issue #153)',),  # = single
}
SUBSETS = ("first", "per-class", "all")
# The evaluation's "class names" choice: the English spellings (the English settings read them with CLIP's own
# text tower; the Turkish names come with their own settings, "languages").
SPELLINGS: tuple[str, ...] = tuple(k for k in CLASS_NAME_SPELLINGS if LABEL_PRESETS[k].language == "en")


@dataclass(frozen=True)
class Setting:
    """One scored row of an evaluation: a template set, the class names (a preset in CLASS_NAME_SPELLINGS; None:
    the evaluation's spelling), and the text tower that encodes them."""

    key: str  # what the row is called (the tables, the JSON, the CLI)
    templates: str  # a key of TEMPLATE_SETS
    names: str | None = None
    encoder: str = CLIP


SETTINGS: dict[str, Setting] = {s.key: s for s in (
    Setting("single", "single"),
    Setting("cifar18", "cifar18"),
    # The label languages side by side (issue #25): CLIP's own tower on English names, the multilingual tower on
    # the same English names, and on the Turkish names with the Turkish prompt.
    Setting("en · CLIP", "single", "cifar100", CLIP),
    Setting("en · multilingual", "single", "cifar100", MULTILINGUAL),
    Setting("tr · multilingual", "single-tr", "cifar100-tr", MULTILINGUAL),
)}
# What "templates" may be chosen for an evaluation: the settings scored side by side, by key.
TEMPLATE_CHOICES: dict[str, tuple[str, ...]] = {"single": ("single",), "cifar18": ("cifar18",),
                                                "both": ("single", "cifar18"),
                                                "languages": ("en · CLIP", "en · multilingual", "tr · multilingual")}


@dataclass(frozen=True)
class Evaluation:
    """What to evaluate. `subset`: the `first` n test images, a seeded stratified sample of n `per-class`, or
    `all`; `templates`: a key of TEMPLATE_CHOICES; `spelling`: which English preset names CIFAR-100's classes
    (SPELLINGS) where a setting does not name its own."""

    subset: str = "first"
    n: int = 1000
    seed: int = 0
    templates: str = "both"
    spelling: str = "cifar100"

    def indices(self, targets: list[int]) -> list[int]:
        """The test images to evaluate (a Refusal names the valid subsets or the range of n)."""
        if self.subset == "all":
            return list(range(len(targets)))
        if self.subset == "first":
            return list(range(checks.count(self.n, 1, len(targets), "name_n")))
        if self.subset == "per-class":
            by_class: dict[int, list[int]] = {}
            for i, t in enumerate(targets):
                by_class.setdefault(t, []).append(i)
            n = checks.count(self.n, 1, min(len(v) for v in by_class.values()), "name_k")
            rng = random.Random(checks.whole(self.seed, "name_seed"))
            return sorted(i for c in sorted(by_class) for i in rng.sample(by_class[c], n))
        raise Refusal("subset_unknown", repr(self.subset), ", ".join(SUBSETS))

    @property
    def settings(self) -> tuple[Setting, ...]:
        """The settings to score, in order."""
        if self.templates not in TEMPLATE_CHOICES:
            raise Refusal("templates_unknown", repr(self.templates), ", ".join(TEMPLATE_CHOICES))
        return tuple(SETTINGS[k] for k in TEMPLATE_CHOICES[self.templates])

    @property
    def classes(self) -> tuple[str, ...]:
        """CIFAR-100's class names in the chosen spelling, in the dataset's order."""
        if self.spelling not in SPELLINGS:
            raise Refusal("spelling_unknown", repr(self.spelling), ", ".join(SPELLINGS))
        return LABEL_PRESETS[self.spelling].items

    def label_set(self, setting: Setting) -> LabelSet:
        """The label set one setting scores against: its class names (or the chosen spelling), templates, tower."""
        names = LABEL_PRESETS[setting.names].items if setting.names else self.classes
        return LabelSet.of(names, TEMPLATE_SETS[setting.templates].items, encoder=setting.encoder)


@dataclass(frozen=True)
class EvalResult:
    """Zero-shot accuracy of one template setting over a set of test images."""

    setting: str
    classes: tuple[str, ...]
    indices: torch.Tensor  # [N] dataset indices
    targets: torch.Tensor  # [N] true class
    predicted: torch.Tensor  # [N] top-1 class
    confidence: torch.Tensor  # [N] top-1 probability
    top5_hit: torch.Tensor  # [N] bool
    images_per_s: float

    @property
    def n(self) -> int:
        return int(self.targets.numel())

    @property
    def top1(self) -> float:
        return float((self.predicted == self.targets).float().mean())

    @property
    def top5(self) -> float:
        return float(self.top5_hit.float().mean())

    @property
    def per_class(self) -> list[float | None]:
        """Top-1 accuracy of each class among the evaluated images (None where a class has none)."""
        out: list[float | None] = []
        for c in range(len(self.classes)):
            mask = self.targets == c
            out.append(float((self.predicted[mask] == c).float().mean()) if mask.any() else None)
        return out

    @property
    def mean_per_class(self) -> float:
        vals = [v for v in self.per_class if v is not None]
        return sum(vals) / len(vals)

    @property
    def confusion(self) -> torch.Tensor:
        """`[C, C]` counts: row = true class, column = predicted class."""
        c = len(self.classes)
        return torch.bincount(self.targets * c + self.predicted, minlength=c * c).reshape(c, c)

    def confused_pairs(self, k: int = 10) -> list[tuple[int, int, int]]:
        """The k most frequent (true, predicted, count) mistakes."""
        conf = self.confusion.clone()
        conf.fill_diagonal_(0)
        counts, flat = conf.flatten().topk(min(k, conf.numel()))
        c = len(self.classes)
        return [(int(f) // c, int(f) % c, int(n)) for n, f in zip(counts, flat) if n > 0]

    def worst_mistakes(self, k: int = 12) -> list[tuple[int, int, int, float]]:
        """The k most confident wrong predictions: (dataset index, true, predicted, probability)."""
        wrong = (self.predicted != self.targets).nonzero().flatten()
        order = wrong[self.confidence[wrong].argsort(descending=True)][:k]
        return [(int(self.indices[i]), int(self.targets[i]), int(self.predicted[i]), float(self.confidence[i]))
                for i in order]

    def summary(self) -> dict:
        return {"setting": self.setting, "images": self.n, "top1": self.top1, "top5": self.top5,
                "mean_per_class": self.mean_per_class, "images_per_s": self.images_per_s}

    def as_dict(self) -> dict:
        return {**self.summary(), "published": list(PUBLISHED.get(self.setting, ())),
                "per_class": dict(zip(self.classes, self.per_class)),
                "confused_pairs": [{"true": self.classes[t], "predicted": self.classes[p], "count": n}
                                   for t, p, n in self.confused_pairs(20)],
                "predictions": [{"index": int(i), "true": self.classes[t], "predicted": self.classes[p],
                                 "probability": float(q)}
                                for i, t, p, q in zip(self.indices, self.targets, self.predicted, self.confidence)]}


def score(image_feats: torch.Tensor, targets: torch.Tensor, text_feats: torch.Tensor, *, setting: str,
          classes: tuple[str, ...], indices: torch.Tensor | None = None, images_per_s: float = 0.0) -> EvalResult:
    """Score `[N, D]` image features against `[C, D]` class text features (both normalised)."""
    return score_probs(answer(image_feats, text_feats)[1], targets, setting=setting, classes=classes, indices=indices,
                       images_per_s=images_per_s)


def score_probs(probs: torch.Tensor, targets: torch.Tensor, *, setting: str, classes: tuple[str, ...],
                indices: torch.Tensor | None = None, images_per_s: float = 0.0) -> EvalResult:
    """Score `[N, C]` probabilities over the classes, however they were made (zero-shot, few-shot)."""
    conf, pred = probs.max(dim=-1)  # [N], [N]
    top5 = probs.topk(min(5, probs.shape[1]), dim=-1).indices  # [N, 5]
    hit5 = (top5 == targets[:, None]).any(dim=-1)  # [N]
    idx = torch.arange(len(targets)) if indices is None else indices
    return EvalResult(setting, tuple(classes), idx, targets, pred, conf, hit5, images_per_s)


@dataclass(frozen=True)
class Report:
    """The end of a run: every setting's result, how many images were encoded and how fast (None when all were
    stored already), or, when the run stopped at its time limit, why (and no results)."""

    results: list[EvalResult]
    encoded: int
    rate: float | None
    stopped: Text | None = None


def run(zs: ZeroShot, data: Cifar100, ev: Evaluation, *, chunk: int | None = None, time_limit_s: float = math.inf,
        batch_size: int | None = None, workers: int = 0, priority: Priority = Priority.BULK,
        clock: Callable[[], float] = time.perf_counter) -> Iterator[Progress | Report]:
    """Evaluate: yields a `Progress` every `chunk` images encoded (its sentence with the rate and the time left) (default: every batch), then the `Report`.

    The images not yet in the feature store are encoded by the service's one loop (`ZeroShot.fill_store`: batches
    of `batch_size`, default the path's bulk size, preprocessed by `workers` DataLoader processes). Past
    `time_limit_s` the run ends with a stopped `Report` between two batches; what it encoded
    is kept. A caller that stops iterating (Stop, a closed tab) ends it there too. Every value of `ev` is
    checked before any work.
    """
    indices, settings, classes = ev.indices(data.targets), ev.settings, ev.classes
    if len(classes) != len(data.classes):
        raise Refusal("eval_classes", len(data.classes), len(classes))
    if any(s.encoder != CLIP for s in settings):
        zs.tower()  # a multilingual tower that cannot be loaded is said before any image is encoded
    store = zs.cifar_store(len(data))
    todo = len(store.missing(indices))
    chunk = chunk or batch_size or zs.bulk_images
    start, done, reported = clock(), 0, 0
    batches = zs.fill_store(data, indices, batch_size=batch_size, workers=workers, priority=priority)
    while done < todo:
        if clock() - start > time_limit_s:  # checked before each batch is taken
            yield Report([], done, done / (clock() - start), Text("eval_stopped", f"{time_limit_s / 60:.0f}", done, todo))
            return
        got = next(batches, None)
        if got is None:  # another job (the search index) stored the rest meanwhile
            break
        done = got
        if done - reported >= chunk or done == todo:
            reported = done
            rate = done / max(clock() - start, 1e-9)
            yield Progress(done, todo, Text("eval_encoding", done, todo, f"{rate:.0f}", f"{(todo - done) / rate:.0f}"))
    rate = done / max(clock() - start, 1e-9) if done else None
    feats = store.gather(indices)  # [N, D]
    targets = torch.tensor([data.target(i) for i in indices])  # [N]
    results = []
    for setting in settings:
        label_set = ev.label_set(setting)
        results.append(score(feats, targets, zs.text_features(label_set), setting=setting.key, classes=label_set.labels,
                             indices=torch.tensor(indices), images_per_s=rate or 0.0))
    yield Report(results, done, rate)


def evaluate(zs: ZeroShot, data: Cifar100, ev: Evaluation, **options) -> Report:
    """`run` to its end (options as for `run`): the Report."""
    *_, report = run(zs, data, ev, **options)
    return report
