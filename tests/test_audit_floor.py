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
}


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        name, sep, ver = line.split("#")[0].strip().partition("==")
        if sep:
            pins[name.lower()] = ver
    return pins


@pytest.mark.parametrize("package", sorted(MINIMUMS))
def test_versions_meet_the_advisory_floor(package):
    floor = Version(MINIMUMS[package])
    assert Version(version(package)) >= floor, f"installed {package} {version(package)} < {floor}"
    pinned = _pins().get(package)
    if pinned is not None:  # python-multipart comes with gradio and is not pinned here
        assert Version(pinned) >= floor, f"requirements.txt pins {package}=={pinned} < {floor}"


def test_the_floor_reads_the_pins():
    pins = _pins()
    assert {"gradio", "pillow", "torch"} <= set(pins) and Version(pins["torch"]) >= Version("2.6.0")
