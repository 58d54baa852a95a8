"""The offline floor of the dependency audit: `tools/audit` needs the vulnerability service and says
"NOT RUN" when it is unreachable; this always runs. Pinned and installed versions must be at least the
first releases that fix published advisories (ids below; ranges as the advisories state them)."""

from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
MINIMUMS = {
    # GHSA-j36p-7w88-g82j (path traversal in FileExplorer, fixed 6.16.0) and CVE-2023-51449 (/file route
    # traversal, fixed 4.11.0); 6.25 is the floor issue #12's advisory review set for this app.
    "gradio": "6.25.0",
    # The floor issue #12 set for Pillow's image decoders (the advisory id was not checked offline).
    "pillow": "12.3.0",
    # GHSA-53q9-r3pm-6pq6 / CVE-2025-32434: torch.load(weights_only=True) could still run code; fixed 2.6.0.
    "torch": "2.6.0",
    # GHSA-59g5-xgcq-4qw3 / CVE-2024-53981: multipart boundary parsing DoS; fixed 0.0.18 (a gradio dependency).
    "python-multipart": "0.0.18",
    # `bulk` (requirements-dev.txt; never on the Space). pyarrow: GHSA-5wvp-7f3h-6wmm / CVE-2023-47248, code run by
    # deserialising a PyExtensionType from an IPC or Parquet file; fixed 14.0.1.
    "pyarrow": "14.0.1",
    # ray: CVE-2023-6019 (command injection in the dashboard's cpu_profile), CVE-2023-6020 and CVE-2023-6021 (file
    # reads through the dashboard's static and log APIs); fixed 2.8.1. CVE-2023-48022 ("ShadowRay": the Jobs API
    # runs code for anyone who can reach the dashboard) has no fixed version, the Ray project calling it by design:
    # it does not apply to `bulk`, which starts its local Ray without the dashboard (include_dashboard=False), and a
    # cluster given with --address must sit on a trusted network (Ray 2.60 also turns token authentication on).
    "ray": "2.8.1",
}


def _pins() -> dict[str, str]:
    pins = {}
    for file in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / file).read_text().splitlines():
            name, sep, ver = line.split("#")[0].strip().partition("==")
            if sep:
                pins[name.split("[")[0].lower()] = ver
    return pins


@pytest.mark.parametrize("package", sorted(MINIMUMS))
def test_versions_meet_the_advisory_floor(package):
    floor = Version(MINIMUMS[package])
    assert Version(version(package)) >= floor, f"installed {package} {version(package)} < {floor}"
    pinned = _pins().get(package)
    if pinned is not None:  # python-multipart comes with gradio and is not pinned here
        assert Version(pinned) >= floor, f"the requirements pin {package}=={pinned} < {floor}"


def test_the_floor_reads_the_pins():
    pins = _pins()
    assert {"gradio", "pillow", "torch", "ray", "pyarrow"} <= set(pins) and Version(pins["torch"]) >= Version("2.6.0")
