"""The CLIP family's ViT image towers timed on this CPU (issue #27): batch 1, fp32, seeded random weights (the
same shapes and cost as the released ones), each against this machine's fp32 matmul rate.

Measures the ViTs that fit the bench's time (ViT-B/32 and ViT-B/16); the app estimates the others from their
FLOPs (`clipdemo.core.family.cpu_costs`). Writes `clipdemo/io/family_cost.json`, which the Architecture tab
shows. `python -m bench.family [--quick]` runs it alone.
"""

from __future__ import annotations

import argparse
import datetime
import statistics

import torch

from bench.peers import matmul_gflops
from bench.timing import once_ms, spread
from clipdemo.core.family import FAMILY, profile
from clipdemo.core.model import ClipConfig, build_random
from clipdemo.io.measured import COST_FILE, Measured, write_measured
from clipdemo.serving.cpus import describe

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


def run(q: bool) -> None:
    measured = measure(q)
    write_measured(measured)
    print(f"    wrote {COST_FILE} (the Architecture tab's 'Compare with the CLIP family' reads it)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true")
    run(ap.parse_args().quick)
