"""Shared helpers for the benchmarks that run on the local stack."""

from __future__ import annotations

import json
import os
import resource
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from local import stack

REPO = Path(__file__).resolve().parent.parent


@contextmanager
def running_stack(
    base_port: int, extra_env: dict[str, str]
) -> Iterator[dict[str, Any]]:
    """Use ESE_ENDPOINTS's stack if given, else start one and stop it after."""
    given = os.environ.get("ESE_ENDPOINTS")
    if given:
        yield json.loads(Path(given).read_text())
        return
    base_port = stack.free_base_port(base_port)
    state_dir = REPO / ".local" / f"bench-stack-{base_port}"
    try:
        yield stack.up(base_port, state_dir, extra_env)
    finally:
        stack.down(state_dir)


def firestore_client(endpoints: dict[str, Any]) -> Any:
    os.environ["FIRESTORE_EMULATOR_HOST"] = endpoints["firestore_emulator"]
    # Message ids seeded here must be the ones the stack's functions derive.
    os.environ.setdefault("RECIPIENT_KEY", stack.RECIPIENT_KEY)
    from google.cloud import firestore

    return firestore.Client(project=endpoints["project"])


def ops_totals(endpoints: dict[str, Any]) -> dict[str, int]:
    """Reads and writes counted by every function process so far."""
    ops_dir = Path(endpoints.get("state_dir", "")) / "ops"
    totals: dict[str, int] = {"reads": 0, "writes": 0}
    for path in ops_dir.glob("*.json"):
        try:
            counts = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for kind in totals:
            totals[kind] += int(counts.get(kind, 0))
    return totals


class Api:
    def __init__(self, endpoints: dict[str, Any]) -> None:
        self.base = endpoints["api"]
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {endpoints['api_key']}"

    def post(self, path: str, body: Any = None) -> Any:
        response = self.session.post(self.base + path, json=body, timeout=120)
        response.raise_for_status()
        return response.json()

    def get(self, path: str) -> Any:
        response = self.session.get(self.base + path, timeout=120)
        response.raise_for_status()
        return response.json()


def bulk_writer(db: Any) -> Any:
    """A BulkWriter that does not throttle itself: set-up, not the system measured."""
    from google.cloud.firestore_v1.bulk_writer import BulkWriterOptions

    return db.bulk_writer(
        options=BulkWriterOptions(
            initial_ops_per_second=20000, max_ops_per_second=20000
        )
    )


def seed_users(
    db: Any, count: int, attributes: dict[str, Any], first: int = 0
) -> list[str]:
    """Write `count` OPT_IN users straight to Firestore (set-up, not measured)."""
    from datetime import UTC, datetime

    now = datetime.now(UTC)
    writer = bulk_writer(db)
    phones = []
    for i in range(first, first + count):
        phone = f"+1415{2_000_000 + i:07d}"  # valid NANP numbers
        phones.append(phone)
        writer.set(
            db.collection("users").document(phone),
            {
                "phone": phone,
                "attributes": {**attributes, "name": f"User {i}"},
                "timezone": "UTC",
                "consent": {"state": "OPT_IN", "updated_at": now, "source": "bench"},
                "created_at": now,
                "updated_at": now,
            },
        )
    writer.close()
    return phones


def wait_until(condition: Any, timeout: float, interval: float = 0.25) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(interval)
    raise TimeoutError("benchmark condition not met in time")


def seed_messages(
    db: Any, campaign_id: str, phones: list[str], status_rank: int = 30
) -> list[str]:
    """Message documents as the sender leaves them once Twilio accepted (set-up)."""
    from datetime import UTC, datetime

    from shared.delivery.messages import message_id_for

    now = datetime.now(UTC)
    writer = bulk_writer(db)
    ids = []
    for number, phone in enumerate(phones):
        message_id = message_id_for(campaign_id, phone)
        ids.append(message_id)
        writer.set(
            db.collection("messages").document(message_id),
            {
                "campaign_id": campaign_id,
                "phone": phone,
                "body": "Hi, news from the bench",
                "encoding": "GSM7",
                "segments": 1,
                "channel": "sms",
                "status_rank": status_rank,
                "generation": 0,
                "attempts": 1,
                "provider_sid": provider_sid(campaign_id, number),
                "created_at": now,
                "send_at": now,
                "sent_at": now,
                "audit": [],
            },
        )
    writer.close()
    return ids


def provider_sid(campaign_id: str, number: int) -> str:
    """A Twilio-shaped message SID, the same for the same message."""
    return f"SM{zlib.crc32(campaign_id.encode()):08x}{number:024x}"


def signed_status_callback(
    validator: Any, url: str, account_sid: str, sid: str, status: str, to: str
) -> tuple[dict[str, str], dict[str, str]]:
    """A status callback's form and headers, signed for `url` as Twilio signs."""
    form = {
        "AccountSid": account_sid,
        "ApiVersion": "2010-04-01",
        "From": "+15005550006",
        "MessageSid": sid,
        "MessageStatus": status,
        "SmsSid": sid,
        "SmsStatus": status,
        "To": to,
    }
    headers = {
        "X-Twilio-Signature": validator.compute_signature(url, form),
        "I-Twilio-Idempotency-Token": f"{sid}-{status}",
    }
    return form, headers


def group_cpu_seconds(pgid: int) -> float:
    """CPU time used so far by the live processes of a process group (Linux)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the command: state, ppid, pgrp, ... utime (12th), stime (13th).
        if int(fields[2]) == pgid:
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def process_group(endpoints: dict[str, Any], name: str) -> int:
    """The process group of one of the stack's servers (0 when unknown)."""
    path = Path(endpoints.get("state_dir", "")) / "processes.json"
    if not path.exists():
        return 0
    records = json.loads(path.read_text())
    return next((int(r["pgid"]) for r in records if r["name"] == name), 0)


def peak_rss_mb() -> float:
    """This process's peak RSS. Linux carries ru_maxrss across fork and exec,
    so a child would report its parent's peak; VmHWM is the child's own."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
