"""Erasure on the Firestore emulator: after DELETE /v1/users/{phone} no
document anywhere holds the number or what was said to it; an opted-out
number keeps only a keyed suppression entry that a re-import still obeys; a
completed campaign's summary keeps its counts; a retry after a failure halfway
finishes the job."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from google.cloud import firestore

from shared.privacy import erasure
from shared.privacy.erasure import erase_phone
from shared.store.campaigns import CampaignStatus, campaign_ref
from shared.store.messages import MessageStatus
from tests.integration.api.test_reports_api import (
    NOW,
    MessageFactory,
    make_campaign,
)
from tests.integration.audience.test_imports_api import imported

pytestmark = pytest.mark.integration

PHONE = "+14155550177"
FORMS = [PHONE, PHONE[1:], PHONE[2:]]
BODY = "Quokka sale for Pat: marmalade half price"
REPLY = "Xylophone question about my order"


def all_documents(db: Any) -> Iterator[firestore.DocumentSnapshot]:
    def walk(collections: Any) -> Iterator[firestore.DocumentSnapshot]:
        for collection in collections:
            for ref in collection.list_documents():
                snapshot = ref.get()
                if snapshot.exists:
                    yield snapshot
                yield from walk(ref.collections())

    yield from walk(db.collections())


def leaks(db: Any) -> list[str]:
    found = []
    for snapshot in all_documents(db):
        text = f"{snapshot.reference.path} {snapshot.to_dict()}"
        found += [
            f"{snapshot.reference.path}: {needle}"
            for needle in [*FORMS, "Quokka", "Xylophone"]
            if needle in text
        ]
    return found


def seed(api: Any, db: Any) -> str:
    """P was messaged by a completed campaign, replied, texted STOP, caused an
    event, had a callback nobody matched and a bad import row."""
    created = api("POST", "/v1/users", json={"phone": PHONE, "attributes": {"n": 1}})
    assert created.status == 201
    campaign = make_campaign(db, completed_at=NOW)
    factory = MessageFactory(db, campaign.id)
    receipt = {"To": PHONE, "MessageStatus": "delivered", "MessageSid": "SM1"}
    refused = {
        "step": "send",
        "outcome": "retry",
        "reason": f"21211: The 'To' number {PHONE} is not valid",
        "at": NOW,
    }
    factory.add(
        MessageStatus.DELIVERED,
        phone=PHONE,
        body=BODY,
        receipts=[receipt],
        audit=[refused],
    )
    factory.add(MessageStatus.DELIVERED)
    factory.add(MessageStatus.SKIPPED, skip_reason="no_consent")
    completed = {"status": CampaignStatus.COMPLETED.value}
    campaign_ref(db, campaign.id).update(completed)
    triggered = make_campaign(db)
    pending = MessageFactory(db, triggered.id)
    pending.add(MessageStatus.QUEUED, phone=PHONE, body=BODY)
    stop = api("PUT", f"/v1/users/{PHONE}/consent", json={"state": "STOP"})
    assert stop.status == 200
    db.collection("inbound").document("SMin1").set(
        {"params": {"From": PHONE, "Body": REPLY}, "phone": PHONE, "body": REPLY}
    )
    db.collection("events").document("ev1").set(
        {"type": "order", "phone": PHONE, "properties": {"note": BODY}}
    )
    db.collection("receipts").document("SMx_delivered").set(
        {"params": {"To": f"whatsapp:{PHONE}", "Body": BODY}}
    )
    report = imported(api, f"phone,timezone\n{PHONE},Mars/Base\n")
    assert report["invalid"] == 1
    return campaign.id


def test_erasure_leaves_no_trace_but_the_suppression_and_the_counts(
    api: Any, db: Any
) -> None:
    campaign_id = seed(api, db)
    summary = api("GET", f"/v1/campaigns/{campaign_id}/summary").body
    assert leaks(db), "the seed holds the number"

    erased = api("DELETE", f"/v1/users/{PHONE}")

    assert erased.status == 200, erased.body
    assert erased.body["erased"] == {
        "messages": 2,
        "inbound": 1,
        "events": 1,
        "unmatched_receipts": 1,
        "consent_events": 2,
        "users": 1,
    }
    assert erased.body["suppressed"] is True
    assert leaks(db) == []
    assert api("GET", f"/v1/campaigns/{campaign_id}/summary").body == summary
    # The queued message will never be sent.
    reasons = {
        d.to_dict().get("skip_reason")
        for d in db.collection("messages").stream()
        if d.to_dict().get("erased_at")
    }
    assert "erased" in reasons

    again = imported(api, f"phone,consent_state\n{PHONE},OPT_IN\n")
    assert again["created"] == 1
    assert api("GET", f"/v1/users/{PHONE}").body["consent"]["state"] == "STOP"


def test_a_retry_after_a_failure_halfway_finishes_the_erasure(
    api: Any, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(api, db)
    monkeypatch.setattr(erasure, "ERASURE_BATCH", 1)
    commits = {"n": 0}
    real_commit = firestore.WriteBatch.commit

    def failing_fourth_commit(self: Any, *args: Any, **kwargs: Any) -> Any:
        # 1: the suppression entry, 2: the frozen summary, 3: the first
        # message's redaction, 4: the second one's, which fails.
        commits["n"] += 1
        if commits["n"] == 4:
            raise RuntimeError("crash halfway")
        return real_commit(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(firestore.WriteBatch, "commit", failing_fourth_commit)
        with pytest.raises(RuntimeError):
            erase_phone(db, PHONE, NOW, timedelta(days=90))
    assert leaks(db), "the first attempt stopped halfway"

    report = erase_phone(db, PHONE, NOW, timedelta(days=90))

    assert report["erased"]["messages"] == 1  # the other one went the first time
    assert report["suppressed"] is True
    assert leaks(db) == []
    assert erase_phone(db, PHONE, NOW, timedelta(days=90))["erased"] == {
        "messages": 0,
        "inbound": 0,
        "events": 0,
        "unmatched_receipts": 0,
        "consent_events": 0,
        "users": 0,
    }
