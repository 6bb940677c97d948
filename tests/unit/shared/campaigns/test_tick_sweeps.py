"""The tick's sweep runner: each sweep runs and is reported by name, and one
that raises is logged and reported without stopping the next."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.scheduler.tick import (
    TICK_SWEEPS,
    Sweep,
    TickContext,
    TickReport,
    run_sweeps,
)

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def context() -> TickContext:
    # The sweeps under test touch only the report.
    unused: Any = None
    return TickContext(unused, unused, unused, unused, NOW, TickReport())


def recording(name: str, ran: list[str]) -> Sweep:
    return Sweep(name, lambda ctx: ran.append(name))


def broken(ctx: TickContext) -> None:
    raise RuntimeError("the query failed")


def test_a_failing_sweep_does_not_stop_the_next(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran: list[str] = []
    sweeps = [recording("first", ran), Sweep("broken", broken), recording("last", ran)]

    with caplog.at_level(logging.ERROR):
        report = run_sweeps(context(), sweeps)

    assert ran == ["first", "last"]
    assert report.sweeps == {"first": "ok", "broken": "failed", "last": "ok"}
    assert report.failed_sweeps == ["broken"]
    [record] = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert "broken" in record.getMessage()
    assert record.exc_info is not None


def test_every_sweep_is_reported_by_name_in_order() -> None:
    ran: list[str] = []
    report = run_sweeps(context(), [recording(n, ran) for n in ("a", "b", "c")])
    assert ran == ["a", "b", "c"]
    assert list(report.sweeps) == ["a", "b", "c"]
    assert report.failed_sweeps == []


def test_the_tick_sweeps_have_distinct_names() -> None:
    names = [sweep.name for sweep in TICK_SWEEPS]
    assert len(names) == len(set(names)) == 7
