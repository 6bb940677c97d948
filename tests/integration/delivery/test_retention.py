"""Retention: a message carries `expire_at` = MESSAGE_RETENTION_DAYS after its
final status, set by the write that makes it final; the summary outlives it.

With a 0-day retention every finished message is already past its expiry (the
TTL policy would delete it), and the campaign's summary still answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest

from shared.campaigns.replan import skip_queued_messages
from shared.delivery.receipts import apply_status_callback
from shared.platform.config import core_settings
from shared.store.campaigns import CampaignStatus, campaign_ref
from shared.store.messages import MessageStatus
from tests.integration.api.test_reports_api import NOW, MessageFactory, make_campaign
from tests.integration.delivery.test_receipts_emulator import callback

pytestmark = pytest.mark.integration


@pytest.fixture
def zero_day_retention(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("MESSAGE_RETENTION_DAYS", "0")
    core_settings.cache_clear()
    yield
    core_settings.cache_clear()


def test_finished_messages_expire_and_the_summary_still_answers(
    api: Any, db: Any, zero_day_retention: None
) -> None:
    campaign = make_campaign(db, completed_at=NOW)
    factory = MessageFactory(db, campaign.id)
    sent_id = factory.add(MessageStatus.SENT, provider_sid="SMr1")
    queued_id = factory.add(MessageStatus.QUEUED)

    result = apply_status_callback(
        db, callback("delivered", message_id=sent_id, sid="SMr1"), NOW
    )
    skip_queued_messages(db, campaign.id, "campaign_cancelled", NOW, budget_s=10)

    assert result.status is MessageStatus.DELIVERED
    for message_id in (sent_id, queued_id):
        doc = db.collection("messages").document(message_id).get().to_dict()
        assert doc["expire_at"] <= NOW, message_id
    campaign_ref(db, campaign.id).update({"status": CampaignStatus.COMPLETED.value})
    summary = api("GET", f"/v1/campaigns/{campaign.id}/summary")
    assert summary.status == 200
    assert summary.body["frozen"] is True
    assert summary.body["counts"]["DELIVERED"] == 1


def test_the_default_retention_is_ninety_days_after_the_final_status(
    db: Any,
) -> None:
    campaign = make_campaign(db)
    sent_id = MessageFactory(db, campaign.id).add(
        MessageStatus.SENT, provider_sid="SMr2"
    )
    apply_status_callback(
        db, callback("undelivered", message_id=sent_id, sid="SMr2"), NOW
    )
    doc = db.collection("messages").document(sent_id).get().to_dict()
    assert doc["expire_at"] == NOW + timedelta(days=90)
