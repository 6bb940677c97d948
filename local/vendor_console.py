"""Vendor the console's pinned browser libraries as single files.

`local/vendor/package.json` and its lock pin the versions; this runs `npm ci`
there and copies Chart.js (served by the console) and axe-core (used only by
the browser tests) into place. Run after changing a pinned version:
`.venv/bin/python -m local.vendor_console`; `tests/unit/local/test_vendored.py`
checks that each vendored file is the locked version.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = REPO / "local" / "vendor"
VENDORED = {
    # package → (file inside the package, destination)
    "chart.js": (
        "dist/chart.umd.min.js",
        REPO / "functions/api/console/vendor/chart.umd.min.js",
    ),
    "axe-core": ("axe.min.js", REPO / "tests/e2e/console/vendor/axe.min.js"),
}


def main() -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is required: apt-get install npm")
    subprocess.run(  # noqa: S603 - fixed argv
        [npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
        cwd=PACKAGES,
        check=True,
    )
    for package, (inside, destination) in VENDORED.items():
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(PACKAGES / "node_modules" / package / inside, destination)
        print(f"{package}: {destination.relative_to(REPO)}")


if __name__ == "__main__":
    main()
