"""The bulk run on Ray Data (issue #28): `python -m clipdemo bulk --engine ray [--address ADDR]`.

The local path's functions, distributed: stateless tasks decode, an actor pool holds the model, and the driver writes
each partition with the local writer as soon as its rows are in (Ray's `write_parquet` names files by its blocks, so
it cannot write clip-retrieval's layout). A partition is written whole or not at all and a row that comes back twice
counts once, so a retried task or actor, or a run stopped and started again, loses and duplicates nothing.
`ray` is an optional extra (`pip install "ray[data]"`); the Space never installs it.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.words import Progress, ProgressFn, Text
from .bulk import (BulkError, BulkReport, BulkSettings, Item, Partition, begin, decode_item, prediction_columns,
                   classify_images, write_partition)
from .classify import FewShot

__all__ = ["run_ray", "Scorer", "decode_batch", "PartitionRows"]


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise BulkError("bulk_needs", "ray[data]", "pip install 'ray[data]'") from None
    return ray


def decode_batch(batch: dict[str, np.ndarray], fit: int) -> dict[str, np.ndarray]:
    """Plan rows -> decoded images: `pixels`, each `[h, w, 3]` uint8 (the image `open_image` keeps: at most R on its
    shorter side; a 1 x 1 placeholder when it could not be read) and `error` (the reason, "" when it was read)."""
    pixels, errors = [], []
    for source, member, key, size in zip(batch["source"], batch["member"], batch["key"], batch["size"]):
        image, reason = decode_item(Item(str(key), str(source), str(member), int(size)), fit)
        pixels.append(np.asarray(image, dtype=np.uint8) if image is not None else np.zeros((1, 1, 3), np.uint8))
        errors.append(reason)
    return {"key": batch["key"], "partition": batch["partition"], "position": batch["position"],
            "pixels": _objects(pixels), "error": _objects(errors)}  # images of different shapes: a ragged column


class Scorer:
    """One per actor: the model, loaded as the CLI loads it, scoring batches of decoded images."""

    def __init__(self, cfg, settings: BulkSettings, text: np.ndarray, threads: int, few_shot: FewShot | None = None):
        import torch

        from ..serving.runtime import open_service, speed_up

        cfg = dataclasses.replace(cfg, threads=threads)
        self.zs = open_service(cfg)
        speed_up(self.zs, cfg, stored_features=False)  # the parity-checked backend, as the local path
        self.settings = settings
        self.text = torch.from_numpy(text)  # [L, D], on the CPU: the service hands image features back there
        self.few_shot = few_shot

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ok = [i for i, e in enumerate(batch["error"]) if not e]
        d = self.text.shape[1]
        emb = np.zeros((len(batch["key"]), d), np.float32)  # [B, D]
        empty = {"labels": [[]], "scores": [[]], "cosines": [[]], "fits": [None]}
        cols = {k: v * len(batch["key"]) for k, v in empty.items()}
        if ok:
            pictures = [Image.fromarray(batch["pixels"][i]) for i in ok]
            s = classify_images(self.zs, pictures, self.text, self.settings, self.few_shot)
            got = prediction_columns(s.predictions, self.settings.threshold)
            for j, i in enumerate(ok):
                emb[i] = s.features[j]
                for k in cols:
                    cols[k][i] = got[k][j]
        return {"key": batch["key"], "partition": batch["partition"], "position": batch["position"],
                "error": batch["error"], "embedding": emb, **{k: _objects(v) for k, v in cols.items()}}


def _objects(values: list) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out


class PartitionRows:
    """The scored rows of the partitions under way, gathered as Ray hands them back (in any order), each partition
    written by the local path's writer as soon as all its rows are in, then let go: what is held is bounded by the
    rows in flight, not by the collection. A row that comes twice (a retried batch) counts once."""

    def __init__(self, out: Path, partitions: list[Partition], settings: BulkSettings):
        self.out, self.settings = out, settings
        self.partitions = {p.number: p for p in partitions}
        self.rows: dict[int, dict[int, dict]] = {p.number: {} for p in partitions}  # partition -> position -> row
        self.images = self.errors = 0

    def add(self, batch: dict[str, np.ndarray]) -> list[int]:
        """Take a scored batch; the numbers of the partitions it completed (and that were written)."""
        done = []
        for i in range(len(batch["key"])):
            n, position = int(batch["partition"][i]), int(batch["position"][i])
            if n not in self.rows:  # its partition is written already: a row of a retried batch, again
                continue
            self.rows[n][position] = {k: batch[k][i] for k in ("key", "error", "embedding", *COLUMNS)}
            if len(self.rows[n]) == len(self.partitions[n].items):
                self._write(n)
                done.append(n)
        return done

    def _write(self, n: int) -> None:
        gathered = self.rows.pop(n)
        rows = [gathered[pos] for pos in range(len(self.partitions[n].items))]
        good = [r for r in rows if not r["error"]]
        width = len(rows[0]["embedding"])
        features = np.array([r["embedding"] for r in good], np.float32).reshape(len(good), width)  # [n, D]
        columns = {k: [_plain(r[k]) for r in good] for k in ("labels", "scores", "cosines")}
        # a column of None comes back from Ray's blocks as NaN: without a threshold there is no answer to "fits"
        columns["fits"] = [None if self.settings.threshold is None else bool(r["fits"]) for r in good]
        errors = [(str(r["key"]), str(r["error"])) for r in rows if r["error"]]
        write_partition(self.out, self.partitions[n], self.settings, [str(r["key"]) for r in good], features, columns,
                        errors)
        self.images, self.errors = self.images + len(good), self.errors + len(errors)


COLUMNS = ("labels", "scores", "cosines", "fits")


def _plain(value):
    """A cell as Ray hands it back (a numpy array for a list) -> plain Python."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value.item() if isinstance(value, np.generic) else value


def run_ray(zs, cfg, out: Path, items: list[Item], settings: BulkSettings, *, address: str | None = None,
            actors: int | None = None, batch_size: int | None = None, scorer: type = Scorer,
            progress: ProgressFn | None = None) -> BulkReport:
    """Run the partitions of `items` not yet written under `out` on Ray Data; `zs` (the driver's model) encodes the
    text features once. The driver writes each partition as its rows come back, so OUT is the driver's folder
    (a cluster's workers need only read the images). Without `address`, a local Ray with this machine's CPUs
    (stopped at the end). its `Progress` (images done of images to do) as partitions are written."""
    ray = _ray()
    import pyarrow as pa

    from ..serving.cpus import cpu_threads

    partitions, left = begin(zs, out, items, settings)
    if not left:
        return BulkReport(len(partitions), len(partitions), 0, 0, 0.0)
    text = zs.text_features(settings.label_set).float().cpu().numpy()  # [L, D]: encoded once, here
    few_shot = settings.answering.few_shot(zs, settings.label_set)  # the examples' weights, chosen once, here
    rows = [(it.key, it.source, it.member, it.size, p.number, i) for p in left for i, it in enumerate(p.items)]
    table = pa.table({name: [r[j] for r in rows]  # the plan: a table of paths, in Ray's object store
                      for j, name in enumerate(("key", "source", "member", "size", "partition", "position"))})
    started = time.perf_counter()
    own = not ray.is_initialized()
    gathered = PartitionRows(out, left, settings)
    try:
        if own:
            ray.init(address=address, num_cpus=None if address else cpu_threads(), include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
        pool = actors or (gpus if gpus else max(1, cpus // 2))
        threads = 1 if gpus else max(1, cpus // pool)  # torch's threads per actor: the CPUs, shared out
        # Ray counts CPUs logically: an actor that asked for its threads' worth would leave none for the read and
        # decode tasks, and the stream would stall; so it asks for a share, and its threads use the rest.
        ds = (ray.data.from_arrow([table.slice(i, 64) for i in range(0, len(rows), 64)])  # a block per 64 images
              .map_batches(decode_batch, fn_kwargs={"fit": zs.loaded.config.image_resolution}, batch_size=64,
                           batch_format="numpy")
              .map_batches(scorer, fn_constructor_kwargs={"cfg": cfg, "settings": settings, "text": text,
                                                          "few_shot": few_shot, "threads": threads},
                           batch_size=batch_size or (256 if gpus else 64), batch_format="numpy",
                           compute=ray.data.ActorPoolStrategy(size=pool), num_gpus=1 if gpus else 0,
                           num_cpus=0.5 / pool if not gpus else 0.5))
        total, written = len(rows), 0
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for n in gathered.add(batch):
                written += len(gathered.partitions[n].items)
                if progress:
                    progress(Progress(written, total, Text("progress_bulk")))
    except BulkError:
        raise
    except Exception as exc:  # a bad address, a task that failed past its retries: a sentence; what was written stays
        said = str(exc).strip().splitlines()
        raise BulkError("bulk_engine", f"{type(exc).__name__}: {said[-1] if said else ''}"[:300]) from None
    finally:
        if own and ray.is_initialized():
            ray.shutdown()
    return BulkReport(len(partitions), len(partitions) - len(left), gathered.images, gathered.errors,
                      time.perf_counter() - started)
