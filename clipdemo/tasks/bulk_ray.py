"""The bulk run on Ray Data (issue #28): `python -m clipdemo bulk --engine ray [--address ADDR]`.

The same pipeline as `bulk.run_local`, with Ray Data doing the distributing: the plan (the partitions not yet written)
as a parquet table of paths, read by `read_parquet`; `decode_batch`, stateless tasks that read each image's bytes and
decode them with the local path's function (`bulk.read_bytes`, `bulk.decode`), a bad file becoming a row with its
reason, never an exception; `Scorer`, a model-holding class run by an actor pool (`ActorPoolStrategy`), one
actor per GPU (`num_gpus=1`) or per few CPUs, which runs the local path's one model function (`bulk.score`) against
the text features encoded once on the driver and sent to every actor; and `write_group`, one task per partition
(`groupby("partition").map_groups`), which writes that partition's files with the local path's writer (the layout
is clip-retrieval's: one embeddings shard per metadata file, so Ray's own `write_parquet`, which names files by
its blocks, cannot write it). A partition is written whole or not at all, so a task or actor that dies and is
retried, or a run stopped and started again, loses and duplicates nothing.

`ray` is an optional extra (`pip install "ray[data]"`); the Space never installs it.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image

from .bulk import (BulkError, BulkReport, BulkSettings, Item, Manifest, Partition, decode_item, plan,
                   prediction_columns, score, todo, write_partition)

__all__ = ["run_ray", "Scorer", "decode_batch", "write_group"]


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
    """Holds the model (one per actor, loaded as the CLI loads it) and scores batches of decoded images."""

    def __init__(self, cfg, settings: BulkSettings, text: np.ndarray, threads: int):
        import torch

        from ..serving.runtime import open_service, speed_up

        cfg = dataclasses.replace(cfg, threads=threads)
        self.zs = open_service(cfg)
        speed_up(self.zs, cfg, stored_features=False)  # the parity-checked backend, as the local path
        self.settings = settings
        self.text = torch.from_numpy(text).to(self.zs.loaded.device)  # [L, D]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        ok = [i for i, e in enumerate(batch["error"]) if not e]
        d = self.text.shape[1]
        emb = np.zeros((len(batch["key"]), d), np.float32)  # [B, D]
        empty = {"labels": [[]], "scores": [[]], "cosines": [[]], "fits": [None]}
        cols = {k: v * len(batch["key"]) for k, v in empty.items()}
        if ok:
            pictures = [Image.fromarray(batch["pixels"][i]) for i in ok]
            s = score(self.zs, pictures, self.text, self.settings.labels, self.settings.top_k)
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


def write_group(group: dict[str, np.ndarray], out: str, partitions: dict[int, Partition],
                settings: BulkSettings) -> dict[str, np.ndarray]:
    """One partition's rows (any order) -> its files, written by the local path's writer; a one-row summary."""
    order = np.argsort(group["position"], kind="stable")
    n = int(group["partition"][0])
    keys, rows, errors = [], [], []
    for i in order:
        if group["error"][i]:
            errors.append((str(group["key"][i]), str(group["error"][i])))
        else:
            keys.append(str(group["key"][i]))
            rows.append(i)
    features = np.asarray(group["embedding"])[rows].astype(np.float32) if rows else np.zeros((0, 0), np.float32)
    columns = {k: [_plain(group[k][i]) for i in rows] for k in ("labels", "scores", "cosines")}
    # a column of None comes back from Ray's blocks as NaN: without a threshold there is no answer to "fits"
    columns["fits"] = [None if settings.threshold is None else bool(group["fits"][i]) for i in rows]
    write_partition(Path(out), partitions[n], settings, keys, features, columns, errors)
    return {"partition": np.array([n]), "images": np.array([len(keys)]), "errors": np.array([len(errors)])}


def _plain(value):
    """A cell as Ray hands it back (a numpy array for a list) -> plain Python."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value.item() if isinstance(value, np.generic) else value


def run_ray(zs, cfg, out: Path, items: list[Item], settings: BulkSettings, *, address: str | None = None,
            actors: int | None = None, batch_size: int | None = None, scorer: type = Scorer) -> BulkReport:
    """Run the partitions of `items` not yet written under `out` on Ray Data; `zs` (the driver's model) encodes the
    text features once. Without `address`, a local Ray with this machine's CPUs (stopped at the end)."""
    ray = _ray()
    import pyarrow as pa
    import pyarrow.parquet as pq

    out.mkdir(parents=True, exist_ok=True)
    Manifest(settings, str(zs.loaded.info.label), zs.loaded.config.embed_dim).write_or_check(out)
    partitions = plan(items, settings)
    left = todo(out, partitions)
    if not left:
        return BulkReport(len(partitions), len(partitions), 0, 0, 0.0)
    text = zs.text_features(settings.label_set()).float().cpu().numpy()  # [L, D]: encoded once, here
    work = out / ".plan"  # the plan as a table of paths, for read_parquet (removed at the end)
    work.mkdir(exist_ok=True)
    rows = [(it.key, it.source, it.member, it.size, p.number, i) for p in left for i, it in enumerate(p.items)]
    pq.write_table(pa.table({name: [r[j] for r in rows] for j, name in
                             enumerate(("key", "source", "member", "size", "partition", "position"))}),
                   work / "plan.parquet")
    started = time.perf_counter()
    own = not ray.is_initialized()
    if own:
        try:
            ray.init(address=address, num_cpus=None if address else os.cpu_count(), include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        except Exception as exc:  # a bad address, a cluster that does not answer: a sentence, not a traceback
            shutil.rmtree(work, ignore_errors=True)
            raise BulkError("bulk_engine", exc) from None
    try:
        resources = ray.cluster_resources()
        gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
        pool = actors or (gpus if gpus else max(1, cpus // 2))
        threads = 1 if gpus else max(1, cpus // pool)  # torch's threads per actor: the CPUs, shared out
        # Ray counts CPUs logically: an actor that asked for its threads' worth would leave none for the read,
        # decode and write tasks, and the stream would stall; so it asks for a share, and its threads use the rest.
        fit = zs.loaded.config.image_resolution
        by_number = {p.number: p for p in left}
        ds = (ray.data.read_parquet(str(work / "plan.parquet"))
              .map_batches(decode_batch, fn_kwargs={"fit": fit}, batch_size=64, batch_format="numpy")
              .map_batches(scorer, fn_constructor_kwargs={"cfg": cfg, "settings": settings, "text": text,
                                                          "threads": threads},
                           batch_size=batch_size or (256 if gpus else 64), batch_format="numpy",
                           compute=ray.data.ActorPoolStrategy(size=pool), num_gpus=1 if gpus else 0,
                           num_cpus=0.5 / pool if not gpus else 0.5)
              .groupby("partition", num_partitions=min(len(left), 64))
              .map_groups(write_group, fn_kwargs={"out": str(out), "partitions": by_number, "settings": settings},
                          batch_format="numpy"))
        summary = ds.take_all()
    except BulkError:
        raise
    except Exception as exc:  # a task that failed past its retries: said in a line; what was written stays
        raise BulkError("bulk_engine", str(exc).strip().splitlines()[-1][:300]) from None
    finally:
        if own:
            ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    images = sum(int(r["images"]) for r in summary)
    errors = sum(int(r["errors"]) for r in summary)
    return BulkReport(len(partitions), len(partitions) - len(left), images, errors, time.perf_counter() - started)
