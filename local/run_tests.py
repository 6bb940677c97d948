"""`make test`: lint, type-check, then the test layers in order.

The layers run one after another, each its own pytest run, and the run stops
at the first that fails: unit (pure logic), integration (the Firestore
emulator) and e2e (the whole local stack, fault suite included). Without the
official emulators the last two are skipped, named loudly, and the run passes
only when ALLOW_MISSING_EMULATORS=1. A layer that should have run but ran no
test (pytest exit code 5, or every test skipped) fails.

The last line is always a plain `N passed, N failed`. What ran and what was
skipped is written to `.local/test-layers.json`; `python -m local.run_tests
--verdict` (what `.ci/run` ends with) prints it as one line, and fails when a
layer was skipped on a machine that has the emulators.

    python -m local.run_tests            # the default sizes (make test)
    python -m local.run_tests --full     # full sizes (make test-full)
    python -m local.run_tests --full --soak
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET  # noqa: S405 - our own pytest's report
from dataclasses import asdict, dataclass, field
from pathlib import Path

from local import emulators
from local.browser import ensure_chromium

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = REPO / ".local" / "test-results"
SUMMARY = REPO / ".local" / "test-layers.json"
LAYERS = ("unit", "integration", "e2e")
NEEDS_EMULATORS = {"integration", "e2e"}
NO_TESTS_COLLECTED = 5


@dataclass
class Counts:
    passed: int = 0
    failed: int = 0
    skipped: int = 0


@dataclass
class Report:
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)
    emulators_present: bool = True


def run(title: str, argv: list[str]) -> int:
    print(f"\n=== {title}: {' '.join(argv)}", flush=True)
    result = subprocess.run(argv, cwd=REPO, check=False)  # noqa: S603 - fixed argv
    return result.returncode


def static_checks() -> list[str]:
    failures = []
    checks = [
        ("ruff check", [str(BIN / "ruff"), "check", "."]),
        ("ruff format", [str(BIN / "ruff"), "format", "--check", "."]),
        ("mypy", [str(BIN / "mypy")]),
        # The package layering of docs/architecture.md, in .importlinter.
        ("import contracts", [str(BIN / "lint-imports"), "--no-cache"]),
    ]
    terraform = shutil.which("terraform")
    if terraform:
        checks.append(
            ("terraform fmt", [terraform, "fmt", "-check", "-recursive", "infra"])
        )
    else:
        print("\n=== terraform fmt: skipped (terraform is not installed)")
    for title, argv in checks:
        if run(title, argv) != 0:
            failures.append(title)
    return failures


def banner(lines: list[str]) -> None:
    bar = "!" * 78
    print(f"\n{bar}", flush=True)
    for line in lines:
        print(f"!!! {line}")
    print(bar, flush=True)


def junit_counts(path: Path) -> Counts:
    """passed/failed/skipped from pytest's JUnit XML (errors count as failed)."""
    if not path.exists():
        return Counts()
    root = ET.parse(path).getroot()  # noqa: S314 - written by our own pytest
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    counts = Counts()
    for suite in suites:
        tests = int(suite.get("tests", 0))
        failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped = int(suite.get("skipped", 0))
        counts.passed += tests - failed - skipped
        counts.failed += failed
        counts.skipped += skipped
    return counts


def run_layer(layer: str, report: Report) -> bool:
    """One pytest run over tests/<layer>; False when the layer failed."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    xml = RESULTS / f"{layer}.xml"
    xml.unlink(missing_ok=True)
    argv = [
        str(BIN / "python"),
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        f"--junitxml={xml}",
        f"tests/{layer}",
    ]
    code = run(f"pytest {layer}", argv)
    counts = junit_counts(xml)
    report.ran.append(layer)
    report.counts.passed += counts.passed
    report.counts.failed += counts.failed
    report.counts.skipped += counts.skipped
    if code == NO_TESTS_COLLECTED or (code == 0 and counts.passed == 0):
        report.failures.append(f"{layer}: no test ran (exit code {code})")
        return False
    if code != 0:
        report.failures.append(f"pytest {layer} (exit code {code})")
        return False
    return True


def layers_line(report: Report) -> str:
    ran = ", ".join(report.ran) or "none"
    skipped = ", ".join(report.skipped) or "none"
    return f"layers run: {ran}; skipped: {skipped}"


def write_summary(report: Report) -> None:
    SUMMARY.parent.mkdir(parents=True, exist_ok=True)
    SUMMARY.write_text(json.dumps(asdict(report), indent=2))


def run_layers(report: Report, missing: list[str]) -> None:
    for number, layer in enumerate(LAYERS):
        if missing and layer in NEEDS_EMULATORS:
            report.skipped.append(layer)
            continue
        if not run_layer(layer, report):
            later = list(LAYERS[number + 1 :])
            report.skipped.extend(later)
            if later:
                print(f"\n=== stopping: {layer} failed; not run: {', '.join(later)}")
            return


def configure(args: argparse.Namespace) -> None:
    os.environ["PYTHONPATH"] = str(REPO)
    if args.full:
        os.environ["ESE_TEST_FULL"] = "1"
    if args.soak:
        os.environ["ESE_SOAK"] = "1"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.run_tests")
    parser.add_argument("--full", action="store_true", help="full fault-suite sizes")
    parser.add_argument("--soak", action="store_true", help="add the long soak")
    parser.add_argument(
        "--verdict", action="store_true", help="print the layers line of the last run"
    )
    args = parser.parse_args(argv)
    if args.verdict:
        return verdict()
    configure(args)
    report = Report()
    report.failures = static_checks()
    browser_missing = ensure_chromium()  # the console's browser tests (e2e)
    if browser_missing:
        banner([f"BROWSER TESTS SKIPPED: {browser_missing}"])
    missing = emulators.missing_emulators()
    report.emulators_present = not missing
    if missing:
        banner(
            [
                "SKIPPED LAYERS: integration (Firestore emulator) and end-to-end",
                f"(local stack) — missing: {', '.join(missing)}",
                emulators.INSTALL_HINT,
                "Only the unit layer runs on this machine.",
            ]
        )
        if os.environ.get("ALLOW_MISSING_EMULATORS") != "1":
            report.failures.append(
                "emulators missing (set ALLOW_MISSING_EMULATORS=1 to allow)"
            )
    if report.failures:
        report.skipped = [layer for layer in LAYERS]
    else:
        run_layers(report, missing)
    write_summary(report)
    print(f"\n{layers_line(report)}")
    if report.failures:
        banner([f"FAILED: {', '.join(report.failures)}"])
    # The last line, plain, for whoever reads the log's end.
    print(f"{report.counts.passed} passed, {report.counts.failed} failed", flush=True)
    return 1 if report.failures else 0


def verdict() -> int:
    """One plain line: the layers of the last run. Fails when a layer was
    skipped on a machine that has the emulators, or the run left no summary."""
    if not SUMMARY.exists():
        print("layers run: none; skipped: unit, integration, e2e (no summary)")
        return 1
    data = json.loads(SUMMARY.read_text())
    report = Report(
        ran=data["ran"],
        skipped=data["skipped"],
        failures=data["failures"],
        emulators_present=data["emulators_present"],
    )
    line = layers_line(report)
    emulators_here = not emulators.missing_emulators()
    if report.skipped and emulators_here:
        print(f"{line} (FAILED: layers skipped on a machine with the emulators)")
        return 1
    print(line)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
