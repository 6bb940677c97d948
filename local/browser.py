"""Headless Chromium for the console's browser tests: Debian's `chromium`.

Playwright's own browser download cannot work here, so the tests drive the
distribution's build. `make test` calls `ensure_chromium()` first: it installs
the package when it is missing and the run is root, and otherwise names the
command to run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
INSTALL_COMMAND = "apt-get update && apt-get install -y chromium"


def chromium_missing() -> str | None:
    """Why the browser tests cannot run, or None when they can."""
    if Path(CHROMIUM).exists():
        return None
    return f"{CHROMIUM} is missing: run `{INSTALL_COMMAND}` as root"


def ensure_chromium() -> str | None:
    """Install Debian's chromium when missing and allowed; the reason if not."""
    missing = chromium_missing()
    apt = shutil.which("apt-get")
    if missing is None or apt is None or os.geteuid() != 0:
        return missing
    print(f"=== installing chromium for the browser tests: {INSTALL_COMMAND}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in ([apt, "update"], [apt, "install", "-y", "chromium"]):
        subprocess.run(argv, check=False, env=env)  # noqa: S603 - fixed argv
    return chromium_missing()
