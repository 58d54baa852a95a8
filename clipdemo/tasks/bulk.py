"""A whole collection, classified and embedded (issue #28): `python -m clipdemo bulk`, on this machine or on Ray Data.

What both engines share, so that they differ only in who runs it. The output is clip-retrieval's layout
(docs/scale.md). A partition is keyed by its inputs and the settings, and its predictions file is written last, by
rename: a partition whose predictions file is there is whole, and a rerun skips it and leaves every file as it is.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tarfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..core.labels import LabelSet
from ..core.words import Progress, ProgressFn, Refusal, Text
from ..core.zeroshot import Prediction
from ..io.images import IMAGE_SUFFIXES, ImageError, open_image
from ..serving.service import Priority
from .classify import PLAIN, Answering, FewShot, answer

__all__ = ["BulkError", "Item", "list_inputs", "read_bytes", "decode_item", "BulkSettings", "Partition", "plan",
           "Scored", "classify_images", "prediction_columns", "write_partition", "partition_done", "Manifest", "todo", "begin",
           "run_local", "BulkReport", "BulkIndex", "PARTITION_SIZE"]

PARTITION_SIZE = 10_000  # images per partition: one predictions file, one embeddings shard (~10 MB at D=512)
MANIFEST = "bulk.json"
FORMAT = "clipdemo-bulk/1"


class BulkError(Refusal):
    """A bulk run cannot start or go on: no inputs, an OUT that holds another run, a missing optional package."""


def _arrow_read(read: Callable, path: Path):
    """A pyarrow read of `path`; a file pyarrow cannot read is a BulkError naming it, not a traceback."""
    pa = _pyarrow()
    try:
        return read(path)
    except (pa.ArrowException, OSError) as exc:
        raise BulkError("bulk_unreadable", str(path), str(exc).strip().splitlines()[0][:200] if str(exc) else
                        type(exc).__name__) from None


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise BulkError("bulk_needs", "pyarrow", "pip install pyarrow") from None
    return pyarrow


# -- inputs -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, order=True)
class Item:
    """One image of the collection: `key` is what the outputs call it (the file's absolute path, or
    `shard.tar/member` for a webdataset member); `source` the file to read; `member` the tar member, if any; `size`
    its bytes (part of the partition's key, so a file whose size changed is a new input)."""

    key: str
    source: str
    member: str = ""
    size: int = 0


def _images_in(folder: Path) -> list[Item]:
    paths = sorted(p for p in folder.resolve().rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return [Item(str(p), str(p), "", p.stat().st_size) for p in paths]


def _paths_in(table: Path) -> list[Item]:
    """A parquet or CSV table of paths: its `path` (or `image_path`) column, else its first; a CSV without either
    header is a plain list, one path a line. Relative paths are read from the table's folder."""
    if table.suffix.lower() == ".parquet":
        t = _arrow_read(_pyarrow().parquet.read_table, table)
        names = t.column_names
        column = next((c for c in ("path", "image_path") if c in names), names[0] if names else None)
        values = t.column(column).to_pylist() if column is not None else []
    else:
        try:
            with open(table, newline="", encoding="utf-8") as f:
                rows = [r for r in csv.reader(f) if r]
        except (OSError, UnicodeDecodeError, csv.Error) as exc:
            raise BulkError("bulk_unreadable", str(table), exc) from None
        head = [c.strip() for c in rows[0]] if rows else []
        column = next((head.index(c) for c in ("path", "image_path") if c in head), None)
        values = [r[column or 0] if len(r) > (column or 0) else "" for r in rows[1 if column is not None else 0:]]
    items = []
    for raw in values:
        if raw is None or not str(raw).strip():
            continue
        p = Path(str(raw).strip()).expanduser()
        p = (p if p.is_absolute() else table.parent / p).resolve()
        items.append(Item(str(p), str(p), "", p.stat().st_size if p.is_file() else 0))
    return items


def _members_of(shard: Path) -> list[Item]:
    """A webdataset shard's image members (`<key>.<ext>`, any of IMAGE_SUFFIXES), in the tar's order."""
    try:
        with tarfile.open(shard) as tar:
            shard = shard.resolve()
            return [Item(f"{shard}/{m.name}", str(shard), m.name, m.size) for m in tar.getmembers()
                    if m.isfile() and Path(m.name).suffix.lower() in IMAGE_SUFFIXES]
    except (tarfile.TarError, OSError) as exc:
        raise BulkError("bulk_bad_shard", str(shard), exc) from None


def list_inputs(images: Path | None = None, table: Path | None = None, shards: list[Path] | None = None) -> list[Item]:
    """Every image the inputs name, sorted by key (a stable order: partitions are slices of it); BulkError if none."""
    items: list[Item] = []
    if images is not None:
        if not images.is_dir():
            raise BulkError("bulk_not_folder", str(images))
        items += _images_in(images)
    if table is not None:
        items += _paths_in(table)
    for shard in shards or []:
        items += _members_of(shard)
    if not items:
        raise BulkError("bulk_none", ", ".join(str(x) for x in (images, table, *(shards or [])) if x))
    return sorted(set(items))


def read_bytes(item: Item) -> bytes:
    """The item's file bytes (a tar member's for a shard); OSError when it cannot be read."""
    if not item.member:
        return Path(item.source).read_bytes()
    try:
        with tarfile.open(item.source) as tar:
            f = tar.extractfile(item.member)
            if f is None:
                raise OSError(f"{item.member} is not a file in {item.source}")
            return f.read()
    except tarfile.TarError as exc:
        raise OSError(str(exc)) from None


def decode_item(item: Item, fit: int) -> tuple[Image.Image | None, str]:
    """(the RGB image the app makes of the item's bytes, reduced to what the model keeps: `open_image`, "") or
    (None, the reason it could not be read): never raises for a bad file."""
    try:
        return open_image(read_bytes(item), fit=fit), ""
    except ImageError as exc:
        return None, str(exc)
    except OSError as exc:
        return None, f"could not read it: {exc}"


# -- settings and partitions ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BulkSettings:
    """What a run computes; every field is part of each partition's key."""

    label_set: LabelSet  # the labels, their templates and the text tower that reads them
    top_k: int
    embeddings: bool
    weights: str  # the weights' identity (WeightsInfo.identity): embeddings of other weights are other numbers
    partition_size: int = PARTITION_SIZE
    answering: Answering = PLAIN  # threshold, few-shot examples and temperature, as `predict` and the API take them

    @property
    def threshold(self) -> float | None:
        return self.answering.threshold

    def as_json(self) -> dict:
        """The settings as plain values: the label set as its labels, templates and text tower; the few-shot
        examples as label -> [count, digest of their features] (other pictures, another key)."""
        ls, a = self.label_set, self.answering
        examples = {label: [len(f), hashlib.sha256(f.float().cpu().numpy().tobytes()).hexdigest()[:16]]
                    for label, f in sorted(a.examples.items())}
        return {"labels": list(ls.labels), "templates": list(ls.templates), "encoder": ls.encoder,
                "top_k": self.top_k, "threshold": a.threshold, "temperature": a.temperature, "examples": examples,
                "embeddings": self.embeddings, "weights": self.weights, "partition_size": self.partition_size}


@dataclass(frozen=True)
class Partition:
    """A slice of the collection: one predictions file, one embeddings shard, one metadata and one errors file."""

    number: int
    items: tuple[Item, ...]
    fingerprint: str  # sha256 of the settings and the partition's items (key and size)


def plan(items: list[Item], settings: BulkSettings) -> list[Partition]:
    """The items in partitions of `settings.partition_size`, in order."""
    common = json.dumps(settings.as_json(), sort_keys=True)
    out = []
    for n, first in enumerate(range(0, len(items), settings.partition_size)):
        chunk = tuple(items[first:first + settings.partition_size])
        digest = hashlib.sha256(common.encode())
        for it in chunk:
            digest.update(f"\n{it.key}\t{it.size}".encode())
        out.append(Partition(n, chunk, digest.hexdigest()))
    return out


# -- the model function ---------------------------------------------------------------------------------------------
@dataclass
class Scored:
    """One batch's results: `[B, D]` float32 features (normalised) and each image's top-k."""

    features: np.ndarray
    predictions: list[Prediction]


def classify_images(zs, images: list[Image.Image], text: torch.Tensor, settings: BulkSettings,
                    few_shot: FewShot | None = None) -> Scored:
    """Decoded images -> features and predictions against `text` (`[L, D]`, the label set's features) and
    `few_shot` (the settings' examples, `Answering.few_shot`), both made once by the caller: the one function both
    engines run. The images go through the service in its bulk chunks."""
    feats = zs.image_features(images, Priority.BULK)  # [B, D]
    cosines, probs = answer(feats, text, few_shot, settings.answering.temperature)  # [B, L], [B, L]
    labels, k = settings.label_set.labels, settings.top_k
    preds = [Prediction.of(c, p, labels, k, zs.loaded.info) for c, p in zip(cosines, probs)]
    return Scored(feats.float().cpu().numpy(), preds)


def prediction_columns(preds: list[Prediction], threshold: float | None) -> dict[str, list]:
    """The predictions file's columns (without image_path): labels, scores, cosines best first, and `fits`, whether
    the best label's cosine reaches the threshold (None without one: "none of these" is `fits == False`)."""
    rows = [p.rows(threshold) for p in preds]
    return {"labels": [[r["label"] for r in rs] for rs in rows],
            "scores": [[r["score"] for r in rs] for rs in rows],
            "cosines": [[r["cosine"] for r in rs] for rs in rows],
            "fits": [None if threshold is None else p.fits(threshold) for p in preds]}


# -- the layout ----------------------------------------------------------------------------------------------------
def _name(kind: str, n: int, suffix: str) -> str:
    return f"{kind}_{n:05d}{suffix}"


def _paths(out: Path, n: int) -> dict[str, Path]:
    return {"predictions": out / "predictions" / _name("predictions", n, ".parquet"),
            "embeddings": out / "img_emb" / _name("img_emb", n, ".npy"),
            "metadata": out / "metadata" / _name("metadata", n, ".parquet"),
            "errors": out / "errors.parquet" / _name("errors", n, ".parquet")}


def _write_whole(path: Path, write: Callable[[Path], None]) -> None:
    """`write` to a temporary name beside `path`, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def partition_done(out: Path, partition: Partition) -> bool:
    """Whether `partition` is written: its predictions file is there with this fingerprint. BulkError when it is
    there with another (OUT holds a run of other inputs or settings: never overwritten)."""
    path = _paths(out, partition.number)["predictions"]
    if not path.is_file():
        return False
    meta = _arrow_read(_pyarrow().parquet.read_schema, path).metadata or {}
    if meta.get(b"clipdemo.fingerprint", b"").decode() != partition.fingerprint:
        raise BulkError("bulk_other_run", str(out))
    return True


def write_partition(out: Path, partition: Partition, settings: BulkSettings, keys: list[str], features: np.ndarray,
                    columns: dict[str, list], errors: list[tuple[str, str]]) -> None:
    """One partition's files: the errors, the embeddings (float16) and metadata, then the predictions, last (the
    mark that the partition is whole). `keys` name the rows of `features` (`[n, D]`) and of `columns`
    (`prediction_columns`), in order."""
    pa = _pyarrow()
    paths = _paths(out, partition.number)
    fields = {b"clipdemo.fingerprint": partition.fingerprint.encode(), b"clipdemo.weights": settings.weights.encode()}
    err = pa.table({"image_path": pa.array([k for k, _ in errors], pa.string()),
                    "reason": pa.array([r for _, r in errors], pa.string())})
    _write_whole(paths["errors"], lambda p: pa.parquet.write_table(err, p))
    if settings.embeddings:
        emb = features.astype(np.float16)  # [n, D]

        def save(p: Path) -> None:
            with open(p, "wb") as f:
                np.save(f, emb)
        _write_whole(paths["embeddings"], save)
    meta = pa.table({"image_path": pa.array(keys, pa.string())}).replace_schema_metadata(fields)
    _write_whole(paths["metadata"], lambda p: pa.parquet.write_table(meta, p))
    preds = pa.table({"image_path": pa.array(keys, pa.string()),
                      "labels": pa.array(columns["labels"], pa.list_(pa.string())),
                      "scores": pa.array(columns["scores"], pa.list_(pa.float64())),
                      "cosines": pa.array(columns["cosines"], pa.list_(pa.float64())),
                      "fits": pa.array(columns["fits"], pa.bool_())}).replace_schema_metadata(fields)
    _write_whole(paths["predictions"], lambda p: pa.parquet.write_table(preds, p))


@dataclass(frozen=True)
class Manifest:
    """`bulk.json`: the run's settings, the weights' identity and name, and the embedding width."""

    settings: dict  # BulkSettings.as_json()
    weights_label: str
    embed_dim: int

    def write_or_check(self, out: Path) -> bool:
        """Write it when OUT has none (True); leave it when it says the same (False); BulkError when it holds
        another run."""
        path = out / MANIFEST
        if path.is_file():
            if Manifest.read(out) != self:
                raise BulkError("bulk_other_run", str(out))
            return False
        body = json.dumps({"format": FORMAT, "settings": self.settings,
                           "weights_label": self.weights_label, "embed_dim": self.embed_dim}, indent=1)
        _write_whole(path, lambda p: p.write_text(body + "\n", encoding="utf-8"))
        return True

    @classmethod
    def read(cls, out: Path) -> Manifest:
        try:
            raw = json.loads((out / MANIFEST).read_text(encoding="utf-8"))
            return cls(dict(raw["settings"]), raw["weights_label"], raw["embed_dim"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BulkError("bulk_no_manifest", str(out), exc) from None


# -- the local engine ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BulkReport:
    """What a run did: the partitions planned and skipped, the images scored and refused, and how long it took."""

    partitions: int  # in the plan
    skipped: int  # already written
    images: int  # read and scored this run
    errors: int  # could not be read, this run
    seconds: float

    @property
    def rate(self) -> float:
        return (self.images + self.errors) / self.seconds if self.seconds > 0 else 0.0


def todo(out: Path, partitions: list[Partition]) -> list[Partition]:
    """The partitions not yet written."""
    return [p for p in partitions if not partition_done(out, p)]


def begin(zs, out: Path, items: list[Item], settings: BulkSettings) -> tuple[list[Partition], list[Partition]]:
    """What both engines do first: OUT made, its manifest written or checked (BulkError for another run), and
    (every partition of the plan, those not yet written)."""
    out.mkdir(parents=True, exist_ok=True)
    Manifest(settings.as_json(), str(zs.loaded.info.label), zs.loaded.config.embed_dim).write_or_check(out)
    partitions = plan(items, settings)
    return partitions, todo(out, partitions)


def run_partition(zs, out: Path, partition: Partition, settings: BulkSettings, text: torch.Tensor,
                  few_shot: FewShot | None = None, progress: ProgressFn | None = None,
                  chunk: int = 256) -> tuple[int, int]:
    """Read, decode, score and write one partition, `chunk` images at a time; (images scored, errors)."""
    fit = zs.loaded.config.image_resolution
    keys, feats, preds, errors = [], [], [], []
    for first in range(0, len(partition.items), chunk):
        good, pictures = [], []
        for item in partition.items[first:first + chunk]:
            image, reason = decode_item(item, fit)
            if image is None:
                errors.append((item.key, reason))
            else:
                good.append(item.key)
                pictures.append(image)
        if pictures:
            s = classify_images(zs, pictures, text, settings, few_shot)
            keys += good
            feats.append(s.features)
            preds += s.predictions
        if progress:
            progress(Progress(min(first + chunk, len(partition.items)), len(partition.items), Text("progress_bulk")))
    features = np.concatenate(feats) if feats else np.zeros((0, zs.loaded.config.embed_dim), np.float32)
    write_partition(out, partition, settings, keys, features, prediction_columns(preds, settings.threshold), errors)
    return len(keys), len(errors)


def run_local(zs, out: Path, items: list[Item], settings: BulkSettings,
              progress: ProgressFn | None = None) -> BulkReport:
    """The collection on this machine: the text features once, then each partition not yet written, in order;
    its `Progress` (images done of images to do) as it goes."""
    partitions, left = begin(zs, out, items, settings)
    total, done, scored, errors, started = sum(len(p.items) for p in left), 0, 0, 0, time.perf_counter()
    text = zs.text_features(settings.label_set) if left else None  # [L, D]
    few_shot = settings.answering.few_shot(zs, settings.label_set) if left else None
    for p in left:
        n, e = run_partition(zs, out, p, settings, text, few_shot,
                             (lambda step, base=done: progress(Progress(base + step.done, total, step.what))) if progress else None)
        done += len(p.items)
        scored, errors = scored + n, errors + e
    return BulkReport(len(partitions), len(partitions) - len(left), scored, errors, time.perf_counter() - started)


# -- reading it back -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BulkIndex:
    """A bulk run's embeddings, for search: `[N, D]` float32 (from the float16 shards) and the image path of each row."""

    manifest: Manifest
    features: torch.Tensor
    paths: tuple[str, ...]

    @classmethod
    def open(cls, out: Path, weights: str) -> BulkIndex:
        """The embeddings under `out`; BulkError when there are none, or when they were made with weights other
        than `weights` (an identity): their numbers would mean nothing against this model's text features."""
        manifest = Manifest.read(out)
        if manifest.settings.get("weights") != weights:
            raise BulkError("bulk_other_weights", str(out), manifest.weights_label)
        # a partition is whole once its predictions file is there (a run killed while writing one leaves the rest)
        shards = [s for s in sorted((out / "img_emb").glob("img_emb_*.npy"))
                  if (out / "predictions" / s.name.replace("img_emb", "predictions").replace(".npy", ".parquet")).is_file()]
        if not manifest.settings.get("embeddings") or not shards:
            raise BulkError("bulk_no_embeddings", str(out))
        pq = _pyarrow().parquet
        feats, paths = [], []
        for shard in shards:
            meta = out / "metadata" / shard.name.replace("img_emb", "metadata").replace(".npy", ".parquet")
            rows = _arrow_read(pq.read_table, meta).column("image_path").to_pylist()
            arr = np.load(shard)
            if arr.shape[0] != len(rows):
                raise BulkError("bulk_misaligned", shard.name, arr.shape[0], len(rows))
            feats.append(torch.from_numpy(arr.astype(np.float32)))
            paths += rows
        features = torch.cat(feats)
        return cls(manifest, features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12), tuple(paths))
