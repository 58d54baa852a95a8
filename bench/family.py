"""The CLIP family's ViT image towers timed on this CPU (issue #27): batch 1, fp32, seeded random weights (the
same shapes and cost as the released ones), each against this machine's fp32 matmul rate.

Measures the ViTs that fit the bench's time (ViT-B/32 and ViT-B/16); the app estimates the others from their
FLOPs (`clipdemo.core.family.cpu_costs`). Writes its figures to `~/.cache/clipdemo/bench/family_cost.json` (or
`--out PATH`): never into the tracked tree. The Architecture tab reads the committed `clipdemo/io/family_cost.json`,
which only `make family-cost` (`--publish`) rewrites. `python -m bench.family [--quick]` runs it alone.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
from pathlib import Path

import torch

from bench.peers import matmul_gflops
from bench.timing import once_ms, spread
from clipdemo.core.family import FAMILY, profile
from clipdemo.core.model import ClipConfig, build_random
from clipdemo.io.measured import COST_FILE, Measured, write_measured
from clipdemo.serving.cpus import describe
from clipdemo.weights.load import default_cache

MEASURED = ("ViT-B/32", "ViT-B/16")


def measure(q: bool) -> Measured:
    reps = 5 if q else 15
    rate = statistics.median(matmul_gflops(3200, reps=reps))
    ms = {}
    for name in MEASURED:
        m = FAMILY[name]
        tower = build_random(ClipConfig(**m.kwargs())).visual
        x = torch.randn(1, 3, m.image_resolution, m.image_resolution)
        with torch.inference_mode():
            tower(x)  # warm
            times = [once_ms(lambda: tower(x)) for _ in range(reps)]
        ms[name] = statistics.median(times)
        achieved = profile(m).image_flops / 1e9 / (ms[name] / 1000)
        print(f"family: {name} image tower, batch 1, fp32 CPU: {spread(times)} (median {ms[name]:.1f} ms), "
              f"{achieved:.0f} GFLOP/s = {achieved / rate:.0%} of the matmul floor ({rate:.0f} GFLOP/s)")
        del tower
    print(f"    ViT-B/16 / ViT-B/32 time {ms['ViT-B/16'] / ms['ViT-B/32']:.2f}x for "
          f"{profile(FAMILY['ViT-B/16']).image_flops / profile(FAMILY['ViT-B/32']).image_flops:.2f}x the FLOPs")
    return Measured(datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    describe(torch.get_num_threads()), rate, ms)


def default_out() -> Path:
    """Where a bench run's figures go: the cache, outside the tracked tree."""
    return default_cache() / "bench" / COST_FILE.name


def run(q: bool, out: Path | None = None) -> Path:
    """Measure and write the figures to `out` (default: `default_out()`); returns where they went."""
    out = Path(out or default_out())
    out.parent.mkdir(parents=True, exist_ok=True)
    write_measured(measure(q), out)
    note = (" (the Architecture tab reads it: commit it)" if out == COST_FILE
            else f" (the page reads the package's {COST_FILE.name}: `make family-cost` rewrites it)")
    print(f"    wrote {out}{note}")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="where to write the figures (default: the cache)")
    ap.add_argument("--publish", action="store_true", help=f"write them to {COST_FILE.name} in the package, which "
                                                           "the page reads and the repository commits")
    args = ap.parse_args()
    run(args.quick, COST_FILE if args.publish else args.out)
