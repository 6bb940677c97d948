"""Twilio status-callback intake at a paced rate, and no callback lost.

    python bench/bench_load_webhooks.py [--rate 500] [--seconds 30] [--warmup 15]
                                        [--stall-timeout 90]

On the local stack (its own, or the one ESE_ENDPOINTS names) it seeds the
message documents, signs `rate * seconds` distinct status callbacks before
the clock starts (a `sent` then, half the run later, a `delivered` for each
message, each with its message id in the StatusCallback URL as the sender puts
it), and posts them to `twilio_webhooks` in an open loop: callback i falls due
at i / rate seconds whatever the answers take, as Twilio sends them. Only a
204 within Twilio's 15 s counts as accepted.

Then it waits for the receipts to be stored (intake writes them itself, or
Pub/Sub → receipt_updater when a write fails) and reads
every message back: each accepted callback must stand exactly once in its
message's `receipts`. It prints how many were lost, duplicated or unexpected;
apart, what became of the callbacks that got no 204 (Twilio's to retry), and
how many were stored as unmatched or dead-lettered.

The same signed callbacks at the same rate then go to the floor
(bench/floor_function: one Firestore write per request, served like
`twilio_webhooks`, with its THREADS), whose writes are counted too. Prints
offered, attempted and achieved throughput, p50/p99 latency (from when each
callback was due), CPU per request and errors, each beside the floor's.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twilio.request_validator import RequestValidator  # noqa: E402

from bench.load_support import (  # noqa: E402
    GENERATOR_LAG_OK,
    Call,
    LoadResult,
    comparison_lines,
    floor_function,
    floor_writes,
    machine_line,
    measured,
    open_loop,
    stack_groups,
)
from bench.stack_support import (  # noqa: E402
    firestore_client,
    provider_sid,
    running_stack,
    seed_messages,
    signed_status_callback,
)
from local.emulators import reset_firestore  # noqa: E402

CAMPAIGN = "loadhooks"
WARMUP_CAMPAIGN = "loadwarm"
STATUSES = ("sent", "delivered")
FIRST_NUMBER = 4_000_000  # +1415400…
WARMUP_NUMBER = 4_500_000
HELD_FRACTION = 0.98  # achieved / offered at which the rate counts as held
POLL_EVERY = 5.0
# Intake publishes to Pub/Sub; receipt_updater writes to Firestore meanwhile.
MEASURED_EMULATORS = ("firestore-emulator", "pubsub-emulator")
MESSAGE_ID = "message_id"  # the StatusCallback URL's parameter
SETTLE_SECONDS = 5.0  # after every receipt is in: room for late duplicates

ReceiptKey = tuple[str, str, str]  # message id, MessageSid, MessageStatus


@dataclass(frozen=True)
class Storage:
    sent: int
    accepted: int  # answered 204
    stored_once: int  # of the accepted: in `receipts` exactly once
    lost: int  # accepted, and not stored
    duplicated: int  # extra copies of any receipt
    unexpected: int  # receipts on these messages that were never sent
    refused_unstored: int  # no 204 (so Twilio would retry), and not stored
    refused_stored: int  # no 204 seen, stored all the same
    unmatched: int
    dead_lettered: int
    drained_after: float

    @property
    def sound(self) -> bool:
        return self.lost == self.duplicated == self.unexpected == 0


def callbacks_for(
    endpoints: dict[str, Any], campaign_id: str, count: int, first: int
) -> list[Call]:
    """`count` signed callbacks (`sent`, then `delivered`) for fresh messages."""
    messages = (count + len(STATUSES) - 1) // len(STATUSES)
    db = firestore_client(endpoints)
    phones = [f"+1415{first + i:07d}" for i in range(messages)]
    message_ids = seed_messages(db, campaign_id, phones)
    validator = RequestValidator(endpoints["twilio_auth_token"])
    base = endpoints["twilio_webhooks"]
    calls = []
    for index in range(count):
        number = index % messages
        path = f"/twilio/status?{MESSAGE_ID}={message_ids[number]}"
        form, headers = signed_status_callback(
            validator,
            base + path,
            endpoints["twilio_account_sid"],
            provider_sid(campaign_id, number),
            STATUSES[index // messages],
            phones[number],
        )
        calls.append(Call("status", "POST", path, data=form, headers=headers))
    return calls


def receipt_key(call: Call) -> ReceiptKey:
    """The receipt a callback must leave: on its message, its SID and status."""
    form = call.data or {}
    message_id = call.path.split(f"{MESSAGE_ID}=", 1)[1]
    return message_id, form["MessageSid"], form["MessageStatus"]


def stored_receipts(db: Any, campaign_id: str) -> Counter[ReceiptKey]:
    from google.cloud import firestore

    query = (
        db.collection("messages")
        .where(filter=firestore.FieldFilter("campaign_id", "==", campaign_id))
        .select(["receipts"])
    )
    found: Counter[ReceiptKey] = Counter()
    for snapshot in query.stream():
        for receipt in (snapshot.to_dict() or {}).get("receipts") or []:
            params = receipt.get("params") or {}
            sid, status = params.get("MessageSid", ""), params.get("MessageStatus", "")
            found[(snapshot.id, str(sid), str(status))] += 1
    return found


def wait_for_receipts(
    db: Any, accepted: set[ReceiptKey], stall: float
) -> tuple[Counter[ReceiptKey], float]:
    """Poll until every accepted callback is stored, or nothing new came for `stall`
    seconds (longer than Pub/Sub's ack deadline and retry backoff together)."""
    started = last_change = time.monotonic()
    stored = -1
    while True:
        found = stored_receipts(db, CAMPAIGN)
        present = sum(1 for key in accepted if key in found)
        now = time.monotonic()
        if present != stored:
            stored, last_change = present, now
        print(
            f"[drain] {now - started:4.0f}s: {present} of {len(accepted)} accepted "
            f"callbacks stored ({sum(found.values())} receipts in all)",
            flush=True,
        )
        if present == len(accepted) or now - last_change > stall:
            break
        time.sleep(POLL_EVERY)
    time.sleep(SETTLE_SECONDS)
    return stored_receipts(db, CAMPAIGN), last_change - started


def dead_lettered(endpoints: dict[str, Any]) -> int:
    """Receipts in the DLQ (pulled, not acknowledged: a look, not a drain)."""
    project = endpoints["project"]
    pull = (
        f"http://{endpoints['pubsub_emulator']}/v1/projects/{project}"
        "/subscriptions/delivery-receipts-dlq-pull:pull"
    )
    answer = requests.post(
        pull, json={"maxMessages": 1000, "returnImmediately": True}, timeout=30
    )
    return len(answer.json().get("receivedMessages") or []) if answer.ok else -1


def check_storage(
    endpoints: dict[str, Any], result: LoadResult, stall: float
) -> Storage:
    sent = {receipt_key(s.call) for s in result.samples}
    accepted = {receipt_key(s.call) for s in result.samples if s.ok}
    refused = sent - accepted
    db = firestore_client(endpoints)
    found, waited = wait_for_receipts(db, accepted, stall)
    unmatched = int(db.collection("receipts").count().get()[0][0].value)
    return Storage(
        sent=len(sent),
        accepted=len(accepted),
        stored_once=sum(1 for key in accepted if found[key] == 1),
        lost=sum(1 for key in accepted if key not in found),
        duplicated=sum(n - 1 for n in found.values() if n > 1),
        unexpected=sum(n for key, n in found.items() if key not in sent),
        refused_unstored=sum(1 for key in refused if key not in found),
        refused_stored=sum(1 for key in refused if key in found),
        unmatched=unmatched,
        dead_lettered=dead_lettered(endpoints),
        drained_after=waited,
    )


def paced(
    base: str, groups: dict[str, int], rate: float, calls: list[Call], target: str
) -> LoadResult:
    print(f"[{target}] {len(calls)} callbacks due at {rate:.0f}/s", flush=True)
    return measured(groups, open_loop(base, calls, rate, target))


def rate_lines(result: LoadResult, floor: LoadResult, rate: float) -> list[str]:
    lines = []
    for name, run in (("twilio_webhooks", result), ("floor", floor)):
        held = run.throughput >= HELD_FRACTION * rate
        keeping_up = run.lag_ms(0.99) <= GENERATOR_LAG_OK * 1000
        lines.append(
            f"{name}: offered {rate:.0f}/s ({run.offered} callbacks), attempted "
            f"{run.attempted_rate:.0f}/s (generator lag p99 {run.lag_ms(0.99):.0f} ms"
            f"{'' if keeping_up else ', the GENERATOR fell behind'}), achieved "
            f"{run.throughput:.0f}/s accepted: {'held' if held else 'NOT held'}"
        )
    return lines


def report(
    args: Any,
    result: LoadResult,
    floor: LoadResult,
    storage: Storage,
    floor_stored: int,
    threads: str,
) -> None:
    print(
        f"\nwebhook intake: {args.rate:.0f} signed status callbacks/s for "
        f"{args.seconds:.0f}s, open loop (latency from when each was due), after "
        f"{args.warmup:.0f}s of warm-up"
    )
    print(
        f"twilio_webhooks and floor: functions-framework (gunicorn gthread, 1 "
        f"worker) with THREADS={threads}, same Firestore emulator; {machine_line()}"
    )
    for line in rate_lines(result, floor, args.rate):
        print(line)
    for line in comparison_lines("twilio_webhooks", result, floor):
        print(line)
    print(
        f"no loss: {storage.sent} distinct callbacks sent, {storage.accepted} "
        f"accepted (204), {storage.stored_once} of those stored exactly once: "
        f"{storage.lost} lost, {storage.duplicated} duplicated, "
        f"{storage.unexpected} unexpected; "
        f"{'NO LOSS' if storage.sound else 'LOSS OR DUPLICATION'}"
    )
    print(
        f"not accepted: {storage.refused_unstored} not stored (the sender saw the "
        f"failure and retries), {storage.refused_stored} stored anyway (the "
        f"answer was lost); {storage.unmatched} stored as unmatched, "
        f"{storage.dead_lettered} dead-lettered; the last receipt landed "
        f"{storage.drained_after:.0f}s after the last answer"
    )
    print(
        f"floor: {floor_stored} documents written for {floor.ok_count} 204s "
        f"({floor.ok_count - floor_stored} missing)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=500.0, help="callbacks/s")
    parser.add_argument("--seconds", type=float, default=30.0)
    # The Firestore emulator is a JVM: on a fresh stack its CPU per write falls
    # three- to fourfold over the first thousands of writes as it compiles. The
    # function is measured first, on that cold emulator, and the floor after it
    # on a warm one; 15 s at the rate warms it for both (Firestore itself has
    # no such warm-up).
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds, each")
    parser.add_argument(
        "--stall-timeout",
        type=float,
        default=90.0,
        help="stop waiting for receipts after this long without a new one",
    )
    parser.add_argument("--base-port", type=int, default=21500)
    args = parser.parse_args()
    count = int(args.rate * args.seconds)
    with running_stack(args.base_port, {}) as endpoints:
        reset_firestore(endpoints["firestore_emulator"], endpoints["project"])
        print(f"[seed] messages; signing {count} callbacks…", flush=True)
        calls = callbacks_for(endpoints, CAMPAIGN, count, FIRST_NUMBER)
        warm = callbacks_for(
            endpoints, WARMUP_CAMPAIGN, int(args.rate * args.warmup), WARMUP_NUMBER
        )
        groups = stack_groups(endpoints, "twilio_webhooks", MEASURED_EMULATORS)
        base = endpoints["twilio_webhooks"]
        measured({}, open_loop(base, warm, args.rate, "warm-up"))
        result = paced(base, groups, args.rate, calls, "twilio_webhooks")
        storage = check_storage(endpoints, result, args.stall_timeout)
        with floor_function(endpoints, "twilio_webhooks", MEASURED_EMULATORS) as floor:
            measured({}, open_loop(floor.url, warm, args.rate, "warm-up"))
            db = firestore_client(endpoints)
            before = floor_writes(db)
            floor_result = paced(floor.url, floor.groups, args.rate, calls, "floor")
            floor_stored = floor_writes(db) - before
    report(args, result, floor_result, storage, floor_stored, floor.threads)


if __name__ == "__main__":
    main()
