"""Message statuses as data: Twilio's vocabulary and the ranks that only grow."""

from __future__ import annotations

import pytest

from shared.delivery.status import TWILIO_STATUS
from shared.store.messages import (
    ACCEPTED_STATUSES,
    FINAL_STATUSES,
    STATUS_RANK,
    MessageStatus,
    is_final,
    rank_of,
    status_of,
)

S = MessageStatus


def test_twilio_statuses_map_as_the_design_says() -> None:
    assert TWILIO_STATUS == {
        "accepted": S.SENT,
        "scheduled": S.SENT,
        "queued": S.SENT,
        "sending": S.SENT,
        "sent": S.SENT,
        "delivered": S.DELIVERED,
        "read": S.READ,
        "undelivered": S.UNDELIVERED,
        "failed": S.FAILED,
    }


@pytest.mark.parametrize(
    "path",
    [
        [S.QUEUED, S.SENDING, S.SENT, S.DELIVERED, S.READ],
        [S.QUEUED, S.SENDING, S.SENT, S.UNDELIVERED],
        [S.QUEUED, S.SENDING, S.SENT, S.FAILED],
        [S.QUEUED, S.SENDING, S.FAILED],
        [S.QUEUED, S.SKIPPED],
    ],
    ids=lambda path: "<".join(s.value for s in path),
)
def test_ranks_strictly_increase_along_each_forward_path(
    path: list[MessageStatus],
) -> None:
    ranks = [rank_of(s) for s in path]
    assert ranks == sorted(set(ranks)), ranks


def test_a_late_delivery_report_outranks_an_earlier_failure() -> None:
    # Carriers send late DLRs; delivered is the stronger evidence.
    assert rank_of(S.DELIVERED) > rank_of(S.FAILED) > rank_of(S.UNDELIVERED)


def test_skipped_outranks_every_status_a_callback_can_report() -> None:
    assert all(rank_of(S.SKIPPED) > rank_of(s) for s in TWILIO_STATUS.values())


def test_every_status_has_a_unique_rank() -> None:
    assert set(STATUS_RANK) == set(MessageStatus)
    assert len(set(STATUS_RANK.values())) == len(MessageStatus)


@pytest.mark.parametrize("status", list(MessageStatus))
def test_status_of_inverts_rank_of(status: MessageStatus) -> None:
    assert status_of(rank_of(status)) is status


def test_an_unknown_rank_names_no_status() -> None:
    with pytest.raises(KeyError):
        status_of(rank_of(S.SENT) + 1)


def test_final_statuses() -> None:
    assert FINAL_STATUSES == {S.UNDELIVERED, S.FAILED, S.DELIVERED, S.READ, S.SKIPPED}
    assert [s for s in MessageStatus if is_final(s)] == [
        s for s in MessageStatus if s in FINAL_STATUSES
    ]
    assert not any(is_final(s) for s in (S.QUEUED, S.SENDING, S.SENT))


def test_accepted_statuses_are_the_ones_twilio_took() -> None:
    assert ACCEPTED_STATUSES == {S.SENT, S.UNDELIVERED, S.DELIVERED, S.READ}
    assert S.FAILED not in ACCEPTED_STATUSES
    assert S.SKIPPED not in ACCEPTED_STATUSES
