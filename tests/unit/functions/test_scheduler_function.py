"""campaign_scheduler's answer: the tick's report, 500 when a sweep failed."""

from __future__ import annotations

from typing import Any

import flask
import pytest

from shared.scheduler.tick import TickReport
from tests.unit.functions.test_webhook_functions import NOW, load_function


def call_with(monkeypatch: pytest.MonkeyPatch, report: TickReport) -> Any:
    module = load_function("campaign_scheduler")
    for dependency in ("firestore_client", "pubsub_publisher", "task_queue"):
        monkeypatch.setattr(module, dependency, lambda: None)
    monkeypatch.setattr(module, "utcnow", lambda: NOW)
    monkeypatch.setattr(module, "run_tick", lambda *args: report)
    with flask.Flask("scheduler-test").test_request_context("/", method="POST"):
        return module.campaign_scheduler(flask.request)


def test_a_tick_whose_sweeps_all_ran_answers_200(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report = TickReport(launched=["c1"], sweeps={"launch_due": "ok"})
    body, status = call_with(monkeypatch, report)
    assert status == 200
    assert body["launched"] == ["c1"]
    assert body["sweeps"] == {"launch_due": "ok"}


def test_a_tick_with_a_failed_sweep_answers_500_with_its_report(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    report = TickReport(
        sweeps={"launch_due": "ok", "stuck_sends": "failed", "republish_events": "ok"},
        republished_events=2,
    )
    body, status = call_with(monkeypatch, report)
    assert status == 500
    assert body["sweeps"]["stuck_sends"] == "failed"
    assert body["republished_events"] == 2
