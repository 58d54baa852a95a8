"""`python -m clipdemo bulk`'s figures (issue #28; `make bench-bulk`, `QUICK=1` for fewer images).

R17: the same images as the CIFAR-100 evaluation encodes them (from an empty store) vs as `bulk` runs them locally
     (PNG files on disk: listed, read, decoded, scored, written in clip-retrieval's layout with embeddings);
     the ratio is bulk's time over the evaluation's (goal: at most 1.2).
R18: `bulk --engine ray` with 2 model actors on a local Ray (2 CPUs) vs the local engine, the same images:
     local time over Ray's (expected at most 1.0 here). Ray's fixed cost (starting the actors, each loading the
     model) is measured apart: runs of N and 2N images, whose difference is the cost of N more images.

The model is the bench's full-size ViT-B/32 with seeded random weights: these are speed figures, never accuracy.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import torch

from bench.common import stand_ins
from bench.timing import paired, report
from clipdemo.core.labels import CIFAR100_CLASSES, LabelSet
from clipdemo.fakes import cifar_checksums
from clipdemo.io.cifar import open_cifar100
from clipdemo.serving.cpus import cpu_threads, describe
from clipdemo.serving.runtime import open_service, speed_up
from clipdemo.serving.settings import Settings
from clipdemo.tasks import bulk
from clipdemo.tasks.evaluate import Evaluation, evaluate


def main() -> int:
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    q = ap.parse_args().quick
    n = 256 if q else 1024
    torch.set_num_threads(cpu_threads())
    print(f"bench-bulk: {describe(cpu_threads())}, torch {torch.__version__}; {n} images; "
          f"{'QUICK' if q else 'full'} run")
    with tempfile.TemporaryDirectory(prefix="clipdemo-bulk-bench-") as tmp:
        work = Path(tmp)
        ckpt, md5, root = stand_ins(work)
        with cifar_checksums(md5):
            data = open_cifar100(root)
        cfg = Settings(weights=str(ckpt), cache_dir=work / "cache", allow_download=False, device="cpu")
        zs = open_service(cfg)
        print(f"image backend: {speed_up(zs, cfg, stored_features=False)}")  # as `bulk` and `evaluate` choose it
        photos = work / "photos"
        photos.mkdir()
        for i in range(2 * n):
            data.image(i).save(photos / f"{i:05d}.png")
        labels = LabelSet.of(CIFAR100_CLASSES, ["a photo of a {}."])
        settings = bulk.BulkSettings(labels, 5, True, zs.loaded.info.identity, 256)
        items = bulk.list_inputs(photos)
        first, both = items[:n], items
        zs.text_features(labels)
        runs = iter(range(10**6))

        def local(chosen=first) -> bulk.BulkReport:
            out = work / f"out{next(runs)}"
            done = bulk.run_local(zs, out, chosen, settings)
            shutil.rmtree(out)
            return done

        def evaluation():
            zs.cifar = None  # an empty store each time: every image is preprocessed and encoded
            evaluate(zs, data, Evaluation("first", n, templates="single"))

        r17 = paired(local, evaluation, 1 if q else 3, 1)
        ratio17 = report("R17", f"{n} images: local bulk (PNG files -> predictions, embeddings, metadata) vs the "
                                "CIFAR-100 evaluation's encoding: bulk's time over the evaluation's (goal: at most 1.2)",
                         r17)
        rate = n / (statistics.median(r17.base) / 1000)
        print(f"    local bulk {rate:.1f} images/s on {cpu_threads()} cores = {rate / cpu_threads():.1f} images/s "
              "per core")

        import ray
        ray.init(num_cpus=cpu_threads(), include_dashboard=False, log_to_driver=False, configure_logging=False)
        try:
            from clipdemo.tasks.bulk_ray import run_ray

            def on_ray(chosen) -> float:
                out = work / f"ray{next(runs)}"
                t0 = time.perf_counter()
                run_ray(zs, cfg, out, chosen, settings, actors=2)
                seconds = time.perf_counter() - t0
                shutil.rmtree(out)
                return seconds

            ray_n, ray_2n = on_ray(first), on_ray(both)
            t0 = time.perf_counter()
            local(both)
            local_2n = time.perf_counter() - t0
        finally:
            ray.shutdown()
        ratio18 = local_2n / ray_2n
        marginal = n / max(ray_2n - ray_n, 1e-9)
        print(f"R18: {2 * n} images, local bulk vs Ray Data with 2 actors on a local Ray: {local_2n:.1f} s vs "
              f"{ray_2n:.1f} s -> {ratio18:.2f} (expected at most 1.0 here)")
        print(f"    Ray: {n} images {ray_n:.1f} s, {2 * n} images {ray_2n:.1f} s: fixed cost "
              f"{ray_n - n / marginal:.1f} s (start, 2 actors loading the model), then {marginal:.1f} images/s "
              f"(local: {2 * n / local_2n:.1f} images/s)")
        print(f"ratios: R17={ratio17:.2f} R18={ratio18:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
