"""The stranded sweep's decision for one QUEUED message past its send time."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.campaigns.scheduler import (
    MAX_STRANDED_REQUEUES,
    SEND_ATTEMPTS_EXHAUSTED,
    stranded_change,
)
from shared.store.messages import MessageStatus, rank_of

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_a_first_stranding_is_requeued_under_the_next_generation() -> None:
    change = stranded_change({"generation": 3}, NOW)
    assert (change["generation"], change["requeues"], change["send_at"]) == (4, 1, NOW)
    assert "status_rank" not in change


def test_requeues_run_out_into_failed() -> None:
    change = stranded_change({"generation": 5, "requeues": MAX_STRANDED_REQUEUES}, NOW)
    assert change["status_rank"] == rank_of(MessageStatus.FAILED)
    assert change["error_code"] == SEND_ATTEMPTS_EXHAUSTED
    assert change["failed_at"] == NOW
    assert "generation" not in change


def test_each_message_gets_a_bounded_number_of_requeues() -> None:
    data: dict[str, int] = {"generation": 0}
    outcomes = []
    for _ in range(MAX_STRANDED_REQUEUES + 1):
        change = stranded_change(data, NOW)
        outcomes.append("failed" if "status_rank" in change else "requeued")
        data = {k: v for k, v in change.items() if k in ("generation", "requeues")}
    assert outcomes == ["requeued"] * MAX_STRANDED_REQUEUES + ["failed"]
