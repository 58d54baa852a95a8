"""Image encoding under a real CPU quota: does the app pick the thread count the quota allows, and does it pay?

Needs root (it makes a cgroup). Creates a cgroup with a 1-CPU quota (v1 `cpu` controller, or v2 where
that is what the machine has), runs a child process inside it that reports `clipdemo.serving.cpus.cpu_threads()`
and times ViT-B/32 (seeded random weights) batch-1 image encoding with 1 thread and with every CPU of
the affinity mask, interleaved, and removes the cgroup.

    sudo .venv/bin/python -m bench.quota [--cpus 1] [--reps 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path


def child(reps: int) -> int:
    import torch

    from clipdemo.serving.cpus import affinity, cgroup_quota, cpu_threads
    from clipdemo.weights.load import load_model
    picked = cpu_threads()
    print(f"inside: affinity {affinity()} CPUs, quota {cgroup_quota()} CPUs -> the app picks {picked} thread(s)")
    model = load_model("random", device="cpu").model
    x = torch.randn(1, 3, 224, 224)
    times: dict[int, list[float]] = {1: [], affinity(): []}
    with torch.inference_mode():
        for n in times:  # warm up each setting
            torch.set_num_threads(n)
            model.encode_image(x)
        for _ in range(reps):  # interleaved: A B A B ...
            for n in times:
                torch.set_num_threads(n)
                t = time.perf_counter()
                model.encode_image(x)
                times[n].append(1000 * (time.perf_counter() - t))
    for n, ts in times.items():
        print(f"  {n} thread(s): median {statistics.median(ts):.0f} ms (min {min(ts):.0f}, max {max(ts):.0f})")
    return 0


def make_cgroup(cpus: float) -> tuple[Path, Path]:
    """A fresh cgroup with the quota; returns (folder, the file to write a pid into)."""
    name = f"clipdemo-quota-{os.getpid()}"
    v1 = Path("/sys/fs/cgroup/cpu")
    if (v1 / "cpu.cfs_quota_us").exists():
        folder = v1 / name
        folder.mkdir()
        (folder / "cpu.cfs_period_us").write_text("100000")
        (folder / "cpu.cfs_quota_us").write_text(str(int(cpus * 100000)))
        return folder, folder / "cgroup.procs"
    folder = Path("/sys/fs/cgroup") / name
    folder.mkdir()
    (folder / "cpu.max").write_text(f"{int(cpus * 100000)} 100000")
    return folder, folder / "cgroup.procs"


def main() -> int:
    warnings.filterwarnings("ignore")
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cpus", type=float, default=1.0, help="the quota, in CPUs (default 1)")
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.reps)
    if os.geteuid() != 0:
        print("bench.quota: needs root to make a cgroup", file=sys.stderr)
        return 2
    folder, procs = make_cgroup(args.cpus)
    try:
        proc = subprocess.Popen([sys.executable, "-m", "bench.quota", "--child", "--reps", str(args.reps)],
                                preexec_fn=lambda: procs.write_text(str(os.getpid())))
        print(f"cgroup {folder} with a {args.cpus:g}-CPU quota")
        return proc.wait(600)
    finally:
        folder.rmdir()


if __name__ == "__main__":
    sys.exit(main())
