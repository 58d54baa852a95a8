"""How many CPUs this process may really use: the affinity mask, capped by the cgroup CPU quota.

A Space container is limited by a CFS quota (`cpu.max` on cgroup v2; `cpu.cfs_quota_us` and `cpu.cfs_period_us` on
v1) while its affinity mask may show all of the host's cores; threads beyond the quota only queue for it. The
tightest quota of this process's cgroup and its ancestors wins; file roots are arguments, so tests hand in fake trees.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

__all__ = ["cpu_threads", "cgroup_quota", "affinity", "describe"]


def affinity() -> int:
    """CPUs in this process's affinity mask (the machine's count where there is no mask)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _ancestors(base: Path, rel: str) -> list[Path]:
    """`base/rel` and every folder above it up to `base`."""
    parts = [p for p in rel.strip("/").split("/") if p]
    return [base.joinpath(*parts[:k]) for k in range(len(parts), -1, -1)]


def _v2_quota(folder: Path) -> float | None:
    text = _read(folder / "cpu.max")  # "max 100000" or "200000 100000"
    if not text:
        return None
    quota, _, period = text.partition(" ")
    if quota == "max":
        return None
    try:
        q, p = int(quota), int(period or 100000)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def _v1_quota(folder: Path) -> float | None:
    quota, period = _read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us")
    try:
        q, p = int(quota or -1), int(period or 0)
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


def cgroup_quota(proc_cgroup: str | Path = "/proc/self/cgroup", root: str | Path = "/sys/fs/cgroup") -> float | None:
    """This process's CPU quota in CPUs (e.g. 2.0), or None when there is none (or it cannot be read)."""
    root = Path(root)
    lines = (_read(Path(proc_cgroup)) or "").splitlines()
    quotas: list[float] = []
    for line in lines:
        _, controllers, rel = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":  # cgroup v2: "0::/path"
            folders = [f for base in (root, root / "unified") for f in _ancestors(base, rel)]
            quotas += [q for f in folders if (q := _v2_quota(f)) is not None]
        elif "cpu" in controllers.split(","):  # cgroup v1: "N:cpu,cpuacct:/path"
            for mount in (controllers, "cpu", "cpu,cpuacct", "cpuacct,cpu"):
                quotas += [q for f in _ancestors(root / mount, rel) if (q := _v1_quota(f)) is not None]
    return min(quotas) if quotas else None


def cpu_threads(proc_cgroup: str | Path = "/proc/self/cgroup", root: str | Path = "/sys/fs/cgroup",
                cpus: int | None = None) -> int:
    """Threads for the one model: min(affinity, ceil(quota)), at least 1."""
    n = affinity() if cpus is None else cpus
    quota = cgroup_quota(proc_cgroup, root)
    return max(1, min(n, math.ceil(quota)) if quota is not None else n)


def describe(threads: int) -> str:
    """A few words for the status line: the threads in use, and what they were derived from."""
    quota = cgroup_quota()
    limit = f"quota {quota:g} CPUs" if quota is not None else "no CPU quota"
    return f"{threads} thread{'s' if threads != 1 else ''} ({affinity()} CPUs in affinity, {limit})"
