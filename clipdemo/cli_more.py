"""CLI commands beyond the single prediction: `predict --images DIR_OR_GLOB`, `selfcheck` and `explain`.

Holds `image_paths` (a folder's images, or a glob's matches, sorted; zips included), `run_batch` (the
batch as a table, or `--json`; reading, limits and classification are `clipdemo.batch`'s),
`cmd_selfcheck` (the real-weights self-check, `clipdemo.selfcheck`), `cmd_explain` (a relevancy map as a
grid, the prompt's words, and an overlay file) and `tqdm_progress` (a progress bar on stderr as the
core's `ProgressFn`).
"""

from __future__ import annotations

import glob
import json
import sys
from pathlib import Path

from .batch import BatchError, classify_batch, read_batch
from .images import ALLOWED_FORMATS
from .engine import LOGIT_SCALE
from .inside import prompt_words
from .prompts import fill

__all__ = ["image_paths", "run_batch", "cmd_selfcheck", "tqdm_progress", "cmd_explain"]

SUFFIXES = {".zip", ".jpg", *(f".{fmt.lower()}" for fmt in ALLOWED_FORMATS)}  # JPEG's files are .jpg or .jpeg


def image_paths(spec: str) -> list[Path]:
    """The files `spec` names: a folder's image files (and zips), or a glob's matches; BatchError if none."""
    folder = Path(spec).expanduser()
    if folder.is_dir():
        paths = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)
    else:
        paths = sorted(Path(p) for p in glob.glob(str(folder)) if Path(p).is_file())
    if not paths:
        raise BatchError(f"No images found at {spec!r}: give a folder of images or a glob such as 'photos/*.jpg'.")
    return paths


def run_batch(spec: str, zs, labels: tuple[str, ...], templates: tuple[str, ...], top_k: int, as_json: bool) -> int:
    """Classify the batch and print it; returns the exit code."""
    items = read_batch(image_paths(spec), fit=zs.loaded.config.image_resolution)
    done = classify_batch(zs, items, labels, templates, top_k)
    if as_json:
        print(json.dumps({"weights": zs.info.label, "images": [{"image": it.name, "predictions": it.predictions()}
                                                              for it in done]}, ensure_ascii=False))
        return 0
    print(f"Weights: {zs.info.label}; {len(done)} images, {len(labels)} labels")
    width = max(len(it.name) for it in done)
    for it in done:
        print(f"{it.name:<{width}}  " + ", ".join(f"{lab} {100 * p:.2f}%" for lab, p, _ in it.top))
    if not zs.info.trained:
        print("\nNote: untrained random weights - these predictions are meaningless.")
    return 0


def cmd_selfcheck(args, cfg, zs) -> int:
    """`python -m clipdemo selfcheck`: the table, exit 0 when all pass, 1 when one fails; ValueError (exit 2,
    one line) when the weights or the data are not the real ones."""
    from . import selfcheck
    from .data import open_cifar10, open_cifar100

    from .references import CIFAR10_MD5

    if reason := selfcheck.not_real_weights(zs.info):
        raise ValueError(reason)
    data = open_cifar100(cfg.data_root, download=cfg.allow_download)  # downloaded where allowed, then checked
    if reason := selfcheck.not_real_data(cfg.data_root):
        raise ValueError(reason)
    if args.cifar10 and (reason := selfcheck.not_real_data(args.cifar10, CIFAR10_MD5)):
        raise ValueError(reason)
    bar, update = tqdm_progress("self-check")
    checks = selfcheck.full_checks(zs, data, progress=update, cifar10=open_cifar10(args.cifar10) if args.cifar10 else None)
    bar.close()
    print(selfcheck.table(checks))
    return 0 if all(c.passed is not False for c in checks) else 1


def tqdm_progress(desc: str):
    """A tqdm bar on stderr, and the `(done, total, what)` callback that drives it."""
    from tqdm import tqdm

    bar = tqdm(total=0, desc=desc, unit="img", file=sys.stderr)

    def update(done: int, total: int, what: str) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(what.split("(")[-1].rstrip(")"), refresh=False)
        bar.refresh()

    return bar, update


def cmd_explain(args, image, what: str, true_label: str | None, labels: tuple[str, ...], templates: tuple[str, ...],
                zs) -> int:
    """Print why `image` matched a label (its relevancy over the patches as a grid, and over the prompt's
    words) and write the overlay to `--out`; returns the exit code."""
    from . import figures

    label = args.label or zs.predict(image, labels, templates, k=1).top[0][0]
    key = ("cli", what)
    ex = zs.explain(image, key, label, labels, templates, args.versus)
    amap = ex.image  # [grid, grid]
    words = prompt_words(fill(templates[0], label))
    print(f"Weights: {zs.info.label}")
    print(f"Image: {what}" + (f" (true class: {true_label})" if true_label else ""))
    versus = f", where its relevancy exceeds {args.versus!r}'s" if args.versus else ""
    print(f"Label: {label!r}{versus} (logit {ex.logit:.2f} = {LOGIT_SCALE:.0f} x cos {ex.logit / LOGIT_SCALE:.4f})")
    print(f"\nRelevancy over the {amap.shape[0]}x{amap.shape[1]} patches (row by row, top left first):")
    for row in amap.tolist():
        print("  " + " ".join(f"{v:6.3f}" for v in row))
    print(f"\nRelevancy of the words of {fill(templates[0], label)!r}:")
    print("  " + "  ".join(f"{w} {v:.3f}" for w, v in zip(words, ex.words.tolist())))
    if args.out:
        figures.attention_overlay(figures.overlay_base(figures.input_view(zs.pixels(image), min_size=0)),
                                  amap).save(args.out)
        print(f"\nOverlay written to {args.out}")
    if not zs.info.trained:
        print("\nNote: untrained random weights - this map is meaningless.")
    return 0
