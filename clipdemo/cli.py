"""Command line: `python -m clipdemo SUB-COMMAND ...` (the sub-commands and `predict`'s JSON: docs/cli.md).

One Settings from the environment and the flags, passed down; every value checked by the checker the page and
the API use; every refusal one line `error: ...` on stderr and exit 2, never a traceback; progress a tqdm bar.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import glob
import json
import logging
import sys
from pathlib import Path

from .core import checks
from .core.architecture import INDENT, config_card
from .core.family import FAMILY, member, member_card, member_summary
from .tasks.bulk import PARTITION_SIZE, BulkError
from .core.labels import (CLIP, LABEL_PRESETS, TEMPLATE_SETS, TEXT_ENCODERS, LabelSet, fill,
                          read_label_file, suggests_multilingual, true_name)
from .core.search import DEFAULT_RESULTS, MAX_RESULTS, SearchQuery, results
from .core.inside import prompt_words
from .core.words import Progress, Refusal, Text
from .core.zeroshot import LOGIT_SCALE
from .io.cifar import open_cifar10, open_cifar100
from .io.images import IMAGE_SUFFIXES, open_image
from .serving import settings as settings_mod
from .tasks.classify import (MAX_BATCH, MAX_EXAMPLES, Answering, classify_batch, predict_image,
                             read_batch, read_examples)
from .tasks.evaluate import SPELLINGS, TEMPLATE_CHOICES, Evaluation, Report, run
from .tasks.yourdata import WITHHELD, evaluate_labelled, read_labelled

__all__ = ["main", "build_parser"]

log = logging.getLogger("clipdemo")
JSON_SCHEMA = 1  # every sub-command's `--json` shape: see docs/cli.md and CHANGELOG.md before changing a key
SUFFIXES = IMAGE_SUFFIXES | {".zip"}  # what a folder of images for `predict --images` may hold


def _argument(check):
    """An argparse type from one of the checkers: a refusal becomes argparse's own one-line error."""
    def convert(text: str):
        try:
            return check(text)
        except Refusal as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = check.__name__
    return convert


class _Renamed(argparse.Action):
    """A flag of 0.1 that has a new name now (CHANGELOG.md): said in a sentence, never taken with its old meaning."""

    def __init__(self, option_strings, dest, now: str, **kwargs):
        super().__init__(option_strings, dest, nargs="?", help=argparse.SUPPRESS, **kwargs)
        self.now = now

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string} is now {self.now} (see CHANGELOG.md)")


def _renamed(p: argparse.ArgumentParser, old: str, now: str) -> None:
    p.add_argument(old, action=_Renamed, now=now, dest="renamed_" + old.strip("-").replace("-", "_"))


def _json_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help=f"print the result as JSON (schema {JSON_SCHEMA}: docs/cli.md)")


def _emit(command: str, **fields) -> int:
    """A result as one JSON object on stdout: its schema, the sub-command, then the fields."""
    print(json.dumps({"schema": JSON_SCHEMA, "command": command, **fields}, ensure_ascii=False, default=str))
    return 0


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", help="ViT-B/32 (default, downloaded), random, or a checkpoint path "
                                     "(default: $CLIPDEMO_WEIGHTS or ViT-B/32)")
    p.add_argument("--device", help="auto, cpu or cuda (default: $CLIPDEMO_DEVICE or auto)")


def _image_args(p: argparse.ArgumentParser):
    """The image, label and template options `predict` and `explain` share; returns the image group."""
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--index", type=_argument(checks.cifar_index),
                     help=f"CIFAR-100 test image index, 0..{checks.TEST_SIZE - 1}")
    src.add_argument("--image", type=Path, help="path to an image file (JPEG, PNG, WebP, GIF, BMP)")
    _label_args(p)
    _model_args(p)
    return src


def _label_args(p: argparse.ArgumentParser) -> None:
    """The label, template and text tower options (`predict`, `explain`, `bulk`)."""
    lab = p.add_mutually_exclusive_group()
    lab.add_argument("--labels", help='comma-separated labels, e.g. "cat,dog,car"')
    lab.add_argument("--labels-file", type=Path, help="a text file, one label per line (or a .csv: first column)")
    lab.add_argument("--preset", choices=list(LABEL_PRESETS), default="cifar100", help="label preset (default cifar100)")
    tpl = p.add_mutually_exclusive_group()
    tpl.add_argument("--template", help='one prompt template with {} for the label, e.g. "a photo of a {}"')
    tpl.add_argument("--templates", choices=list(TEMPLATE_SETS), default="single", help="template set (default single)")
    p.add_argument("--text-encoder", choices=list(TEXT_ENCODERS), default=CLIP,
                   help="the text tower that reads the labels: clip (CLIP's own, English; default) or multilingual "
                        "(labels in 50+ languages, Turkish among them)")


def _answering_args(p: argparse.ArgumentParser) -> None:
    """How an image is answered beyond its labels, as the API's `classify` takes it (`predict`, `bulk`)."""
    p.add_argument("--threshold", type=_argument(checks.threshold), metavar="C",
                   help='a cosine (-1..1): labels below it do not fit, and none fitting is "none of these" '
                        '(bulk: fits = false)')
    p.add_argument("--examples", type=Path, metavar="DIR",
                   help=f"few-shot examples: a folder holding one folder of images per label, named as the label "
                        f"(1..{MAX_EXAMPLES} each, {MAX_BATCH} in all), mixed with the prompts as the API does "
                        f"(Tip-Adapter, no training)")
    p.add_argument("--temperature", type=_argument(checks.temperature), default=1.0, metavar="T",
                   help="divide the logits by T, e.g. the one `evaluate --labelled` fitted (default 1: the "
                        "notebook's softmax(100 cos))")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m clipdemo", description="OpenAI CLIP zero-shot classification.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="classify a CIFAR-100 test image, an image file, or a batch")
    src = _image_args(p)
    src.add_argument("--images", help="a folder of images (or zips of images), or a glob: up to 64 images")
    p.add_argument("--top-k", type=_argument(checks.top_k), default=5,
                   help=f"how many labels to show, 1..{checks.MAX_TOP_K} (default 5)")
    _json_arg(p)
    _answering_args(p)
    p.set_defaults(func=cmd_predict)

    s = sub.add_parser("search", help="find CIFAR-100 test images by text, by image, or both")
    s.add_argument("query", nargs="?", default="", help='what to look for, e.g. "a red car at night"')
    s.add_argument("--negative", default="", help='what the images should not look like, e.g. "rain"')
    s.add_argument("--raw", action="store_true", help='send the query as typed (default: "a photo of <query>")')
    like = s.add_mutually_exclusive_group()
    like.add_argument("--image", type=Path, help="an image to look like (weighted equally with the query)")
    like.add_argument("--index", type=_argument(checks.cifar_index),
                      help=f"a CIFAR-100 test image to look like, 0..{checks.TEST_SIZE - 1}")
    like.add_argument("--collection", type=_argument(_collection), metavar="DIR",
                      help="search the images of a `bulk --embeddings` collection instead of CIFAR-100's (by text)")
    s.add_argument("--top-k", type=_argument(results), default=DEFAULT_RESULTS,
                   help=f"how many results, 1..{MAX_RESULTS} (default {DEFAULT_RESULTS})")
    _json_arg(s)
    s.add_argument("--sheet", type=Path, help="also write the results as a contact sheet (PNG)")
    _batch_args(s)
    _model_args(s)
    s.set_defaults(func=cmd_search)

    r = sub.add_parser("explain", help="why an image matched a label: relevancy over its patches and words")
    _image_args(r)
    r.add_argument("--label", help="the label to explain (default: the top-1 label)")
    r.add_argument("--versus", help="a second label: the map shows where the first one's relevancy exceeds it")
    r.add_argument("--overlay", type=Path, metavar="PNG", help="write the relevancy overlay here (a PNG file)")
    _renamed(r, "--out", "--overlay")
    _json_arg(r)
    r.set_defaults(func=cmd_explain)

    a = sub.add_parser("architecture", help="print the configuration and torchinfo summaries of both towers")
    a.add_argument("--depth", type=_argument(checks.summary_depth), default=2,
                   help=f"summary depth, {checks.DEPTHS[0]}..{checks.DEPTHS[1]} (default 2)")
    a.add_argument("--model", type=_argument(member),
                   help="any OpenAI CLIP architecture (" + ", ".join(FAMILY) + "), built on PyTorch's meta device: "
                        "nothing is loaded or downloaded (default: the architecture --weights names; a checkpoint "
                        "or random weights are loaded)")
    a.add_argument("--flops", action="store_true",
                   help="print each layer's FLOPs (torch's FlopCounterMode) beside torchinfo's mult-adds, and "
                        "reconcile the two counts")
    _json_arg(a)
    _model_args(a)
    a.set_defaults(func=cmd_architecture)

    fam = sub.add_parser("family", help="the OpenAI CLIP family side by side: parameters and exact FLOPs per tower "
                                        "(architectures only: nothing is loaded or downloaded)")
    _json_arg(fam)
    fam.set_defaults(func=cmd_family)

    b = sub.add_parser("bulk", help="classify (and embed) a whole collection, resumably, on this machine or on Ray "
                                    "Data, in clip-retrieval's layout")
    b.add_argument("--folder", type=Path, metavar="DIR", help="a folder of images (searched recursively)")
    b.add_argument("--table", type=Path, help="a parquet or CSV table of image paths (its 'path' column, or its first)")
    b.add_argument("--shards", type=Path, nargs="+", help="webdataset .tar shards")
    b.add_argument("--collection", type=Path, required=True, metavar="DIR",
                   help="the folder the collection is written to (a rerun finishes what is missing); "
                        "`search --collection DIR` searches it")
    _renamed(b, "--out", "--collection")
    _renamed(b, "--images", "--folder (predict's --images is a batch of up to 64)")
    _label_args(b)
    b.add_argument("--top-k", type=_argument(checks.top_k), default=5,
                   help=f"labels kept per image, 1..{checks.MAX_TOP_K} (default 5)")
    _answering_args(b)
    b.add_argument("--embeddings", action="store_true", help="also write the image embeddings (float16) to img_emb/")
    b.add_argument("--partition-size", type=_argument(lambda v: checks.count(v, 1, 1_000_000, "name_partition")),
                   default=PARTITION_SIZE, help=f"images per output partition (default {PARTITION_SIZE:,})")
    b.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local (default): this process; ray: Ray Data (pip install 'ray[data]')")
    b.add_argument("--address", help="a Ray cluster's address (default: start a local Ray with this machine's CPUs)")
    b.add_argument("--actors", type=_argument(lambda v: checks.count(v, 1, 10_000, "name_actors")), default=None,
                   help="model actors for --engine ray (default: one per GPU, else CPUs / threads per actor)")
    b.add_argument("--batch-size", type=_argument(lambda v: checks.count(v, 1, 1024, "name_batch_size")),
                   default=None, help="images per model batch for --engine ray (default: 256 on a GPU, 64 on a CPU)")
    _json_arg(b)
    _model_args(b)
    b.set_defaults(func=cmd_bulk)

    f = sub.add_parser("features", help="encode the CIFAR-100 test split into a features file the app loads")
    f.add_argument("--features-file", type=Path, metavar="FILE",
                   help="the features file to write (default: the cache path the app looks in)")
    _renamed(f, "--out", "--features-file")
    f.add_argument("--limit", type=_argument(lambda v: checks.count(v, 1, checks.TEST_SIZE, "name_limit")),
                   help="only the first N test images (default: all 10,000)")
    _batch_args(f)
    _json_arg(f)
    _model_args(f)
    f.set_defaults(func=cmd_features)

    e = sub.add_parser("evaluate", help="zero-shot accuracy on the CIFAR-100 test split")
    subset = e.add_mutually_exclusive_group()
    subset.add_argument("--limit", type=int, help="the first N test images (default 1000; checked by the evaluation)")
    subset.add_argument("--per-class", type=int, help="a seeded stratified sample of K images per class")
    subset.add_argument("--all", action="store_true", help="all 10,000 test images")
    e.add_argument("--seed", type=int, default=0, help="seed of the stratified sample")
    e.add_argument("--compare", choices=list(TEMPLATE_CHOICES), default="both",
                   help="CIFAR-100's settings scored side by side: single, cifar18, both (default), or languages "
                        "(English with CLIP's text tower, English and Turkish with the multilingual one)")
    e.add_argument("--spelling", choices=list(SPELLINGS), default="cifar100",
                   help="class names: torchvision's (default) or the CLIP paper's (--templates languages brings its "
                        "own: torchvision's and the Turkish ones)")
    e.add_argument("--labelled", type=Path, metavar="PATH",
                   help="your own labelled images instead of CIFAR-100: a zip or a folder, one folder per class "
                        "(ImageFolder layout; an 'other' or '_none' folder holds images no class fits), or images "
                        "with a CSV of filename,label")
    e.add_argument("--few-shot", type=_argument(lambda v: checks.count(v, 0, 16, "name_examples")), default=0,
                   metavar="N", help="with --labelled: hold out N images per class as few-shot examples (0..16)")
    e.add_argument("--templates", choices=list(TEMPLATE_SETS), default=None,
                   help="with --labelled: the template set scored beside the single template (default cifar18)")
    _renamed(e, "--examples", "--few-shot (predict's --examples is a folder)")
    _renamed(e, "--template-set", "--templates")
    _batch_args(e)
    e.add_argument("--results", type=Path, metavar="JSON",
                   help="write the full results (per class, per image) to this JSON file (with --labelled, a "
                        "per-image CSV beside it)")
    _renamed(e, "--out", "--results")
    _json_arg(e)
    _model_args(e)
    e.set_defaults(func=cmd_evaluate)

    x = sub.add_parser("export-onnx", help="export the vision tower to ONNX (the app does this by itself)")
    x.add_argument("--onnx", type=Path, required=True, metavar="FILE", help="the ONNX file to write")
    _renamed(x, "--out", "--onnx")
    _json_arg(x)
    _model_args(x)
    x.set_defaults(func=cmd_export_onnx)

    c = sub.add_parser("selfcheck", help="check the real ViT-B/32 on the real CIFAR-100 against the published figures")
    c.add_argument("--cifar10", type=Path, help="a folder holding cifar-10-batches-py/ (optional check)")
    _json_arg(c)
    _model_args(c)
    c.set_defaults(func=cmd_selfcheck)
    return parser


def _collection(value: str) -> Path:
    """`search --collection`: the folder a bulk run wrote."""
    folder = Path(value).expanduser()
    if not folder.is_dir():
        raise BulkError("bulk_not_folder", value)
    return folder


def _batch_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--batch-size", type=_argument(lambda v: checks.count(v, 1, 1024, "name_batch_size")), default=64)
    p.add_argument("--workers", type=int, default=0,
                   help="preprocessing worker processes (default 0: on 2 vCPUs the model already uses both)")


def _label_set(args: argparse.Namespace) -> LabelSet:
    """The options' label set: typed labels (a repeat is an error, not dropped), a file, or a preset; one
    template or a template set. Checked before any model is loaded."""
    templates = [args.template] if args.template is not None else TEMPLATE_SETS[args.templates].items
    if args.labels is not None:
        return LabelSet.from_text(args.labels, "\n".join(templates), duplicates="error", encoder=args.text_encoder)
    if args.labels_file is not None:
        try:
            text = read_label_file(args.labels_file)
        except OSError as exc:
            raise Refusal("labels_file_unreadable", args.labels_file, exc.strerror or exc) from None
        return LabelSet.from_text(text, "\n".join(templates), duplicates="error", encoder=args.text_encoder)
    return LabelSet.of(LABEL_PRESETS[args.preset].items, templates, encoder=args.text_encoder)


def _model_settings(args: argparse.Namespace, cfg: settings_mod.Settings) -> settings_mod.Settings:
    """The settings with the sub-command's `--weights` and `--device` applied (those that have them): every step of
    a command reads this one Settings, never the environment again."""
    weights, device = getattr(args, "weights", None), getattr(args, "device", None)
    return dataclasses.replace(cfg, weights=weights or cfg.weights, device=device or cfg.device)


def _load(args: argparse.Namespace, cfg: settings_mod.Settings, *, batch_work: bool = False):
    """The model service for `--weights`/`--device`; for batch work also the (parity-checked) image backend."""
    from .serving.runtime import open_service, speed_up

    zs = open_service(cfg)
    if batch_work:
        speed_up(zs, cfg, stored_features=False)
    return zs


def _subject(args: argparse.Namespace, cfg: settings_mod.Settings):
    """(image, what it is, its true class or None) for `--image` or `--index`."""
    if args.image is not None:
        return open_image(args.image), str(args.image), None
    data = open_cifar100(cfg.data_root, download=cfg.allow_download)
    return data.image(args.index), f"CIFAR-100 test image #{args.index}", data.true_label(args.index)


def _weights_note(info) -> str:
    if not info.trained:
        return "Note: untrained random weights - these results are meaningless."
    return "" if info.verified else "Note: an unverified checkpoint (its SHA-256 is no known release)."


def _fits_line(pred, threshold: float) -> str:
    """Whether any label fits under the threshold, in a line."""
    best = max(pred.cosines)
    if pred.fits(threshold):
        return f"Fits: the best cosine {best:.3f} reaches the threshold {threshold:g}."
    return f"None of these labels fits: the best cosine {best:.3f} is below the threshold {threshold:g}."


def _text_encoder(zs, label_set: LabelSet) -> str:
    """Which text tower read the labels, in a line (random weights say so)."""
    return "CLIP's own (English)" if label_set.encoder == CLIP else str(zs.tower().label)


def _dtype(zs) -> str:
    return str(zs.loaded.dtype).removeprefix("torch.")


def _answering(args: argparse.Namespace, zs, label_set: LabelSet) -> Answering:
    """How `predict` and `bulk` answer: the threshold, the few-shot examples of `--examples` and the temperature, as the API's
    `classify` takes them (`Answering.of`)."""
    examples = (read_examples(args.examples, label_set, zs.loaded.config.image_resolution)
                if args.examples is not None else None)
    return Answering.of(zs, label_set, examples, threshold=args.threshold, temperature=args.temperature)


def _answering_json(zs, label_set: LabelSet, answering: Answering) -> dict:
    """The settings every `predict --json` answer carries, as machine values."""
    return {"weights": zs.loaded.info.as_json(), "device": str(zs.loaded.device), "dtype": _dtype(zs),
            "text_encoder": label_set.encoder,
            **({} if label_set.encoder == CLIP else
               {"text_encoder_weights": {"name": zs.tower().info.name, "trained": zs.tower().info.trained}}),
            "threshold": answering.threshold, "temperature": answering.temperature,
            "examples": dict(answering.describe())}


def _answering_lines(answering: Answering) -> list[str]:
    lines = []
    if answering.examples:
        lines.append("Few-shot examples: " + ", ".join(f"{lab} ({n})" for lab, n in answering.describe()))
    if answering.temperature != 1.0:
        lines.append(f"Temperature: {answering.temperature:g} (scores are softmax(100 cos / T))")
    return lines


def cmd_predict(args: argparse.Namespace, cfg: settings_mod.Settings) -> int:
    label_set = _label_set(args)
    if args.images is not None:  # a batch
        return _predict_batch(args, cfg, label_set)
    image, what, true_label = _subject(args, cfg)
    zs = _load(args, cfg)
    answering = _answering(args, zs, label_set)
    if true_label is not None:  # the class's name in the set's spelling (the Turkish preset's, the paper's)
        true_label = true_name(label_set.labels, true_label, label_set.label_preset)
    pred = predict_image(zs, image, label_set, args.top_k, answering, true_label)
    if args.json:
        out = {**_answering_json(zs, label_set, answering), **pred.as_dict(), "image": what,
               "top": pred.rows(answering.threshold)}
        if answering.threshold is not None:
            out["fits"] = pred.fits(answering.threshold)
        return _emit("predict", **out)
    print(f"Weights: {pred.weights.label}; device {zs.loaded.device}, {_dtype(zs)}")
    print(f"Text encoder: {_text_encoder(zs, label_set)}")
    print("\n".join([f"Image: {what}" + (f" (true class: {true_label})" if true_label else ""),
                     *_answering_lines(answering)]))
    print("\nTop predictions:\n")
    print("\n".join(pred.lines()))
    if answering.threshold is not None:
        print(f"\n{_fits_line(pred, answering.threshold)}")
    if true_label is not None and pred.true_rank is not None:
        print(f"\nTrue class {true_label!r}: rank {pred.true_rank} of {len(label_set.labels)}, "
              f"{100 * pred.true_prob:.2f}%")
    if note := _weights_note(pred.weights):
        print(f"\n{note}")
    if label_set.encoder == CLIP and suggests_multilingual(label_set.label_text() + label_set.template_text(), "en",
                                                           label_set.language):
        print("\nNote: these labels are not English; CLIP's own text encoder reads English only. "
              "--text-encoder multilingual reads them.")
    return 0


def image_paths(spec: str) -> list[Path]:
    """The files `spec` names: a folder's image files (and zips), or a glob's matches; a Refusal if none."""
    folder = Path(spec).expanduser()
    if folder.is_dir():
        paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    else:
        paths = sorted(Path(p) for p in glob.glob(str(folder)) if Path(p).is_file())
    if not paths:
        raise Refusal("batch_none_found", repr(spec))
    return paths


def _predict_batch(args: argparse.Namespace, cfg: settings_mod.Settings, label_set: LabelSet) -> int:
    paths = image_paths(args.images)
    zs = _load(args, cfg)
    answering = _answering(args, zs, label_set)
    items = read_batch(paths, fit=zs.loaded.config.image_resolution)
    preds = classify_batch(zs, [image for _, image in items], label_set, args.top_k, answering=answering)
    if args.json:
        return _emit("predict", **_answering_json(zs, label_set, answering),
                     images=[{"image": name, "predictions": p.rows(answering.threshold)}
                             for (name, _), p in zip(items, preds)])
    print(f"Weights: {zs.loaded.info.label}; {len(items)} images, {len(label_set.labels)} labels")
    if lines := _answering_lines(answering):
        print("\n".join(lines))
    width = max(len(name) for name, _ in items)
    for (name, _), pred in zip(items, preds):
        none = answering.threshold is not None and not pred.fits(answering.threshold)
        print(f"{name:<{width}}  " + ("(none of these) " if none else "")
              + ", ".join(f"{lab} {100 * p:.2f}%" for lab, p in pred.top))
    if note := _weights_note(zs.loaded.info):
        print(f"\n{note}")
    return 0


def cmd_explain(args: argparse.Namespace, cfg: settings_mod.Settings) -> int:
    """Print why the image matched a label (its relevancy over the patches as a grid, and over the prompt's
    words) and write the overlay to `--overlay`."""
    from .io import figures

    label_set = _label_set(args)
    image, what, true_label = _subject(args, cfg)
    zs = _load(args, cfg)
    label = args.label or predict_image(zs, image, label_set, k=1).top[0][0]
    ex = zs.inside.explain(image, ("cli", what), label, label_set, args.versus)
    amap = ex.image  # [grid, grid]
    prompt = fill(label_set.templates[0], label)
    if args.overlay:
        figures.attention_overlay(figures.overlay_base(figures.input_view(zs.pixels(image), min_size=0)),
                                  amap).save(args.overlay)
    if args.json:
        words = (dict(zip(("word", "relevancy"), wv)) for wv in zip(prompt_words(prompt), ex.words.tolist()))
        return _emit("explain", weights=zs.loaded.info.as_json(), image=what, true_label=true_label,
                     label=label, versus=args.versus, prompt=prompt, logit=ex.logit, cosine=ex.logit / LOGIT_SCALE,
                     patches=amap.tolist(), words=list(words) if label_set.encoder == CLIP else None,
                     overlay=str(args.overlay) if args.overlay else None)
    print(f"Weights: {zs.loaded.info.label}")
    print(f"Image: {what}" + (f" (true class: {true_label})" if true_label else ""))
    versus = f", where its relevancy exceeds {args.versus!r}'s" if args.versus else ""
    print(f"Label: {label!r}{versus} (logit {ex.logit:.2f} = {LOGIT_SCALE:.0f} x cos {ex.logit / LOGIT_SCALE:.4f})")
    print(f"\nRelevancy over the {amap.shape[0]}x{amap.shape[1]} patches (row by row, top left first):")
    for row in amap.tolist():
        print("  " + " ".join(f"{v:6.3f}" for v in row))
    if label_set.encoder == CLIP:
        print(f"\nRelevancy of the words of {prompt!r}:")
        print("  " + "  ".join(f"{w} {v:.3f}" for w, v in zip(prompt_words(prompt), ex.words.tolist())))
    else:
        print(f"\n{Text('explain_words_tower')}")
    if args.overlay:
        print(f"\nOverlay written to {args.overlay}")
    if not zs.loaded.info.trained:
        print("\nNote: untrained random weights - this map is meaningless.")
    return 0


def cmd_architecture(args: argparse.Namespace, cfg: settings_mod.Settings) -> int:
    model = args.model or (member(cfg.weights) if cfg.weights in FAMILY else None)  # a known architecture needs no weights
    if model is not None:  # an architecture only: never loads weights
        card = member_card(model)
        towers = [member_summary(model, tower, args.depth) for tower in checks.TOWERS]
    else:
        zs = _load(args, cfg)
        card = config_card(zs.loaded)
        towers = [zs.inside.tower_summary(tower, args.depth) for tower in checks.TOWERS]
    if args.json:
        cols = ("layer", "depth", "output_shape", "parameters", "mult_adds", "flops")
        return _emit("architecture", card=card, towers=[
            {"tower": s.tower, "depth": s.depth, "parameters": s.total_params, "mult_adds": s.total_mult_adds,
             "flops": s.total_flops, "attention_flops": s.attention_flops,
             "layers": [dict(zip(cols, (row[0].replace(INDENT, "  ").strip(), *row[1:]))) for row in s.rows]}
            for s in towers])
    v, t, p = card["vision"], card["text"], card["parameters"]
    print(f"Weights: {card['weights']}; device {card['device']}, {card['dtype']}")
    print(f"Embedding dim {card['embed_dim']}")
    grid = (f"{v['patch_embedding']}, {v['input_resolution']}px -> {v['grid']} patches + class token"
            if "patch_embedding" in v else f"ResNet stem, {v['input_resolution']}px -> {v['grid']} grid + mean token")
    print(f"Vision: width {v['width']}, {v['layers']} layers, {v['heads']} heads, {grid} = {v['tokens']} tokens")
    print(f"Text:   width {t['width']}, {t['layers']} layers, {t['heads']} heads, context {t['context_length']}, "
          f"vocabulary {t['vocab_size']}")
    print(f"Parameters: {p['total']:,} = {p['total'] / 1e6:.2f}M (vision {p['vision'] / 1e6:.2f}M, text "
          f"{p['text'] / 1e6:.2f}M, logit scale {p['logit_scale']})")
    for s in towers:
        print(f"\n{s.tower} tower:")
        if not args.flops:
            print(s.text)
            continue
        print(f"{'layer':<44s} {'output shape':>16s} {'parameters':>13s} {'mult-adds':>17s} {'FLOPs':>17s}")
        for layer, _, shape, params, macs, flops in s.rows:
            print(f"{layer.replace(INDENT, '  '):<44s} {shape:>16s} {params:>13,} {macs:>17,} {flops:>17,}")
        print(f"torchinfo: {s.total_mult_adds:,} mult-adds. FlopCounterMode: {s.total_flops:,} FLOPs = 2 x "
              f"{s.total_flops // 2:,} multiply-adds, of which {s.attention_flops // 2:,} inside attention (one fused "
              f"function: torchinfo's total leaves them out) and {s.rest_mult_adds:+,} the rest (bare matmuls "
              "outside any module, less the biases, norms and lookups only torchinfo counts).")
    return 0


def _progress_bar(desc: str):
    """A tqdm bar on stderr, and the function that moves it along a run's steps."""
    from tqdm import tqdm

    bar = tqdm(total=0, desc=desc, unit="img", file=sys.stderr)

    def update(step: Progress) -> None:  # a ProgressFn
        bar.total, bar.n = step.total, step.done
        bar.set_postfix_str(str(step.what), refresh=False)
        bar.refresh()

    return bar, update


def _run_with_bar(steps, desc: str) -> Report:
    """Render a run's steps as a progress bar; its Report (a Refusal when it stopped)."""
    bar, update = _progress_bar(desc)
    with bar:
        for step in steps:
            if isinstance(step, Progress):
                update(step)
            elif step.stopped is not None:
                raise Refusal("cli_stopped", step.stopped)
            else:
                return step
    raise RuntimeError("the run ended without a report")


def _fill_with_bar(zs, data, indices: list[int], args: argparse.Namespace) -> int:
    """Encode the images of `indices` the store lacks (the service's one loop), with a bar; how many were new."""
    from tqdm import tqdm

    todo, done = len(zs.cifar_store(len(data)).missing(indices)), 0
    with tqdm(total=todo, desc="CIFAR-100 features", unit="img", file=sys.stderr, disable=not todo) as bar:
        for done in zs.fill_store(data, indices, batch_size=args.batch_size, workers=max(0, args.workers)):
            bar.update(done - bar.n)
    return done


def cmd_search(args: argparse.Namespace, cfg: settings_mod.Settings) -> int:
    from .io.figures import contact_sheet
    from .serving.runtime import speed_up
    from .tasks.search import search_cifar

    if args.collection is not None:
        return _search_collection(args, cfg)

    query = SearchQuery.of(args.query, args.negative, raw=args.raw,
                           has_image=args.image is not None or args.index is not None)  # checked before any loading
    picture = open_image(args.image) if args.image is not None else None
    data = open_cifar100(cfg.data_root, download=cfg.allow_download)
    zs = _load(args, cfg)
    speed_up(zs, cfg)  # the parity-checked image encoder, and the saved features: the index, when there is one
    if _fill_with_bar(zs, data, list(range(len(data))), args):
        zs.cifar.save(zs.features_path(cfg.cache_dir))  # the next search starts from here, random weights too
    if picture is not None:
        feature = zs.image_features([picture])[0]
    elif args.index is not None:
        feature = zs.cifar_feature(args.index, data.image(args.index), len(data))
    else:
        feature = None
    result = search_cifar(zs, data, query, args.top_k, feature)
    if args.sheet is not None:
        contact_sheet([data.image(h.index) for h in result.hits],
                      [f"#{h.index} {h.label} {h.cosine:.3f}" for h in result.hits]).save(args.sheet)
    if args.json:
        return _emit("search", weights=zs.loaded.info.as_json(), query=query.prompt,
                     negative=query.negative_prompt, like=str(args.image) if args.image else args.index,
                     searched=result.covered, results=result.rows(), sheet=str(args.sheet) if args.sheet else None)
    print(f"Weights: {zs.loaded.info.label}; {result.covered:,} CIFAR-100 test images searched")
    what = query.prompt or "(no text)"
    print(f"Query: {what}" + (f"; not: {query.negative_prompt}" if query.negative else "")
          + (f"; like: {args.image or f'#{args.index}'}" if feature is not None else ""))
    print(f"\n{'rank':>4}  {'index':>5}  {'class':<16} cosine")
    for rank, h in enumerate(result.hits, start=1):
        print(f"{rank:>4}  {h.index:>5}  {h.label:<16} {h.cosine:.4f}")
    return _search_footer(args, zs)


def _search_footer(args: argparse.Namespace, zs) -> int:
    """The end of a search's text output: where the contact sheet went, and what the weights are."""
    if args.sheet is not None:
        print(f"\nContact sheet: {args.sheet}")
    if note := _weights_note(zs.loaded.info):
        print(f"\n{note}")
    return 0


def _search_collection(args: argparse.Namespace, cfg: settings_mod.Settings) -> int:
    """`search --collection DIR "query"`: a bulk run's embeddings, searched with the same weights' text features."""
    from .core.search import nearest
    from .io.figures import contact_sheet
    from .tasks.bulk import BulkIndex
    from .tasks.search import query_feature

    query = SearchQuery.of(args.query, args.negative, raw=args.raw)  # by text: --image, --index exclude it
    zs = _load(args, cfg)
    index = BulkIndex.open(args.collection, zs.loaded.info.identity)
    rows, cosines = nearest(index.features, query_feature(zs, query), args.top_k)
    hits = [{"rank": r + 1, "image_path": index.paths[i], "cosine": c} for r, (i, c) in enumerate(zip(rows, cosines))]
    if args.sheet is not None:
        contact_sheet([_thumbnail(h["image_path"]) for h in hits],
                      [f"{h['rank']}. {Path(h['image_path']).name} {h['cosine']:.3f}" for h in hits]).save(args.sheet)
    if args.json:
        return _emit("search", weights=zs.loaded.info.as_json(), query=query.prompt,
                     negative=query.negative_prompt, collection=str(args.collection), searched=len(index.paths),
                     results=hits, sheet=str(args.sheet) if args.sheet else None)
    print(f"Weights: {zs.loaded.info.label}; {len(index.paths):,} images in {args.collection} searched")
    print(f"Query: {query.prompt or '(no text)'}" + (f"; not: {query.negative_prompt}" if query.negative else ""))
    print(f"\n{'rank':>4}  cosine  image")
    for h in hits:
        print(f"{h['rank']:>4}  {h['cosine']:.4f}  {h['image_path']}")
    return _search_footer(args, zs)


def _thumbnail(path: str):
    """A found image for the contact sheet: the file, or a grey square when it cannot be read now (moved, or a
    webdataset member)."""
    from PIL import Image

    try:
        return open_image(path, fit=224)
    except (Refusal, OSError):
        return Image.new("RGB", (224, 224), "grey")


def cmd_bulk(args: argparse.Namespace, cfg: settings_mod.Settings) -> int:
    """Classify (and embed) a whole collection into `--collection`: local, or on Ray Data with `--engine ray`."""
    from tqdm import tqdm

    from .tasks.bulk import BulkSettings, list_inputs, plan, run_local, todo

    label_set = _label_set(args)  # checked before anything is read or loaded
    if args.folder is None and args.table is None and not args.shards:
        raise Refusal("cli_reason", "give the images: --folder DIR, --table FILE or --shards A.tar [B.tar ...]")
    items = list_inputs(args.folder, args.table, args.shards)
    zs = _load(args, cfg, batch_work=True)
    settings = BulkSettings(label_set, args.top_k, args.embeddings, zs.loaded.info.identity, args.partition_size,
                            _answering(args, zs, label_set))
    out = args.collection
    left = sum(len(p.items) for p in todo(out, plan(items, settings))) if out.is_dir() else len(items)
    with tqdm(total=left, desc=f"bulk ({args.engine})", unit="img", file=sys.stderr, disable=not left) as bar:
        moved = lambda step: bar.update(step.done - bar.n)  # noqa: E731
        if args.engine == "ray":  # the bar moves a partition at a time (each is written as soon as it is whole)
            from .tasks.bulk_ray import run_ray
            report = run_ray(zs, cfg, out, items, settings, address=args.address, actors=args.actors,
                             batch_size=args.batch_size, progress=moved)
        else:
            report = run_local(zs, out, items, settings, progress=moved)
    if args.json:
        return _emit("bulk", weights=zs.loaded.info.as_json(), collection=str(out), engine=args.engine,
                     images=len(items), partitions=report.partitions, skipped=report.skipped, scored=report.images,
                     errors=report.errors, images_per_s=report.rate if report.images or report.errors else None)
    print(f"Weights: {zs.loaded.info.label}; {len(items):,} images in {report.partitions} partitions "
          f"({report.skipped} already written) -> {out}")
    if report.images or report.errors:
        print(f"This run: {report.images:,} images scored, {report.errors:,} could not be read "
              f"(errors.parquet), {report.rate:.1f} images/s")
    else:
        print("Nothing left to do: every partition was written before.")
    if note := _weights_note(zs.loaded.info):
        print(f"\n{note}")
    return 0


def cmd_features(args: argparse.Namespace, cfg: settings_mod.Settings) -> int:
    data = open_cifar100(cfg.data_root, download=cfg.allow_download)
    zs = _load(args, cfg, batch_work=True)
    out = args.features_file or zs.features_path(cfg.cache_dir)
    _fill_with_bar(zs, data, list(range(args.limit if args.limit is not None else len(data))), args)
    zs.cifar.save(out)
    if args.json:
        return _emit("features", weights=zs.loaded.info.as_json(), features_file=str(out), images=len(zs.cifar))
    print(f"Saved {len(zs.cifar)} image features ({zs.loaded.info.label}) to {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace, cfg: settings_mod.Settings) -> int:
    if args.labelled is not None:
        return _evaluate_labelled(args, cfg)
    if args.templates is not None or args.few_shot:
        raise Refusal("cli_reason", "--templates and --few-shot are for --labelled; --compare picks CIFAR-100's "
                                    "settings")
    data = open_cifar100(cfg.data_root, download=cfg.allow_download)
    if args.all:
        ev = Evaluation("all", templates=args.compare, spelling=args.spelling)
    elif args.per_class is not None:
        ev = Evaluation("per-class", args.per_class, args.seed, args.compare, args.spelling)
    else:
        ev = Evaluation("first", args.limit if args.limit is not None else min(1000, len(data)), templates=args.compare,
                        spelling=args.spelling)
    ev.indices(data.targets)  # check the values before loading anything
    zs = _load(args, cfg, batch_work=True)
    report = _run_with_bar(run(zs, data, ev, batch_size=args.batch_size, workers=max(0, args.workers)),
                           "CIFAR-100 images")
    doc = {"weights": zs.loaded.info.as_json(), "results": [r.as_dict() for r in report.results]}
    if args.results:
        args.results.write_text(json.dumps(doc, indent=1))
    if args.json:
        return _emit("evaluate", weights=doc["weights"], images=report.results[0].n, image_encoder=zs.encoder_note,
                     results=[r.summary() for r in report.results], results_file=str(args.results) if args.results
                     else None)
    print(f"Weights: {zs.loaded.info.label}; {report.results[0].n} CIFAR-100 test images; "
          f"image encoder: {zs.encoder_note}")
    print(f"{'setting':>18s} {'top-1':>8s} {'top-5':>8s} {'mean/class':>11s} {'images/s':>9s}")
    for r in report.results:
        print(f"{r.setting:>18s} {100 * r.top1:7.2f}% {100 * r.top5:7.2f}% {100 * r.mean_per_class:10.2f}% "
              f"{r.images_per_s:9.1f}")
    if not zs.loaded.info.trained:
        print("Note: untrained random weights - expect chance level (1% top-1, 5% top-5 over 100 classes).")
    elif not zs.loaded.info.verified:
        print("Note: an unverified checkpoint (its SHA-256 is no known release): published figures may not apply.")
    if args.results:
        print(f"Wrote {args.results}")
    return 0


def _evaluate_labelled(args: argparse.Namespace, cfg: settings_mod.Settings) -> int:
    """Your labelled images: accuracy (one template vs a template set, and few-shot with --examples), per class,
    ECE before and after the fitted temperature, and the "none of these" threshold."""
    if not args.labelled.exists():
        raise Refusal("labelled_not_zip", str(args.labelled))
    from tqdm import tqdm

    zs = _load(args, cfg, batch_work=True)
    with tqdm(total=0, desc="your labelled images", unit="img", file=sys.stderr) as bar:
        def progress(step: Progress) -> None:
            bar.total = step.total
            bar.update(step.done - bar.n)
        data = read_labelled(zs, args.labelled, progress)
    template_set = args.templates or "cifar18"
    report = evaluate_labelled(zs, data, TEMPLATE_SETS[template_set].items, examples=args.few_shot)
    table = args.results.with_name(args.results.stem + "-images.csv") if args.results else None  # never the JSON's
    if args.results:
        args.results.write_text(json.dumps(report.as_dict(), indent=1, ensure_ascii=False))
        rows = report.rows(data.names)
        with open(table, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()  # a cell that a spreadsheet would take for a formula is defused
            writer.writerows({k: "'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r") else v
                              for k, v in row.items()} for row in rows)
    if args.json:
        return _emit("evaluate", weights=zs.loaded.info.as_json(), labelled=str(args.labelled),
                     templates=template_set, report=report.as_dict(),
                     results_file=str(args.results) if args.results else None)
    print(f"Weights: {zs.loaded.info.label}; {len(data.names)} images, {len(data.classes)} classes; "
          f"{len(report.scored)} scored")
    top5 = report.top5_means_something  # with 5 classes or fewer, top-5 is 100% whatever the model
    print(f"{'setting':>26s} {'top-1 accuracy':>15s}" + (f" {'top-5':>8s}" if top5 else ""))
    for a in report.settings:
        print(f"{a.setting:>26s} {100 * a.top1:14.2f}%" + (f" {100 * a.top5:7.2f}%" if top5 else ""))
    if report.examples:
        print(f"zero-shot vs few-shot on the same images: {100 * report.settings[1].top1:.2f}% vs "
              f"{100 * report.settings[-1].top1:.2f}% top-1 accuracy (Tip-Adapter, weights chosen on the examples "
              f"alone: alpha {report.tip[0]:g}, beta {report.tip[1]:g})")
    print("\nPer class (template set):")
    for name, acc in zip(report.classes, report.settings[1].per_class):
        print(f"  {name:>24s}: {'-' if acc is None else f'{100 * acc:.1f}%'}")
    t = report.threshold
    print(f"\nCalibration: ECE {report.ece:.3f} of softmax(100 cos) (scores are relative to the labels given); a "
          f"temperature fitted on half the images, {report.temperature:.2f}, takes ECE on the other half from "
          f"{report.ece_before:.3f} to {report.ece_after:.3f}.")
    if t is None:
        print(f"No threshold (none of these): {Text(WITHHELD[report.threshold_from])}")
    else:
        where = ("the 'other' images vs the labelled ones" if report.threshold_from == "none-folder"
                 else "right vs wrong answers")
        print(f"Recommended threshold (none of these): cosine {t.cosine:.3f}, from {where}: it keeps "
              f"{100 * t.fits_kept:.1f}% and refuses {100 * t.none_refused:.1f}% (balanced accuracy "
              f"{100 * t.balanced_accuracy:.1f}%). It holds for these labels with the {template_set} "
              f"templates: use it with them (predict --templates {template_set}).")
    if note := _weights_note(zs.loaded.info):
        print(f"\n{note}")
    if args.results:
        print(f"Wrote {args.results} and {table}")
    return 0


def cmd_family(args: argparse.Namespace, cfg: settings_mod.Settings) -> int:
    """Print the CLIP family's table: each member built on the meta device (no weights, no memory), its
    parameters per tower in millions and its FLOPs for one image and one 77-token text (2 x multiply-adds)."""
    from .core.family import profile

    if args.json:
        return _emit("family", weights=cfg.weights, models=[
            {"model": name, "kind": m.kind, "input": m.image_resolution, "patch": m.vision_patch_size,
             "tokens": m.tokens, "width": m.vision_width, "layers": m.layers_text, "image_parameters": p.image_params,
             "text_parameters": p.text_params, "parameters": p.params, "image_flops": p.image_flops,
             "text_flops": p.text_flops} for name, m in FAMILY.items() for p in [profile(m)]])
    print(f"{'model':<15s} {'kind':<6s} {'input':>5s} {'patch':>5s} {'tokens':>6s} {'width':>5s} {'layers':>13s} "
          f"{'image':>9s} {'text':>8s} {'total':>9s} {'image GFLOPs':>12s} {'text GFLOPs':>11s}")
    for name, m in FAMILY.items():
        p = profile(m)
        print(f"{name:<15s} {m.kind:<6s} {m.image_resolution:>5d} {m.vision_patch_size or '-':>5} {m.tokens:>6d} "
              f"{m.vision_width:>5d} {m.layers_text:>13s} {p.image_params / 1e6:>8.2f}M {p.text_params / 1e6:>7.2f}M "
              f"{p.params / 1e6:>8.2f}M {p.image_flops / 1e9:>12.2f} {p.text_flops / 1e9:>11.2f}")
    print(f"\nThis Space has weights for {cfg.weights} only; the rest are architectures, built on PyTorch's meta "
          "device (nothing allocated). FLOPs are 2 x multiply-adds, counted by torch's FlopCounterMode, attention "
          "included.")
    return 0


def cmd_export_onnx(args: argparse.Namespace, cfg: settings_mod.Settings) -> int:
    zs = _load(args, cfg)
    zs.inside.export_onnx(args.onnx)
    if args.json:
        return _emit("export-onnx", weights=zs.loaded.info.as_json(), onnx=str(args.onnx))
    print(f"Exported the vision tower of {zs.loaded.info.label} to {args.onnx}")
    return 0


def cmd_selfcheck(args: argparse.Namespace, cfg: settings_mod.Settings) -> int:
    """The real-weights self-check: the table; exit 0 when all pass, 1 when one fails, 2 (one line) when the
    weights or the data are not the real ones."""
    from .serving.runtime import speed_up
    from .tasks import selfcheck

    zs = _load(args, cfg)
    if reason := selfcheck.not_real_weights(zs.loaded.info):
        raise Refusal("cli_reason", reason)
    speed_up(zs, cfg, stored_features=False)
    data = open_cifar100(cfg.data_root, download=cfg.allow_download)  # downloaded where allowed, then checked
    if reason := selfcheck.not_real_data(cfg.data_root):
        raise Refusal("cli_reason", reason)
    if args.cifar10 and (reason := selfcheck.not_real_data(args.cifar10, selfcheck.CIFAR10_MD5)):
        raise Refusal("cli_reason", reason)
    bar, update = _progress_bar("self-check")
    with bar:
        found = selfcheck.full_checks(zs, data, progress=update,
                                      cifar10=open_cifar10(args.cifar10) if args.cifar10 else None)
    passed = all(c.passed is not False for c in found)
    if args.json:
        _emit("selfcheck", weights=zs.loaded.info.as_json(), passed=passed,
              checks=[dataclasses.asdict(c) for c in found])
    else:
        print(selfcheck.table(found))
    return 0 if passed else 1


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        cfg = _model_settings(args, settings_mod.from_env())  # one Settings: the environment, then the flags
        return args.func(args, cfg)
    except (Refusal, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130

