"""Command line: `python -m clipdemo predict ...` and friends.

Holds: the argparse parser, one function per sub-command, and `main(argv) -> exit code`. Every
expected mistake prints one line `error: ...` on stderr and exits non-zero, never a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from . import cli_more
from . import settings as settings_mod
from .data import TEST_SIZE, DataError, open_cifar100
from .engine import MAX_TOP_K, check_top_k
from .images import ImageError, open_image
from .model import WeightsError
from .presets import CLASS_NAME_SPELLINGS, LABEL_PRESETS, TEMPLATE_SETS
from .evaluate import TEMPLATE_CHOICES
from .prompts import PromptError, build_prompts, clean_labels, clean_templates, parse_label_text

__all__ = ["main", "build_parser"]

log = logging.getLogger("clipdemo")
EXPECTED = (PromptError, WeightsError, DataError, ImageError, ValueError, OSError)


def _index(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 0 <= value < TEST_SIZE:
        raise argparse.ArgumentTypeError(f"{value} is out of range; CIFAR-100 test indices are 0..{TEST_SIZE - 1}")
    return value


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", help="ViT-B/32 (default, downloaded), random, or a checkpoint path "
                                     "(default: $CLIPDEMO_WEIGHTS or ViT-B/32)")
    p.add_argument("--device", help="auto, cpu or cuda (default: $CLIPDEMO_DEVICE or auto)")


def _image_args(p: argparse.ArgumentParser):
    """The image, label and template options `predict` and `explain` share; returns the image group."""
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--index", type=_index, help=f"CIFAR-100 test image index, 0..{TEST_SIZE - 1}")
    src.add_argument("--image", type=Path, help="path to an image file (JPEG, PNG, WebP, GIF, BMP)")
    lab = p.add_mutually_exclusive_group()
    lab.add_argument("--labels", help='comma-separated labels, e.g. "cat,dog,car"')
    lab.add_argument("--labels-file", type=Path, help="a text file, one label per line")
    lab.add_argument("--preset", choices=list(LABEL_PRESETS), default="cifar100", help="label preset (default cifar100)")
    tpl = p.add_mutually_exclusive_group()
    tpl.add_argument("--template", help='one prompt template with {} for the label, e.g. "a photo of a {}"')
    tpl.add_argument("--templates", choices=list(TEMPLATE_SETS), default="single", help="template set (default single)")
    _model_args(p)
    return src


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m clipdemo", description="OpenAI CLIP zero-shot classification.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("predict", help="classify a CIFAR-100 test image or an image file")
    src = _image_args(p)
    src.add_argument("--images", help="a folder of images (or zips of images), or a glob: up to 64 images")
    p.add_argument("--top-k", type=int, default=5, help=f"how many labels to show, 1..{MAX_TOP_K} (default 5)")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=cmd_predict)

    r = sub.add_parser("explain", help="why an image matched a label: relevancy over its patches and words")
    _image_args(r)
    r.add_argument("--label", help="the label to explain (default: the top-1 label)")
    r.add_argument("--versus", help="a second label: the map shows where the first one's relevancy exceeds it")
    r.add_argument("--out", type=Path, help="write the relevancy overlay here (PNG)")
    r.set_defaults(func=lambda args, cfg: cli_more.cmd_explain(args, *_subject(args, cfg), _labels(args),
                                                               _templates(args), _load(args, cfg)))

    a = sub.add_parser("architecture", help="print the configuration and torchinfo summaries of both towers")
    a.add_argument("--depth", type=int, default=2, help="summary depth, 1..4 (default 2)")
    _model_args(a)
    a.set_defaults(func=cmd_architecture)

    f = sub.add_parser("features", help="encode the CIFAR-100 test split into a features file the app loads")
    f.add_argument("--out", type=Path, help="output file (default: the cache path the app looks in)")
    f.add_argument("--limit", type=int, help="only the first N test images (default: all 10,000)")
    f.add_argument("--batch-size", type=int, default=64)
    f.add_argument("--workers", type=int, default=0,
                   help="preprocessing worker processes (default 0: on 2 vCPUs the model already uses both)")
    _model_args(f)
    f.set_defaults(func=cmd_features)

    e = sub.add_parser("evaluate", help="zero-shot accuracy on the CIFAR-100 test split")
    subset = e.add_mutually_exclusive_group()
    subset.add_argument("--limit", type=int, help="the first N test images (default 1000)")
    subset.add_argument("--per-class", type=int, help="a seeded stratified sample of K images per class")
    subset.add_argument("--all", action="store_true", help="all 10,000 test images")
    e.add_argument("--seed", type=int, default=0, help="seed of the stratified sample")
    e.add_argument("--templates", choices=list(TEMPLATE_CHOICES), default="both")
    e.add_argument("--spelling", choices=list(CLASS_NAME_SPELLINGS), default="cifar100",
                   help="class names: torchvision's (default) or the CLIP paper's")
    e.add_argument("--batch-size", type=int, default=64)
    e.add_argument("--workers", type=int, default=0,
                   help="preprocessing worker processes (default 0: on 2 vCPUs the model already uses both)")
    e.add_argument("--out", type=Path, help="write the full results (per class, per image) as JSON")
    _model_args(e)
    e.set_defaults(func=cmd_evaluate)

    x = sub.add_parser("export-onnx", help="export the vision tower to ONNX (the app does this by itself)")
    x.add_argument("--out", type=Path, required=True)
    _model_args(x)
    x.set_defaults(func=cmd_export_onnx)

    c = sub.add_parser("selfcheck", help="check the real ViT-B/32 on the real CIFAR-100 against the published figures")
    c.add_argument("--cifar10", type=Path, help="a folder holding cifar-10-batches-py/ (optional check)")
    _model_args(c)
    c.set_defaults(func=lambda args, cfg: cli_more.cmd_selfcheck(args, cfg, _load(args, cfg, batch_work=True)))
    return parser


def _labels(args: argparse.Namespace) -> tuple[str, ...]:
    if args.labels is not None:
        items = parse_label_text(args.labels)
    elif args.labels_file is not None:
        try:
            text = args.labels_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PromptError(f"Cannot read labels file {args.labels_file}: {exc}") from None
        items = parse_label_text(text)
    else:
        return LABEL_PRESETS[args.preset].labels
    return clean_labels(items, duplicates="error").labels


def _templates(args: argparse.Namespace) -> tuple[str, ...]:
    if args.template is not None:
        return clean_templates([args.template])
    return TEMPLATE_SETS[args.templates].templates


def _load(args: argparse.Namespace, cfg: settings_mod.Settings, *, batch_work: bool = False):
    """The model service for `--weights`/`--device`; for batch work also the (parity-checked) image backend."""
    from . import startup

    cfg = dataclasses.replace(cfg, weights=args.weights or cfg.weights, device=args.device or cfg.device)
    zs = startup.open_service(cfg)
    if batch_work:
        startup.speed_up(zs, cfg, stored_features=False)
    return zs


def _subject(args: argparse.Namespace, cfg: settings_mod.Settings):
    """(image, what it is, its true class or None) for `--image` or `--index`."""
    if args.image is not None:
        return open_image(args.image), str(args.image), None
    data = open_cifar100(cfg.data_root, download=cfg.allow_download)
    return data.image(args.index), f"CIFAR-100 test image #{args.index}", data.classes[data.target(args.index)]


def cmd_predict(args: argparse.Namespace, cfg: settings_mod.Settings) -> int:
    check_top_k(args.top_k)
    labels, templates = _labels(args), _templates(args)
    build_prompts(labels, templates)  # fail on a too-long prompt before loading anything
    if args.images is not None:  # a batch (BatchError is a ValueError: one line, exit 2)
        return cli_more.run_batch(args.images, _load(args, cfg), labels, templates, args.top_k, args.json)
    image, what, true_label = _subject(args, cfg)
    zs = _load(args, cfg)
    pred = zs.predict(image, labels, templates, k=args.top_k, true_label=true_label)
    if args.json:
        print(json.dumps({**pred.as_dict(), "image": what, "device": str(zs.device),
                          "dtype": str(zs.dtype).removeprefix("torch.")}))
        return 0
    print(f"Weights: {pred.weights.label}; device {zs.device}, {str(zs.dtype).removeprefix('torch.')}")
    print(f"Image: {what}" + (f" (true class: {true_label})" if true_label else ""))
    print("\nTop predictions:\n")
    print("\n".join(pred.lines()))
    if true_label is not None and pred.true_rank is not None:
        print(f"\nTrue class {true_label!r}: rank {pred.true_rank} of {len(labels)}, {100 * pred.true_prob:.2f}%")
    if not pred.weights.trained:
        print("\nNote: untrained random weights - these predictions are meaningless.")
    elif not pred.weights.verified:
        print("\nNote: an unverified checkpoint (its SHA-256 is no known release).")
    return 0


def cmd_architecture(args: argparse.Namespace, cfg: settings_mod.Settings) -> int:
    if not 1 <= args.depth <= 4:
        raise ValueError(f"--depth must be between 1 and 4, not {args.depth}.")
    zs = _load(args, cfg)
    card = zs.config_card()
    v, t, p = card["vision"], card["text"], card["parameters"]
    print(f"Weights: {card['weights']}; device {card['device']}, {card['dtype']}")
    print(f"Embedding dim {card['embed_dim']}")
    print(f"Vision: width {v['width']}, {v['layers']} layers, {v['heads']} heads, {v['patch_embedding']}, "
          f"{v['input_resolution']}px -> {v['grid']} patches + class token = {v['tokens']} tokens")
    print(f"Text:   width {t['width']}, {t['layers']} layers, {t['heads']} heads, context {t['context_length']}, "
          f"vocabulary {t['vocab_size']}")
    print(f"Parameters: {p['total']:,} (vision {p['vision']:,}, text {p['text']:,}, logit scale {p['logit_scale']})")
    for tower in ("visual", "text"):
        print(f"\n{tower} tower:\n{zs.tower_summary(tower, args.depth).text}")
    return 0


def cmd_features(args: argparse.Namespace, cfg: settings_mod.Settings) -> int:
    from .evaluate import encode_split
    from .features import default_path

    if args.limit is not None and not 1 <= args.limit <= TEST_SIZE:
        raise ValueError(f"--limit must be between 1 and {TEST_SIZE}, not {args.limit}.")
    if not 1 <= args.batch_size <= 1024:
        raise ValueError(f"--batch-size must be between 1 and 1024, not {args.batch_size}.")
    data = open_cifar100(cfg.data_root, download=cfg.allow_download)
    zs = _load(args, cfg, batch_work=True)
    out = args.out or default_path(cfg.cache_dir, zs.info.sha256)
    if out is None:
        raise ValueError("Random weights have no SHA-256 to key a features file by; pass --out PATH.")
    indices = list(range(args.limit or len(data)))
    bar, update = cli_more.tqdm_progress("CIFAR-100 features")
    with bar:
        encode_split(zs, data, indices, batch_size=args.batch_size, workers=max(0, args.workers), progress=update)
    zs.cifar.save(out)
    print(f"Saved {len(zs.cifar)} image features ({zs.info.label}) to {out}")
    return 0


def cmd_evaluate(args: argparse.Namespace, cfg: settings_mod.Settings) -> int:
    from .evaluate import class_names, evaluate, select_indices

    if not 1 <= args.batch_size <= 1024:
        raise ValueError(f"--batch-size must be between 1 and 1024, not {args.batch_size}.")
    data = open_cifar100(cfg.data_root, download=cfg.allow_download)
    targets = list(data.dataset.targets)
    if args.all:
        indices = select_indices(targets, "all")
    elif args.per_class is not None:
        indices = select_indices(targets, "per-class", args.per_class, args.seed)
    else:
        indices = select_indices(targets, "first", args.limit or min(1000, len(data)))
    settings = TEMPLATE_CHOICES[args.templates]
    zs = _load(args, cfg, batch_work=True)
    bar, update = cli_more.tqdm_progress("CIFAR-100 images")
    with bar:
        results = evaluate(zs, data, indices, settings, classes=class_names(args.spelling),
                           batch_size=args.batch_size, workers=max(0, args.workers), progress=update)
    print(f"Weights: {zs.info.label}; {len(indices)} CIFAR-100 test images; image encoder: {zs.encoder_note}")
    print(f"{'setting':>10s} {'top-1':>8s} {'top-5':>8s} {'mean/class':>11s} {'images/s':>9s}")
    for r in results:
        print(f"{r.setting:>10s} {100 * r.top1:7.2f}% {100 * r.top5:7.2f}% {100 * r.mean_per_class:10.2f}% "
              f"{r.images_per_s:9.1f}")
    if not zs.info.trained:
        print("Note: untrained random weights - expect chance level (1% top-1, 5% top-5 over 100 classes).")
    elif not zs.info.verified:
        print("Note: an unverified checkpoint (its SHA-256 is no known release): published figures may not apply.")
    if args.out:
        doc = {"weights": {"name": zs.info.name, "sha256": zs.info.sha256, "trained": zs.info.trained,
                           "verified": zs.info.verified},
               "results": [r.as_dict() for r in results]}
        args.out.write_text(json.dumps(doc, indent=1))
        print(f"Wrote {args.out}")
    return 0


def cmd_export_onnx(args: argparse.Namespace, cfg: settings_mod.Settings) -> int:
    zs = _load(args, cfg)
    zs.export_onnx(args.out)
    print(f"Exported the vision tower of {zs.info.label} to {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    try:
        cfg = settings_mod.from_env()
        return args.func(args, cfg)
    except EXPECTED as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
