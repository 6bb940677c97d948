"""The vendored browser libraries are exactly the versions the lock file pins."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from local.vendor_console import PACKAGES, VENDORED

# Each library's own banner, the first comment of its minified file.
BANNERS = {
    "chart.js": re.compile(r"^/\*!\s*\n \* Chart\.js v(?P<version>\S+)\n"),
    "axe-core": re.compile(r"^/\*! axe v(?P<version>\S+)\n"),
}


def locked_version(package: str) -> str:
    lock = json.loads((PACKAGES / "package-lock.json").read_text(encoding="utf-8"))
    return str(lock["packages"][f"node_modules/{package}"]["version"])


@pytest.mark.parametrize("package", sorted(VENDORED))
def test_vendored_file_is_the_locked_version(package: str) -> None:
    _, destination = VENDORED[package]
    head = Path(destination).read_text(encoding="utf-8")[:400]
    match = BANNERS[package].match(head)
    assert match, f"{destination} does not start with {package}'s banner"
    assert match["version"] == locked_version(package)


def test_package_json_pins_exact_versions() -> None:
    manifest = json.loads((PACKAGES / "package.json").read_text(encoding="utf-8"))
    for package, spec in manifest["dependencies"].items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", spec), f"{package} is not pinned: {spec}"
        assert spec == locked_version(package)
