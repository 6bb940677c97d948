"""`make test`: lint, type-check, then every test layer the machine can run.

Unit tests always run. Integration (Firestore emulator) and end-to-end (the
whole local stack) run whenever the official emulators are installed; pytest's
fixtures start and stop them. Without the emulators the skipped layers are
named loudly, and the run passes only when ALLOW_MISSING_EMULATORS=1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from local import emulators
from local.browser import ensure_chromium

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def run(title: str, argv: list[str]) -> bool:
    print(f"\n=== {title}: {' '.join(argv)}", flush=True)
    result = subprocess.run(argv, cwd=REPO, check=False)  # noqa: S603 - fixed argv
    return result.returncode == 0


def static_checks() -> list[str]:
    failures = []
    checks = [
        ("ruff check", [str(BIN / "ruff"), "check", "."]),
        ("ruff format", [str(BIN / "ruff"), "format", "--check", "."]),
        ("mypy", [str(BIN / "mypy")]),
    ]
    terraform = shutil.which("terraform")
    if terraform:
        checks.append(
            ("terraform fmt", [terraform, "fmt", "-check", "-recursive", "infra"])
        )
    else:
        print("\n=== terraform fmt: skipped (terraform is not installed)")
    for title, argv in checks:
        if not run(title, argv):
            failures.append(title)
    return failures


def banner(lines: list[str]) -> None:
    bar = "!" * 78
    print(f"\n{bar}", flush=True)
    for line in lines:
        print(f"!!! {line}")
    print(bar, flush=True)


def main() -> int:
    os.environ["PYTHONPATH"] = str(REPO)
    failures = static_checks()
    browser_missing = ensure_chromium()  # the console's browser tests (e2e)
    if browser_missing:
        banner([f"BROWSER TESTS SKIPPED: {browser_missing}"])
    pytest = [str(BIN / "python"), "-m", "pytest", "-p", "no:cacheprovider"]
    missing = emulators.missing_emulators()
    if missing:
        banner(
            [
                "SKIPPED LAYERS: integration (Firestore emulator) and end-to-end",
                f"(local stack) — missing: {', '.join(missing)}",
                emulators.INSTALL_HINT,
                "Only the unit layer runs on this machine.",
            ]
        )
        if not run("pytest (unit only)", [*pytest, "tests/unit"]):
            failures.append("pytest unit")
        if os.environ.get("ALLOW_MISSING_EMULATORS") != "1":
            failures.append(
                "emulators missing (set ALLOW_MISSING_EMULATORS=1 to allow)"
            )
    elif not run("pytest (unit, integration, e2e)", [*pytest, "tests"]):
        failures.append("pytest")
    if failures:
        banner([f"FAILED: {', '.join(failures)}"])
        return 1
    print("\nall checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
