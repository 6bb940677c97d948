"""`make test`'s runner: layers in order, stop at the first failure, and a
layer that ran no test is a failure, not a pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from local import run_tests

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" errors="1" failures="2" skipped="3"
 tests="10" time="1.0"></testsuite></testsuites>"""


@pytest.fixture
def results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(run_tests, "RESULTS", tmp_path)
    return tmp_path


def fake_pytest(
    monkeypatch: pytest.MonkeyPatch, results: Path, outcomes: dict[str, tuple[int, str]]
) -> list[str]:
    """Each layer's pytest answers (exit code, JUnit XML or "")."""
    ran: list[str] = []

    def run(title: str, argv: list[str]) -> int:
        layer = argv[-1].removeprefix("tests/")
        ran.append(layer)
        code, xml = outcomes[layer]
        if xml:
            (results / f"{layer}.xml").write_text(xml)
        return code

    monkeypatch.setattr(run_tests, "run", run)
    return ran


def passing(count: int) -> str:
    return JUNIT.replace('errors="1" failures="2" skipped="3"', "").replace(
        'tests="10"', f'tests="{count}"'
    )


def test_junit_counts_treat_errors_as_failures(results: Path) -> None:
    path = results / "x.xml"
    path.write_text(JUNIT)
    counts = run_tests.junit_counts(path)
    assert (counts.passed, counts.failed, counts.skipped) == (4, 3, 3)


def test_layers_run_in_order_and_counts_add_up(
    results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcomes = {
        "unit": (0, passing(5)),
        "integration": (0, passing(2)),
        "e2e": (0, passing(1)),
    }
    ran = fake_pytest(monkeypatch, results, outcomes)
    report = run_tests.Report()
    run_tests.run_layers(report, missing=[])
    assert ran == ["unit", "integration", "e2e"]
    assert (report.ran, report.skipped, report.failures) == (ran, [], [])
    assert (report.counts.passed, report.counts.failed) == (8, 0)


def test_a_failing_layer_stops_the_run(
    results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcomes = {
        "unit": (0, passing(5)),
        "integration": (1, JUNIT),
        "e2e": (0, passing(1)),
    }
    ran = fake_pytest(monkeypatch, results, outcomes)
    report = run_tests.Report()
    run_tests.run_layers(report, missing=[])
    assert ran == ["unit", "integration"]
    assert report.skipped == ["e2e"]
    assert report.failures == ["pytest integration (exit code 1)"]
    assert run_tests.layers_line(report) == (
        "layers run: unit, integration; skipped: e2e"
    )


@pytest.mark.parametrize(
    "outcome", [(5, ""), (0, passing(0))], ids=["exit-code-5", "all-skipped"]
)
def test_a_layer_that_ran_no_test_fails(
    results: Path, monkeypatch: pytest.MonkeyPatch, outcome: tuple[int, str]
) -> None:
    outcomes = {"unit": (0, passing(5)), "integration": outcome, "e2e": (0, passing(1))}
    fake_pytest(monkeypatch, results, outcomes)
    report = run_tests.Report()
    run_tests.run_layers(report, missing=[])
    assert report.failures == [f"integration: no test ran (exit code {outcome[0]})"]
    assert report.skipped == ["e2e"]


def test_without_emulators_only_the_unit_layer_runs(
    results: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcomes = {"unit": (0, passing(5))}
    ran = fake_pytest(monkeypatch, results, outcomes)
    report = run_tests.Report()
    run_tests.run_layers(report, missing=["java"])
    assert ran == ["unit"]
    assert report.skipped == ["integration", "e2e"]
