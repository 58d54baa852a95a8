"""Your own labelled images (issue #26): read a labelled set, and measure CLIP on it.

A set is kept as features and small thumbnails, never the images: each member is checked as a batch's are, each
image decoded one at a time, encoded in bulk chunks and dropped. The math is `clipdemo.core.calibration`'s, the
model calls the service's. No gradio.
"""

from __future__ import annotations

import csv
import io
import math
import random
import zipfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import torch
from PIL import Image

from ..core import calibration
from ..core.labels import SINGLE_TEMPLATE, LabelSet
from ..core.words import Progress, ProgressFn, Refusal, Text
from ..io.images import IMAGE_SUFFIXES, ImageError, open_image
from ..io.zips import checked_members, member_image, open_zip, read_member
from ..serving.service import Priority, ZeroShot
from .classify import FewShot, answer, label_text
from .evaluate import EvalResult, score, score_probs

__all__ = ["MAX_IMAGES", "MAX_CLASSES", "MAX_CSV_BYTES", "MAX_SET_BYTES", "NONE_FOLDERS", "LabelledSet", "read_labelled",
           "label_text", "evaluate_labelled", "LabelledReport", "WITHHELD", "THUMB"]

MAX_IMAGES = 2000  # images in one labelled set
MAX_CLASSES = 50
MAX_CSV_BYTES = 2 * 2**20  # a labels CSV: 2,000 rows of long paths fit many times over
MAX_SET_BYTES = 200 * 2**20  # all images of a zip together, uncompressed
NONE_FOLDERS = ("_none", "other")  # a folder of images no class fits (for "none of these"); not a class
THUMB = 48  # px: the thumbnails a report keeps of its images (for its worst mistakes)


@dataclass(frozen=True, eq=False)
class LabelledSet:
    """A labelled set as the report needs it: per image its name, its class (an index into `classes`, or -1 for
    the none-folder), its normalised feature `[D]` and a thumbnail. Never the images themselves."""

    classes: tuple[str, ...]  # the labels, as prompts read them ("golden retriever")
    names: tuple[str, ...]  # [N]
    targets: torch.Tensor  # [N] int64, -1: none of the classes
    features: torch.Tensor  # [N, D]
    thumbs: tuple[Image.Image, ...] = field(default=(), repr=False)

    @property
    def has_none(self) -> bool:
        return bool((self.targets < 0).any())


def _class_of(path: str, depth: int) -> str:
    return PurePosixPath(path).parts[depth]


def _csv_rows(csv_text: str) -> Iterator[list[str]]:
    """The CSV's rows (a header skipped), read one at a time and counted as they come: more rows than a set may
    have images is refused at the first one over, before the rest are read."""
    rows = (r for r in csv.reader(io.StringIO(csv_text)) if r and r[0].strip())
    try:
        for count, row in enumerate(rows):
            if count == 0 and row[0].strip().lower() in {"filename", "file", "image", "path"}:
                continue  # the header
            if count > MAX_IMAGES:  # a header, then at most MAX_IMAGES images
                raise Refusal("labelled_many", f"{MAX_IMAGES:,}+", MAX_IMAGES)
            yield row
    except csv.Error as exc:
        raise Refusal("labelled_csv_bad", exc) from None


def _entries(names: list[str], csv_text: str | None, csv_folder: str = "") -> list[tuple[str, str]]:
    """(member name, class folder or label) of every image, from the folders or from the CSV (its names relative
    to `csv_folder`, the CSV's own folder; a bare file name only where it is not ambiguous)."""
    images = [n for n in names if PurePosixPath(n).suffix.lower() in IMAGE_SUFFIXES]
    if csv_text is not None:
        bare = Counter(PurePosixPath(n).name for n in images)
        known = ({PurePosixPath(n).name: n for n in images if bare[PurePosixPath(n).name] == 1}
                 | {n: n for n in images} | {n.removeprefix(csv_folder): n for n in images if n.startswith(csv_folder)})
        out, seen = [], set()
        for row in _csv_rows(csv_text):
            if len(row) < 2 or not row[1].strip():
                raise Refusal("labelled_csv_row", ",".join(row)[:60])
            name = row[0].strip()
            if name not in known:
                raise Refusal("labelled_csv_missing", name[:80])
            if known[name] in seen:  # one image in two rows could be both an example and scored
                raise Refusal("labelled_csv_twice", name[:80])
            seen.add(known[name])
            out.append((known[name], row[1].strip()))
        return out
    parts = [PurePosixPath(n).parts for n in images]
    # one top folder holding the class folders (as zipping a folder makes): the classes are one level down
    depth = 1 if parts and all(len(p) >= 3 for p in parts) and len({p[0] for p in parts}) == 1 else 0
    loose = [n for n, p in zip(images, parts) if len(p) <= depth + 1]
    if loose:
        raise Refusal("labelled_loose", loose[0][:80])
    return [(n, p[depth]) for n, p in zip(images, parts)]


def _classes(entries: list[tuple[str, str]]) -> tuple[tuple[str, ...], list[int]]:
    """The class labels in order of first appearance (sorted by folder name) and each entry's target (-1: none)."""
    folders = sorted({c for _, c in entries if c.lower() not in NONE_FOLDERS}, key=str.casefold)
    labels, seen = [], {}
    for folder in folders:
        text = label_text(folder)
        if not text:
            raise Refusal("labelled_blank_class", folder[:40])
        if text.casefold() in seen:
            raise Refusal("labelled_collide", seen[text.casefold()][:40], folder[:40], text[:40])
        seen[text.casefold()] = folder
        labels.append(text)
    if len(labels) < 2:
        raise Refusal("labelled_few_classes", len(labels))
    if len(labels) > MAX_CLASSES:
        raise Refusal("labelled_many_classes", len(labels), MAX_CLASSES)
    index = {f: i for i, f in enumerate(folders)}
    targets = [index.get(c, -1) for _, c in entries]
    counts = Counter(t for t in targets if t >= 0)
    if (single := [folders[c] for c in range(len(folders)) if counts[c] < 2]):
        raise Refusal("labelled_one_image", single[0][:40])
    return tuple(labels), targets


def read_labelled(zs: ZeroShot, path: str | Path, progress: ProgressFn | None = None) -> LabelledSet:
    """A labelled zip or folder, checked, its images encoded (bulk chunks, progress) and kept as features and
    thumbnails. Refusals say what is wrong, naming the file."""
    path = Path(path)
    fit = zs.loaded.config.image_resolution
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        names = [p.relative_to(path).as_posix() for p in files]
        csvs = [p for p in files if p.suffix.lower() == ".csv" and p.parent == path]
        csv_text = _csv_file(csvs[0]) if csvs else None
        entries = _entries(names, csv_text)
        if len(entries) > MAX_IMAGES:
            raise Refusal("labelled_many", len(entries), MAX_IMAGES)
        classes, targets = _classes(entries)
        return _encode(zs, classes, entries, targets, lambda name: _open_file(path / name, fit), progress)
    if not zipfile.is_zipfile(path):
        raise Refusal("labelled_not_zip", path.name[:80])
    with open_zip(path, path.name) as zf:
        return _read_zip(zs, zf, fit, progress)


def _csv_file(path: Path) -> str:
    """A folder's labels CSV as text, refused before it is read when over MAX_CSV_BYTES."""
    try:
        if path.stat().st_size > MAX_CSV_BYTES:
            raise Refusal("labelled_csv_big", path.name[:80], MAX_CSV_BYTES // 2**20)
        return path.read_text(encoding="utf-8-sig")
    except (UnicodeDecodeError, OSError) as exc:
        raise Refusal("labelled_csv_bad", exc) from None


def _read_zip(zs: ZeroShot, zf: zipfile.ZipFile, fit: int, progress: ProgressFn | None) -> LabelledSet:
    # members beyond the images (a CSV, text files) are allowed; too many images is said below, by count
    infos = {i.filename: i for i in checked_members(zf, 10 * MAX_IMAGES, MAX_SET_BYTES)}
    # a CSV at the top, or in the one folder that holds everything (as zipping a folder makes); its names are
    # relative to its folder
    tops = {n.split("/", 1)[0] for n in infos}
    folder = f"{next(iter(tops))}/" if len(tops) == 1 and all("/" in n for n in infos) else ""
    csvs = [i for n, i in infos.items() if n.lower().endswith(".csv") and "/" not in n.removeprefix(folder)]
    if csvs and csvs[0].file_size > MAX_CSV_BYTES:  # the header's size; read_member holds to the limit if it lies
        raise Refusal("labelled_csv_big", csvs[0].filename[:80], MAX_CSV_BYTES // 2**20)
    csv_text = read_member(zf, csvs[0], MAX_CSV_BYTES).decode("utf-8-sig", errors="replace") if csvs else None
    entries = _entries(list(infos), csv_text, folder)
    if len(entries) > MAX_IMAGES:
        raise Refusal("labelled_many", len(entries), MAX_IMAGES)
    classes, targets = _classes(entries)
    return _encode(zs, classes, entries, targets, lambda name: member_image(zf, infos[name], fit), progress)


def _open_file(path: Path, fit: int) -> Image.Image:
    try:
        return open_image(path, fit=fit)
    except ImageError as exc:
        raise Refusal("batch_not_image", path.name, exc.text) from None


def _encode(zs: ZeroShot, classes: tuple[str, ...], entries: list[tuple[str, str]], targets: list[int], read,
            progress: ProgressFn | None) -> LabelledSet:
    """Decode a chunk of images at a time, encode it as bulk work, keep features and thumbnails, drop the images."""
    feats, thumbs, step = [], [], zs.bulk_images
    for first in range(0, len(entries), step):
        images = [read(name) for name, _ in entries[first:first + step]]
        feats.append(zs.image_features(images, Priority.BULK))  # [b, D]
        for image in images:
            thumb = image.copy()
            thumb.thumbnail((THUMB, THUMB))
            thumbs.append(thumb)
        if progress:
            progress(Progress(min(first + step, len(entries)), len(entries), Text("progress_labelled")))
    return LabelledSet(classes, tuple(n for n, _ in entries), torch.tensor(targets, dtype=torch.int64),
                       torch.cat(feats), tuple(thumbs))


# -- the report ---------------------------------------------------------------------------------------------------
# why a report recommends no threshold (LabelledReport.threshold_from) -> the key of the sentence that says so
WITHHELD = {"": "labelled_threshold", "separates-nothing": "labelled_threshold_nothing",
            "untrained": "labelled_threshold_untrained"}


@dataclass(frozen=True)
class LabelledReport:
    """What `evaluate_labelled` measured; `as_dict()` is the JSON the page, the API and the CLI give."""

    classes: tuple[str, ...]
    # one template, then the template set (then few-shot, when examples were given), each scored on the same images
    settings: tuple[EvalResult, ...]
    best_cosine: torch.Tensor  # [n] each scored image's best cosine with the template set (zero-shot)
    ece: float  # of the template set's softmax(100 cos), on every scored image
    bins: tuple[calibration.Bin, ...]
    temperature: float  # fitted on half A of the scored images
    ece_before: float  # on half B, at temperature 1
    ece_after: float  # on half B, at the fitted temperature
    threshold: calibration.Threshold | None  # "none of these": none-folder vs in-set, or right vs wrong answers
    # where it came from ("none-folder", "right-vs-wrong"), or why there is none: "" (every answer right, or every
    # one wrong), "separates-nothing" (the best one's balanced accuracy is chance's), "untrained" (random weights)
    threshold_from: str
    worst: tuple[tuple[int, int, int, float], ...]  # (set index, true, predicted, probability), most confident first
    none_cosines: torch.Tensor  # [m] the best cosines of the none-folder's images (empty without one)
    examples: int = 0  # few-shot examples per class held out
    tip: tuple[float, float] = (0.0, 0.0)  # the (alpha, beta) chosen on the examples
    held: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))  # [M] the examples' indices
    trained: bool = True  # False for untrained random weights: every figure is chance's

    @property
    def top5_means_something(self) -> bool:
        """Top-5 is shown only with more than 5 classes (with 5 or fewer it is 100% whatever the model)."""
        return len(self.classes) > 5

    def example_features(self, data: LabelledSet) -> dict[str, torch.Tensor]:
        """The held-out examples as label -> `[n, D]` features (what Predict's few-shot takes)."""
        return {label: data.features[self.held[data.targets[self.held] == c]]
                for c, label in enumerate(self.classes) if bool((data.targets[self.held] == c).any())}

    @property
    def scored(self) -> torch.Tensor:
        """`[n]` indices (into the set) of the images scored: in-set, not held out as examples."""
        return self.settings[0].indices

    def rows(self, names: tuple[str, ...]) -> list[dict]:
        """One row per scored image (the CSV the page and the CLI write): its name, true class, and each setting's
        answer, with the template set's probability and best cosine."""
        best = self.settings[1]
        return [{"image": names[i], "true": self.classes[int(best.targets[row])],
                 **{a.setting: self.classes[int(a.predicted[row])] for a in self.settings},
                 "probability": float(best.confidence[row]), "best_cosine": float(self.best_cosine[row])}
                for row, i in enumerate(self.scored.tolist())]

    def as_dict(self) -> dict:
        return {
            "classes": list(self.classes),
            "images_scored": len(self.scored),
            "accuracy": [{"setting": a.setting, "top1": a.top1, "top5": a.top5 if self.top5_means_something else None,
                          "per_class": dict(zip(self.classes, a.per_class))} for a in self.settings],
            "calibration": {"ece": self.ece, "temperature": self.temperature,
                            "bins": [{k: None if isinstance(v, float) and math.isnan(v) else v
                                      for k, v in vars(b).items()} for b in self.bins],
                            "ece_before": self.ece_before, "ece_after": self.ece_after,
                            "note": "scores are relative to the labels given: softmax spreads 1 over them"},
            "trained_weights": self.trained,
            "threshold_withheld": self.threshold_from if self.threshold is None else None,
            "threshold": None if self.threshold is None else {
                "cosine": self.threshold.cosine, "from": self.threshold_from, "fits_kept": self.threshold.fits_kept,
                "none_refused": self.threshold.none_refused, "balanced_accuracy": self.threshold.balanced_accuracy},
            "few_shot_examples_per_class": self.examples,
            "few_shot_weights": {"alpha": self.tip[0], "beta": self.tip[1],
                                 "chosen_by": "leave-one-out on the examples"},
        }


def _split(targets: torch.Tensor, n: int, seed: int) -> tuple[list[int], list[int]]:
    """Per class, `n` images held out as examples (seeded), the rest scored; none-folder images are never examples."""
    rng = random.Random(seed)
    examples, scored = [], []
    for c in sorted(set(targets.tolist())):
        members = [i for i, t in enumerate(targets.tolist()) if t == c]
        if c >= 0:
            rng.shuffle(members)
            examples += members[:n]
            members = members[n:]
        scored += members
    return sorted(examples), sorted(scored)


def _halves(indices: list[int], seed: int) -> tuple[list[int], list[int]]:
    order = list(indices)
    random.Random(seed + 1).shuffle(order)
    return sorted(order[::2]), sorted(order[1::2])


def evaluate_labelled(zs: ZeroShot, data: LabelledSet, template_set: tuple[str, ...], *, examples: int = 0,
                      seed: int = 0, encoder: str = "clip", progress: ProgressFn | None = None) -> LabelledReport:
    """Measure CLIP on a labelled set: zero-shot with one template and with `template_set`, side by side, and with
    `examples` images per class held out as few-shot examples (Tip-Adapter over the template set), all scored on
    the same images; calibration, and the "none of these" threshold. A Refusal when a class is too small to
    hold `examples` out and still be scored."""
    counts = Counter(t for t in data.targets.tolist() if t >= 0)
    if examples and (small := [data.classes[c] for c in range(len(data.classes)) if counts[c] <= examples]):
        raise Refusal("labelled_examples", small[0][:40], counts[data.classes.index(small[0])], examples)
    held, scored = _split(data.targets, examples, seed)
    in_set = [i for i in scored if data.targets[i] >= 0]
    feats, targets = data.features[in_set], data.targets[in_set]  # [n, D], [n]
    text_sets = {"single template": LabelSet.of(data.classes, SINGLE_TEMPLATE, encoder=encoder),
                 "template set": LabelSet.of(data.classes, template_set, encoder=encoder)}
    scored_as = dict(classes=data.classes, indices=torch.tensor(in_set, dtype=torch.int64))
    settings = [score(feats, targets, zs.text_features(label_set, progress), setting=name, **scored_as)
                for name, label_set in text_sets.items()]
    text = zs.text_features(text_sets["template set"])  # [C, D]
    cosines_all = feats @ text.T  # [n, C]
    best_cosine = cosines_all.max(dim=-1).values  # [n]
    alpha, beta = 0.0, 0.0
    if examples:
        keys, key_targets = data.features[held], data.targets[held]
        alpha, beta = calibration.tune_tip(text, keys, key_targets)  # on the examples alone
        probs = answer(feats, text, FewShot(keys, key_targets, alpha, beta))[1]  # [n, C]
        settings.append(score_probs(probs, targets, setting=f"few-shot ({examples} per class)", **scored_as))
    best = settings[1]
    correct = best.predicted == targets
    half_a, half_b = _halves(list(range(len(in_set))), seed)
    temperature = calibration.fit_temperature(cosines_all[half_a], targets[half_a])
    before = answer(feats[half_b], text)[1].max(dim=-1).values  # [n/2]
    after = answer(feats[half_b], text, temperature=temperature)[1].max(dim=-1).values
    right_b = correct[half_b]
    none = [i for i in scored if data.targets[i] < 0]
    none_best = (data.features[none] @ text.T).max(dim=-1).values if none else torch.zeros(0)  # [m]
    if none:
        threshold, source = calibration.best_threshold(best_cosine, none_best), "none-folder"
    elif correct.all() or not correct.any():  # nothing to set a threshold between: the report says so
        threshold, source = None, ""
    else:
        threshold = calibration.best_threshold(best_cosine[correct], best_cosine[~correct])
        source = "right-vs-wrong"
    if threshold is not None and threshold.balanced_accuracy <= 0.5 + 1e-9:  # keeps all, or refuses at random
        threshold, source = None, "separates-nothing"
    if not zs.loaded.info.trained:  # a threshold on random features would refuse at random on the next images
        threshold, source = None, "untrained"
    wrong = (~correct).nonzero().flatten()
    order = wrong[best.confidence[wrong].argsort(descending=True)][:12]
    worst = tuple((in_set[int(i)], int(targets[i]), int(best.predicted[i]), float(best.confidence[i])) for i in order)
    return LabelledReport(data.classes, tuple(settings), best_cosine,
                          calibration.ece(best.confidence, correct), tuple(calibration.reliability(best.confidence,
                                                                                                   correct)),
                          temperature, calibration.ece(before, right_b), calibration.ece(after, right_b),
                          threshold, source, worst, none_best, examples, (alpha, beta),
                          torch.tensor(held, dtype=torch.int64), zs.loaded.info.trained)
