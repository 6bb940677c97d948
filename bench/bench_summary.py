"""The cost of polling a running campaign's summary.

    python bench/bench_summary.py [--messages 20000] [--clients 5]
                                  [--interval 2] [--seconds 30]

Starts its own Firestore emulator, seeds one RUNNING campaign with `--messages`
messages spread over every status (skips with reasons, failures with codes),
reads its summary once, then `--clients` threads each read the summary every
`--interval` seconds for `--seconds`, as the operator console's pollers do.
While they poll, one message a second moves from SENT to DELIVERED, so the
figures also show how far behind the messages an answer can be. Prints calls,
the store operations they made (the `operations` counter), the emulator's CPU
seconds (from /proc) per call, latency p50/p99, and how far behind the answers
were. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

os.environ.setdefault("RECIPIENT_KEY", "bench-recipient-key")
PROJECT = "ese-bench-summary"

from bench.load_support import machine_line, percentile  # noqa: E402
from bench.stack_support import bulk_writer, group_cpu_seconds  # noqa: E402
from local import emulators  # noqa: E402
from shared.campaigns.summary import campaign_summary  # noqa: E402
from shared.delivery.messages import message_id_for  # noqa: E402
from shared.platform.firestore import operations  # noqa: E402
from shared.store import campaigns as campaign_store  # noqa: E402
from shared.store.campaigns import Campaign, CampaignStatus  # noqa: E402
from shared.store.messages import MessageStatus, rank_of  # noqa: E402

CAMPAIGN_ID = "bench-summary"
# Share of the messages per status, with what each status carries.
MIX: list[tuple[MessageStatus, int, dict[str, Any]]] = [
    (MessageStatus.DELIVERED, 40, {}),
    (MessageStatus.READ, 10, {}),
    (MessageStatus.SENT, 20, {}),
    (MessageStatus.QUEUED, 10, {}),
    (MessageStatus.UNDELIVERED, 5, {"error_code": "30003"}),
    (MessageStatus.FAILED, 5, {"error_code": "30008"}),
    (MessageStatus.SKIPPED, 10, {"skip_reason": "no_consent"}),
]
ACCEPTED = {
    MessageStatus.DELIVERED,
    MessageStatus.READ,
    MessageStatus.SENT,
    MessageStatus.UNDELIVERED,
}


def status_for(index: int) -> tuple[MessageStatus, dict[str, Any]]:
    slot = index % 100
    for status, share, extra in MIX:
        if slot < share:
            return status, extra
        slot -= share
    raise AssertionError("MIX must add up to 100")


def seed(db: Any, messages: int, launched: datetime) -> list[str]:
    """The campaign and its messages (set-up); the ids of those left SENT."""
    campaign_store.create_campaign(
        db,
        Campaign(
            id=CAMPAIGN_ID,
            name="bench",
            template_id="t1",
            segment_id="s1",
            status=CampaignStatus.RUNNING,
            launch_id="launch1",
            launched_at=launched,
            recipients_planned=messages,
            rate_limit_mps=10.0,
            created_at=launched,
        ),
    )
    writer = bulk_writer(db)
    sent_ids = []
    for index in range(messages):
        phone = f"+1415{index:07d}"
        message_id = message_id_for(CAMPAIGN_ID, phone)
        status, extra = status_for(index)
        doc: dict[str, Any] = {
            "campaign_id": CAMPAIGN_ID,
            "phone": phone,
            "segments": 1 + index % 2,
            "status_rank": rank_of(status),
            "created_at": launched,
            "send_at": launched,
            **extra,
        }
        if status in ACCEPTED:
            doc["sent_at"] = launched + timedelta(milliseconds=index)
        if status is MessageStatus.SENT:
            sent_ids.append(message_id)
        writer.set(db.collection("messages").document(message_id), doc)
    writer.close()
    return sent_ids


@dataclass
class Polls:
    latencies: list[float] = field(default_factory=list)
    # Per answer: how many DELIVERED the messages held when the call started
    # minus how many the answer showed (0 = exact at the call).
    behind: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class Progress:
    """Messages moved SENT → DELIVERED so far (the truth an answer is held to)."""

    delivered_base: int
    moved: int = 0


def poll(
    db: Any, polls: Polls, progress: Progress, interval: float, end: float
) -> None:
    while time.monotonic() < end:
        started = time.monotonic()
        truth = progress.delivered_base + progress.moved
        summary = campaign_summary(db, CAMPAIGN_ID, datetime.now(UTC))
        elapsed = time.monotonic() - started
        assert summary is not None  # noqa: S101 - seeded above
        with polls.lock:
            polls.latencies.append(elapsed)
            polls.behind.append(truth - summary.counts["DELIVERED"])
        time.sleep(max(0.0, interval - elapsed))


def deliver_one_a_second(
    db: Any, sent_ids: list[str], progress: Progress, end: float
) -> None:
    delivered = rank_of(MessageStatus.DELIVERED)
    for message_id in sent_ids:
        if time.monotonic() >= end:
            return
        db.collection("messages").document(message_id).update(
            {"status_rank": delivered}
        )
        progress.moved += 1
        time.sleep(1.0)


def run(args: argparse.Namespace, host: str, pgid: int) -> None:
    from google.cloud import firestore

    os.environ["FIRESTORE_EMULATOR_HOST"] = host
    db = firestore.Client(project=PROJECT)
    started = time.monotonic()
    sent_ids = seed(db, args.messages, datetime.now(UTC) - timedelta(hours=1))
    print(f"seeded {args.messages} messages in {time.monotonic() - started:.1f} s")
    delivered = sum(
        1 for i in range(args.messages) if status_for(i)[0].value == "DELIVERED"
    )
    progress = Progress(delivered_base=delivered)
    # The campaign has been running a while when the pollers open: its first
    # summary (a full recount either way) is not what this measures.
    started = time.monotonic()
    campaign_summary(db, CAMPAIGN_ID, datetime.now(UTC))
    print(f"first summary in {time.monotonic() - started:.1f} s (not counted)")
    polls = Polls()
    cpu_before = group_cpu_seconds(pgid)
    ops_before = operations.snapshot()
    end = time.monotonic() + args.seconds
    threads = [
        threading.Thread(
            target=deliver_one_a_second, args=(db, sent_ids, progress, end)
        )
    ]
    for _client in range(args.clients):
        threads.append(
            threading.Thread(
                target=poll, args=(db, polls, progress, args.interval, end)
            )
        )
        threads[-1].start()
        time.sleep(args.interval / args.clients)  # clients out of step
    threads[0].start()
    for thread in threads:
        thread.join()
    cpu = group_cpu_seconds(pgid) - cpu_before
    ops_after = operations.snapshot()
    calls = len(polls.latencies)
    reads = ops_after.get("reads", 0) - ops_before.get("reads", 0)
    writes = ops_after.get("writes", 0) - ops_before.get("writes", 0)
    # The mutator's writes go straight to the client: not in the counter.
    print(
        f"clients {args.clients}, every {args.interval:g} s, {args.seconds:g} s: "
        f"{calls} calls"
    )
    print(
        f"store operations: {reads} reads, {writes} writes "
        f"({reads / calls:.1f} reads/call, {writes / calls:.2f} writes/call)"
    )
    print(
        f"emulator CPU: {cpu:.2f} s, {1000 * cpu / calls:.0f} ms/call "
        f"(includes the {progress.moved} one-a-second status updates)"
    )
    print(
        f"latency: p50 {1000 * statistics.median(polls.latencies):.0f} ms, "
        f"p99 {1000 * percentile(polls.latencies, 0.99):.0f} ms"
    )
    print(
        f"DELIVERED behind the messages at call start: max {max(polls.behind)}, "
        f"mean {statistics.mean(polls.behind):.1f} (one message moves a second)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--clients", type=int, default=5)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    emulators.require_emulators()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-summary-"))
    server = emulators.start_firestore(emulators.free_port(), log_dir)
    try:
        run(args, server.host, server.pgid)
    finally:
        emulators.stop_group(server.pgid, grace=2)
    print(machine_line())


if __name__ == "__main__":
    main()
