"""Reports API on the Firestore emulator: summary, message trail, inbound, dashboard.

Messages are written straight into the emulator by a factory, so each test
states exactly the outcomes it summarises.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest

from shared.api import reports as reports_module
from shared.audience.consent import set_consent
from shared.campaigns import summary as summary_module
from shared.campaigns.scheduler import status_counts
from shared.campaigns.summary import (
    REFRESH_LEASE,
    SNAPSHOT_MAX_AGE,
    SNAPSHOT_STALE_BOUND,
)
from shared.delivery.messages import message_id_for
from shared.delivery.receipts import apply_status_callback
from shared.payloads import StatusCallback
from shared.platform.firestore import operations
from shared.store import campaigns as campaign_store
from shared.store.campaigns import Campaign, CampaignStatus, campaign_ref
from shared.store.messages import Message, MessageStatus, rank_of, status_of
from shared.store.users import ConsentState

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 26, 15, 0, tzinfo=UTC)  # the `api` fixture's clock
LAUNCHED = NOW - timedelta(hours=1)
_numbers = count(100)

# Statuses whose messages Twilio accepted, so they carry `sent_at`.
ACCEPTED = {
    MessageStatus.SENT,
    MessageStatus.DELIVERED,
    MessageStatus.READ,
    MessageStatus.UNDELIVERED,
}


def wait_until(condition: Any, bound: float = 30.0) -> None:
    """Wait on a condition of the threads under test (bounded, never timed)."""
    pause = threading.Event()
    for _ in range(int(bound / 0.01)):
        if condition():
            return
        pause.wait(0.01)
    raise AssertionError("condition not met")


def new_phone() -> str:
    return f"+1415555{next(_numbers):04d}"


def make_campaign(
    db: Any, status: CampaignStatus = CampaignStatus.RUNNING, **fields: Any
) -> Campaign:
    campaign = Campaign(
        id=f"camp{next(_numbers)}",
        name="Black Friday",
        template_id="t1",
        segment_id="s1",
        status=status,
        launch_id="launch1",
        launched_at=LAUNCHED,
        recipients_planned=20,
        created_at=LAUNCHED,
        **fields,
    )
    doc = campaign.model_dump(mode="python", by_alias=True, exclude={"id"})
    campaign_ref(db, campaign.id).set(doc)
    return campaign


@dataclass
class MessageFactory:
    """Writes message documents of one campaign, sent a minute apart."""

    db: Any
    campaign_id: str
    sends: int = 0
    phones: list[str] = field(default_factory=list)

    def add(
        self,
        status: MessageStatus,
        *,
        segments: int = 1,
        sent: bool | None = None,
        **fields: Any,
    ) -> str:
        phone = fields.pop("phone", None) or new_phone()
        message_id = message_id_for(self.campaign_id, phone)
        doc: dict[str, Any] = {
            "campaign_id": self.campaign_id,
            "phone": phone,
            "body": "Hi Pat, 20% off today",
            "encoding": "GSM-7",
            "segments": segments,
            "status_rank": rank_of(status),
            "send_at": LAUNCHED,
            "created_at": LAUNCHED,
            "audit": [],
            "receipts": [],
            **fields,
        }
        if sent if sent is not None else status in ACCEPTED:
            doc["sent_at"] = LAUNCHED + timedelta(minutes=self.sends)
            self.sends += 1
        self.db.collection("messages").document(message_id).set(doc)
        self.phones.append(phone)
        return message_id


def mixed_outcomes(db: Any, campaign_id: str) -> MessageFactory:
    factory = MessageFactory(db, campaign_id)
    for segments in (1, 1, 2, 3):
        factory.add(MessageStatus.DELIVERED, segments=segments)
    # A late delivery after an error: the code stays, but it is no failure.
    factory.add(MessageStatus.DELIVERED, error_code="30003")
    factory.add(MessageStatus.READ, segments=2)
    factory.add(MessageStatus.UNDELIVERED, error_code="30003")
    factory.add(MessageStatus.UNDELIVERED, error_code="30007")
    factory.add(MessageStatus.FAILED, error_code="21211")  # refused at send
    factory.add(MessageStatus.FAILED, sent=True, error_code="30008")
    factory.add(MessageStatus.FAILED, error_code="63999")  # not in the table
    factory.add(MessageStatus.SKIPPED, skip_reason="no_consent")
    factory.add(MessageStatus.SKIPPED, skip_reason="no_consent")
    factory.add(MessageStatus.SKIPPED, skip_reason="frequency_cap")
    factory.add(MessageStatus.SKIPPED, skip_reason="missing_variable")
    factory.add(MessageStatus.SKIPPED, skip_reason="brand_new_reason")
    factory.add(MessageStatus.SENT)
    factory.add(MessageStatus.QUEUED)
    factory.add(MessageStatus.SENDING)
    return factory


def recount(db: Any, campaign_id: str) -> dict[str, Any]:
    """What the summary must say, recounted from each message's own fields."""
    docs = [
        d.to_dict()
        for d in db.collection("messages").stream()
        if d.to_dict()["campaign_id"] == campaign_id
    ]
    statuses = Counter(status_of(d["status_rank"]).value for d in docs)
    failed = [
        d
        for d in docs
        if status_of(d["status_rank"]).value in {"FAILED", "UNDELIVERED"}
    ]
    sent = [d for d in docs if d.get("sent_at")]
    return {
        "targeted": len(docs),
        "counts": {s.value: statuses.get(s.value, 0) for s in MessageStatus},
        "skips": Counter(d["skip_reason"] for d in docs if d.get("skip_reason")),
        "failures": Counter(d["error_code"] for d in failed),
        "sent": len(sent),
        "segments": sum(d["segments"] for d in sent),
        "first": min(d["sent_at"] for d in sent),
        "last": max(d["sent_at"] for d in sent),
        "delivered": statuses["DELIVERED"] + statuses["READ"],
    }


def summary_of(api: Any, campaign_id: str) -> dict[str, Any]:
    response = api("GET", f"/v1/campaigns/{campaign_id}/summary")
    assert response.status == 200, response.body
    body: dict[str, Any] = response.body
    return body


def test_summary_counts_equal_a_recount_of_the_messages(api: Any, db: Any) -> None:
    campaign = make_campaign(db)
    mixed_outcomes(db, campaign.id)
    summary = summary_of(api, campaign.id)
    expected = recount(db, campaign.id)

    assert summary["targeted"] == expected["targeted"] == 19
    assert summary["counts"] == expected["counts"]
    # Reasons outside the known list land in `other`, with nothing lost.
    assert summary["skips"] == {
        "no_consent": 2,
        "frequency_cap": 1,
        "missing_variable": 1,
        "other": 1,
    }
    assert sum(summary["skips"].values()) == sum(expected["skips"].values())
    failures = {f["code"]: f["count"] for f in summary["failures"]}
    assert failures == {"30003": 1, "30007": 1, "21211": 1, "30008": 1, "other": 1}
    assert sum(failures.values()) == sum(expected["failures"].values())
    meanings = {f["code"]: f["meaning"] for f in summary["failures"]}
    assert meanings["30003"] == "Unreachable destination handset"
    assert summary["sent"] == expected["sent"]
    assert summary["total_segments"] == expected["segments"]
    assert summary["delivered"] == expected["delivered"] == 6
    assert summary["delivery_rate"] == round(6 / (6 + 2 + 3), 4)
    assert datetime.fromisoformat(summary["first_sent_at"]) == expected["first"]
    assert datetime.fromisoformat(summary["last_sent_at"]) == expected["last"]
    minutes = (expected["last"] - expected["first"]).total_seconds() / 60
    assert summary["throughput_per_minute"] == round(expected["sent"] / minutes, 2)
    assert summary["planned"] == 20
    assert summary["frozen"] is False


def test_a_campaign_without_messages_has_an_empty_summary(api: Any, db: Any) -> None:
    summary = summary_of(api, make_campaign(db).id)
    assert summary["targeted"] == 0
    assert summary["delivery_rate"] is None
    assert summary["throughput_per_minute"] is None
    assert summary["first_sent_at"] is None
    assert summary["failures"] == []
    assert summary["opt_outs"] == {"count": 0, "rate": None, "by_source": {}}


def test_a_draft_campaigns_summary_is_zeros_without_a_count(api: Any, db: Any) -> None:
    # A DRAFT has no messages: fan-out starts at launch. Nothing is counted
    # and no snapshot is written, however often a dashboard polls it.
    campaign = make_campaign(db, status=CampaignStatus.DRAFT)
    before = store_calls()
    summary = summary_of(api, campaign.id)
    assert calls_since(before) == {"reads": 1, "writes": 0}
    assert summary["status"] == "DRAFT"
    assert summary["targeted"] == 0
    assert set(summary["counts"].values()) == {0}
    running = summary_of(api, make_campaign(db).id)
    assert summary["counts"] == running["counts"]
    assert summary["skips"] == running["skips"]
    assert summary["opt_outs"] == running["opt_outs"]
    assert summary["sent"] == summary["delivered"] == summary["total_segments"] == 0
    assert summary["failures"] == []
    assert summary["age_seconds"] == 0
    assert summary["planned"] == 20


def test_summary_of_an_unknown_campaign_is_404(api: Any) -> None:
    response = api("GET", "/v1/campaigns/nope/summary")
    assert response.status == 404
    assert response.body["error"]["code"] == "not_found"


def stop(db: Any, phone: str, at: datetime, source: str = "keyword") -> None:
    set_consent(
        db, phone, ConsentState.STOP, source=source, now=at, create_missing=True
    )


def test_opt_outs_count_recipients_who_stopped_after_their_send(
    api: Any, db: Any
) -> None:
    campaign = make_campaign(db)
    factory = MessageFactory(db, campaign.id)
    after, twice, before, skipped = (new_phone() for _ in range(4))
    for phone in (after, twice, before):
        factory.add(MessageStatus.DELIVERED, phone=phone)
    factory.add(MessageStatus.SKIPPED, phone=skipped, skip_reason="no_consent")
    stop(db, after, LAUNCHED + timedelta(minutes=30))
    stop(db, twice, LAUNCHED + timedelta(minutes=10), source="carrier_21610")
    set_consent(db, twice, ConsentState.OPT_IN, source="keyword", now=NOW)
    stop(db, twice, NOW + timedelta(seconds=1))
    stop(db, before, LAUNCHED + timedelta(seconds=90))  # sent at +2 min
    stop(db, new_phone(), LAUNCHED - timedelta(minutes=5))  # before the launch
    stop(db, skipped, LAUNCHED + timedelta(minutes=20))  # never sent to
    stop(db, new_phone(), LAUNCHED + timedelta(minutes=20))  # not a recipient

    api.context.clock.now = NOW + timedelta(minutes=1)
    opt_outs = summary_of(api, campaign.id)["opt_outs"]
    assert opt_outs["count"] == 2
    assert opt_outs["by_source"] == {"keyword": 2}
    assert opt_outs["rate"] == round(2 / 3, 4)


def complete(db: Any, campaign: Campaign, at: datetime) -> None:
    """What the scheduler writes when the last message is final."""
    campaign_ref(db, campaign.id).update(
        {
            "status": CampaignStatus.COMPLETED.value,
            "completed_at": at,
            "final_counts": status_counts(db, campaign.id),
        }
    )


def test_a_completed_campaigns_summary_never_changes(api: Any, db: Any) -> None:
    campaign = make_campaign(db)
    factory = MessageFactory(db, campaign.id)
    undelivered = factory.add(MessageStatus.UNDELIVERED, error_code="30003")
    factory.add(MessageStatus.DELIVERED)
    complete(db, campaign, NOW)
    # A late READ lands after completion, before anyone read the summary.
    factory.add(MessageStatus.READ)

    first = summary_of(api, campaign.id)
    assert first["frozen"] is True
    assert first["counts"]["READ"] == 0, "status counts come from final_counts"
    assert first["targeted"] == 2

    messages = db.collection("messages")
    messages.document(undelivered).update({"status_rank": rank_of(MessageStatus.READ)})
    stop(db, factory.phones[1], NOW + timedelta(minutes=5))
    api.context.clock.now = NOW + timedelta(hours=2)
    assert summary_of(api, campaign.id) == first


def test_a_running_campaigns_summary_follows_its_messages(api: Any, db: Any) -> None:
    campaign = make_campaign(db)
    factory = MessageFactory(db, campaign.id)
    factory.add(MessageStatus.SENT)
    assert summary_of(api, campaign.id)["counts"]["SENT"] == 1
    factory.add(MessageStatus.DELIVERED)
    api.context.clock.now = NOW + SNAPSHOT_MAX_AGE + timedelta(seconds=1)
    summary = summary_of(api, campaign.id)
    assert summary["counts"]["DELIVERED"] == 1
    assert summary["delivery_rate"] == 1.0


# ------------------------------------------------- a running campaign's snapshot


def store_calls() -> dict[str, int]:
    return dict(operations.snapshot())


def calls_since(before: dict[str, int]) -> dict[str, int]:
    after = operations.snapshot()
    return {kind: after.get(kind, 0) - before.get(kind, 0) for kind in after}


def assert_exact(summary: dict[str, Any], db: Any, campaign_id: str) -> None:
    expected = recount(db, campaign_id)
    assert summary["counts"] == expected["counts"]
    assert summary["targeted"] == expected["targeted"]
    assert summary["sent"] == expected["sent"]
    assert summary["delivered"] == expected["delivered"]


def snapshot_then_deliver(api: Any, db: Any) -> tuple[str, MessageFactory, Any]:
    """A running campaign whose summary was read at NOW (its snapshot), after
    which one more message was DELIVERED; its id, factory and that summary."""
    campaign = make_campaign(db)
    factory = MessageFactory(db, campaign.id)
    factory.add(MessageStatus.SENT)
    first = summary_of(api, campaign.id)
    factory.add(MessageStatus.DELIVERED)  # not in the snapshot yet
    return campaign.id, factory, first


def test_a_running_summary_is_answered_from_its_snapshot_within_its_age(
    api: Any, db: Any
) -> None:
    campaign_id, _, first = snapshot_then_deliver(api, db)
    assert first["age_seconds"] == 0

    api.context.clock.now = NOW + SNAPSHOT_MAX_AGE - timedelta(seconds=1)
    before = store_calls()
    polled = summary_of(api, campaign_id)
    # One batched read of the campaign and its snapshot: no count() at all.
    assert calls_since(before) == {"reads": 2, "writes": 0}
    assert polled["counts"]["DELIVERED"] == 0
    assert polled["computed_at"] == first["computed_at"]
    assert polled["age_seconds"] == SNAPSHOT_MAX_AGE.total_seconds() - 1


def test_a_snapshot_older_than_its_age_is_recounted_then_answered(
    api: Any, db: Any
) -> None:
    campaign_id, factory, _ = snapshot_then_deliver(api, db)
    factory.add(MessageStatus.SKIPPED, skip_reason="no_consent")

    later = NOW + SNAPSHOT_MAX_AGE + timedelta(seconds=1)
    api.context.clock.now = later
    recounted = summary_of(api, campaign_id)
    assert recounted["age_seconds"] == 0
    assert datetime.fromisoformat(recounted["computed_at"]) == later
    assert_exact(recounted, db, campaign_id)
    assert recounted["skips"] == {"no_consent": 1}

    api.context.clock.now = later + timedelta(seconds=2)
    before = store_calls()
    again = summary_of(api, campaign_id)
    assert calls_since(before) == {"reads": 2, "writes": 0}
    assert again == {**recounted, "age_seconds": 2.0}


def test_a_recount_longer_than_the_age_is_fresh_from_when_it_ended(
    api: Any, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 20,000 messages under load: a recount takes longer than the snapshot's
    # age. Counted from its start, every caller after it would recount again.
    campaign_id, _, _ = snapshot_then_deliver(api, db)
    took = SNAPSHOT_MAX_AGE + timedelta(seconds=3)
    ticks = iter([100.0, 100.0 + took.total_seconds()])
    monkeypatch.setattr(summary_module, "monotonic", lambda: next(ticks), raising=False)
    began = NOW + SNAPSHOT_MAX_AGE + timedelta(seconds=1)
    api.context.clock.now = began
    recounted = summary_of(api, campaign_id)
    assert recounted["counts"]["DELIVERED"] == 1

    # The recount ended at began + took; two seconds after that, its snapshot
    # is the answer, and says how old its counts are.
    api.context.clock.now = began + took + timedelta(seconds=2)
    before = store_calls()
    polled = summary_of(api, campaign_id)
    assert calls_since(before) == {"reads": 2, "writes": 0}
    assert polled["computed_at"] == recounted["computed_at"]
    assert polled["age_seconds"] == (took + timedelta(seconds=2)).total_seconds()

    # Past its age from the end, it is recounted as before.
    monkeypatch.setattr(summary_module, "monotonic", lambda: 0.0)
    api.context.clock.now = began + took + SNAPSHOT_MAX_AGE + timedelta(seconds=1)
    assert summary_of(api, campaign_id)["age_seconds"] == 0


def test_of_callers_finding_a_stale_snapshot_at_once_exactly_one_recounts(
    api: Any, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign_id, _, _ = snapshot_then_deliver(api, db)
    recounts: list[datetime] = []
    compute = summary_module.compute_summary

    def counted(*args: Any, **kwargs: Any) -> Any:
        recounts.append(args[2])
        return compute(*args, **kwargs)

    monkeypatch.setattr(summary_module, "compute_summary", counted)
    stale = NOW + SNAPSHOT_MAX_AGE + timedelta(seconds=1)
    callers = 8
    start = threading.Barrier(callers)

    def poll(_: int) -> Any:
        start.wait(timeout=30)
        return summary_module.campaign_summary(db, campaign_id, stale)

    with ThreadPoolExecutor(max_workers=callers) as pool:
        answers = list(pool.map(poll, range(callers)))

    assert recounts == [stale]
    for answer in answers:
        assert answer.age_seconds <= SNAPSHOT_STALE_BOUND.total_seconds()
        # Either the snapshot read (the recount still running) or the recount.
        assert answer.counts["DELIVERED"] == (1 if answer.age_seconds == 0 else 0)
    assert any(answer.age_seconds == 0 for answer in answers)


def test_a_snapshot_being_refreshed_is_never_answered_beyond_its_bound(
    api: Any, db: Any
) -> None:
    campaign_id, _, _ = snapshot_then_deliver(api, db)
    # Another API instance takes the refresh once the snapshot is stale, and
    # then never finishes (it died mid-recount).
    stale = NOW + SNAPSHOT_MAX_AGE + timedelta(seconds=1)
    found = campaign_store.summary_documents(db, campaign_id)
    assert found is not None
    lease = campaign_store.lease_summary_refresh(
        db, campaign_id, found.live, stale + REFRESH_LEASE
    )
    assert lease is not None

    api.context.clock.now = stale
    before = store_calls()
    meanwhile = summary_of(api, campaign_id)
    assert calls_since(before) == {"reads": 2, "writes": 0}
    assert meanwhile["age_seconds"] == (stale - NOW).total_seconds()
    assert meanwhile["counts"]["DELIVERED"] == 0

    beyond = NOW + SNAPSHOT_STALE_BOUND + timedelta(seconds=1)
    assert beyond < stale + REFRESH_LEASE, "the lease still runs"
    api.context.clock.now = beyond
    exact = summary_of(api, campaign_id)
    assert exact["age_seconds"] == 0
    assert_exact(exact, db, campaign_id)

    # Once the dead lease runs out, the next caller takes it over and stores.
    api.context.clock.now = stale + REFRESH_LEASE + timedelta(seconds=1)
    summary_of(api, campaign_id)
    api.context.clock.now += timedelta(seconds=1)
    before = store_calls()
    assert summary_of(api, campaign_id)["age_seconds"] == 1.0
    assert calls_since(before) == {"reads": 2, "writes": 0}


def test_a_snapshot_of_another_status_is_never_answered(api: Any, db: Any) -> None:
    campaign = make_campaign(db)
    factory = MessageFactory(db, campaign.id)
    factory.add(MessageStatus.QUEUED)
    summary_of(api, campaign.id)
    factory.add(MessageStatus.SKIPPED, skip_reason="campaign_cancelled")
    campaign_ref(db, campaign.id).update({"status": CampaignStatus.CANCELLED.value})

    api.context.clock.now = NOW + timedelta(seconds=1)
    cancelled = summary_of(api, campaign.id)
    assert cancelled["status"] == "CANCELLED"
    assert cancelled["age_seconds"] == 0
    assert cancelled["skips"] == {"campaign_cancelled": 1}


def test_completion_freezes_the_recount_not_the_snapshot(api: Any, db: Any) -> None:
    campaign = make_campaign(db)
    factory = MessageFactory(db, campaign.id)
    last = factory.add(MessageStatus.SENT)
    running = summary_of(api, campaign.id)
    assert running["frozen"] is False
    db.collection("messages").document(last).update(
        {"status_rank": rank_of(MessageStatus.DELIVERED)}
    )
    complete(db, campaign, NOW + timedelta(seconds=1))

    api.context.clock.now = NOW + timedelta(seconds=2)
    frozen = summary_of(api, campaign.id)
    assert frozen["frozen"] is True
    assert frozen["age_seconds"] is None
    assert_exact(frozen, db, campaign.id)
    assert frozen["counts"]["DELIVERED"] == 1
    api.context.clock.now = NOW + timedelta(hours=1)
    assert summary_of(api, campaign.id) == frozen


# ---------------------------------------------------------------- one message


def status_callback(message_id: str, status: str, **params: str) -> StatusCallback:
    return StatusCallback(
        params={"MessageSid": "SM1", "MessageStatus": status, **params},
        query={"message_id": message_id},
        received_at=NOW,
    )


def test_a_message_shows_its_audit_and_receipts_in_arrival_order(
    api: Any, db: Any
) -> None:
    campaign = make_campaign(db)
    audit = [
        {"step": step, "outcome": "pass", "reason": None, "at": NOW}
        for step in ("idempotency", "campaign_state", "consent", "quiet_hours")
    ]
    message_id = MessageFactory(db, campaign.id).add(MessageStatus.SENT, audit=audit)
    arrivals = ["sent", "undelivered", "delivered", "sending"]
    for status in arrivals:
        extra = {"ErrorCode": "30003"} if status == "undelivered" else {}
        apply_status_callback(db, status_callback(message_id, status, **extra), NOW)

    response = api("GET", f"/v1/messages/{message_id}")
    assert response.status == 200
    message = response.body
    assert [entry["step"] for entry in message["audit"]] == [
        "idempotency",
        "campaign_state",
        "consent",
        "quiet_hours",
    ]
    assert [r["params"]["MessageStatus"] for r in message["receipts"]] == arrivals
    assert message["status"] == "DELIVERED"
    assert message["error_code"] == "30003"
    Message.model_validate(message)


# ---------------------------------------------------------------- inbound


def add_inbound(db: Any, sid: str, phone: str, body: str, minutes_ago: int) -> None:
    classification = body.upper() if body.upper() in {"STOP", "HELP"} else "REPLY"
    db.collection("inbound").document(sid).set(
        {
            "params": {"From": phone, "Body": body, "MessageSid": sid},
            "phone": phone,
            "body": body,
            "classification": classification,
            "received_at": NOW - timedelta(minutes=minutes_ago),
            "processed_at": NOW,
        }
    )


def test_inbound_lists_the_newest_first_with_phones_masked(api: Any, db: Any) -> None:
    add_inbound(db, "SMa", "+14155550101", "STOP", minutes_ago=30)
    add_inbound(db, "SMb", "+14155550102", "Is the sale on?", minutes_ago=5)
    add_inbound(db, "SMc", "+14155550103", "HELP", minutes_ago=10)

    first = api("GET", "/v1/inbound", query={"limit": "2"})
    assert first.status == 200
    assert [item["id"] for item in first.body["items"]] == ["SMb", "SMc"]
    newest = first.body["items"][0]
    assert newest["phone"] == "+1415***0102"
    assert newest["body"] == "Is the sale on?"
    assert newest["classification"] == "REPLY"
    received = datetime.fromisoformat(newest["received_at"])
    assert received == NOW - timedelta(minutes=5)
    token = first.body["next_page_token"]
    rest = api("GET", "/v1/inbound", query={"limit": "2", "page_token": token})
    assert [item["id"] for item in rest.body["items"]] == ["SMa"]
    assert rest.body["items"][0]["classification"] == "STOP"
    assert rest.body["next_page_token"] is None
    text = json.dumps([first.body, rest.body])
    assert "4155550101" not in text and "4155550102" not in text


def test_inbound_rejects_a_bad_limit_and_token(api: Any) -> None:
    assert api("GET", "/v1/inbound", query={"limit": "501"}).status == 400
    bad = api("GET", "/v1/inbound", query={"page_token": "!!"})
    assert bad.status == 400
    assert bad.body["error"]["code"] == "invalid_page_token"


# ---------------------------------------------------------------- dashboard


def test_the_dashboard_counts_users_campaigns_and_the_last_day(
    api: Any, db: Any
) -> None:
    for state in ("OPT_IN", "OPT_IN", "STOP", "OPT_OUT"):
        db.collection("users").document(new_phone()).set({"consent": {"state": state}})
    make_campaign(db)
    make_campaign(db)
    completed = make_campaign(db)
    campaign_ref(db, completed.id).update({"status": "COMPLETED"})
    factory = MessageFactory(db, completed.id)
    factory.add(MessageStatus.DELIVERED)
    factory.add(MessageStatus.SKIPPED, skip_reason="no_consent")
    factory.add(MessageStatus.DELIVERED, created_at=NOW - timedelta(hours=25))
    add_inbound(db, "SM1", new_phone(), "STOP", minutes_ago=60)
    add_inbound(db, "SM2", new_phone(), "hello", minutes_ago=60)
    add_inbound(db, "SM3", new_phone(), "HELP", minutes_ago=60 * 25)

    response = api("GET", "/v1/dashboard")
    assert response.status == 200
    board = response.body
    assert board["window_hours"] == 24
    assert board["users_by_consent_state"] == {"OPT_IN": 2, "OPT_OUT": 1, "STOP": 1}
    assert board["campaigns_by_status"]["RUNNING"] == 2
    assert board["campaigns_by_status"]["COMPLETED"] == 1
    assert sum(board["campaigns_by_status"].values()) == 3
    assert board["messages_by_status"]["DELIVERED"] == 1
    assert board["messages_by_status"]["SKIPPED"] == 1
    assert sum(board["messages_by_status"].values()) == 2
    assert board["inbound"] == {
        "total": 2,
        "by_classification": {"STOP": 1, "START": 0, "HELP": 0, "REPLY": 1},
    }
    assert set(board["messages_by_status"]) == {s.value for s in MessageStatus}


def test_dashboards_asked_for_at_once_share_one_set_of_counts(
    api: Any, db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    build = reports_module.build_dashboard
    builds: list[datetime] = []
    first_started, release_first = threading.Event(), threading.Event()

    def counted(db: Any, now: datetime) -> Any:
        builds.append(now)
        if len(builds) == 1:
            first_started.set()
            assert release_first.wait(30)
        return build(db, now)

    monkeypatch.setattr(reports_module, "build_dashboard", counted)

    def sharing() -> int:
        shared = getattr(reports_module, "_dashboards", None)
        state = shared._keys.get("dashboard") if shared else None
        return state.callers if state else 0

    with ThreadPoolExecutor(max_workers=3) as pool:
        first = pool.submit(api, "GET", "/v1/dashboard")
        assert first_started.wait(30)
        # Two consoles poll while the first set of counts is being made.
        later = [pool.submit(api, "GET", "/v1/dashboard") for _ in range(2)]
        wait_until(lambda: sharing() == 3 or len(builds) == 3)
        release_first.set()
        answers = [first.result(30), *(f.result(30) for f in later)]

    assert [a.status for a in answers] == [200, 200, 200]
    # The two later callers share the one set begun after they asked.
    assert len(builds) == 2
    assert answers[1].body == answers[2].body


def test_engine_outcomes_are_named_in_the_summary_not_other(api: Any, db: Any) -> None:
    """A render that failed and a message no send task ever sent are reasons
    an operator must see by name."""
    campaign = make_campaign(db)
    factory = MessageFactory(db, campaign.id)
    factory.add(MessageStatus.SKIPPED, skip_reason="render_failed")
    factory.add(MessageStatus.FAILED, error_code="send_attempts_exhausted")
    summary = summary_of(api, campaign.id)
    assert summary["skips"] == {"render_failed": 1}
    assert [(f["code"], f["count"]) for f in summary["failures"]] == [
        ("send_attempts_exhausted", 1)
    ]
    assert summary["failures"][0]["meaning"]
