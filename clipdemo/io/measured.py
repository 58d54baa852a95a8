"""The last CPU figures `make bench` measured for the CLIP family, in a file the app reads (issue #27).

The file is committed beside this module, so the Space shows the figures its repository was measured with; a
missing or malformed file reads as None. Estimates for the models not measured are `clipdemo.core.family.cpu_costs`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..core.family import Cost, cpu_costs

__all__ = ["Measured", "COST_FILE", "read_measured", "write_measured"]

COST_FILE = Path(__file__).with_name("family_cost.json")


@dataclass(frozen=True)
class Measured:
    """What the bench measured: ViT image towers with random weights, batch 1, fp32 on the CPU."""

    when: str  # ISO date and time of the run
    machine: str  # CPUs and threads, in words
    matmul_gflops: float  # fp32 [3200, 768] @ [768, 3072], median over the run: the machine's floor
    ms: dict[str, float]  # model name -> median ms for one image

    def costs(self) -> dict[str, Cost]:
        return cpu_costs(self.ms, self.matmul_gflops)


def read_measured(path: Path = COST_FILE) -> Measured | None:
    """The figures in `path`, or None when there are none (never measured, or a file not in this shape)."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
        return Measured(str(raw["when"]), str(raw["machine"]), float(raw["matmul_gflops"]),
                        {str(k): float(v) for k, v in raw["ms"].items()})
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def write_measured(measured: Measured, path: Path = COST_FILE) -> None:
    Path(path).write_text(json.dumps(asdict(measured), indent=1) + "\n", encoding="utf-8")
