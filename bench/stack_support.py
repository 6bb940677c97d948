"""Shared helpers for the benchmarks that run on the local stack."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
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


# ------------------------------------------------------- the emulator's raw rates

RAW_CITIES = ("Colombo", "Kandy", "Galle", "Jaffna", "Matara")
# As contact_importer writes: parts of this many rows (a user and its consent
# event each), this many parts in flight.
RAW_BATCH_ROWS = 200
RAW_IN_FLIGHT = 8


def raw_row_documents(index: int, now: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """What an imported row costs: a user and its consent event."""
    from shared.store.users import ConsentState, consent_event, new_user, user_doc

    state = ConsentState.STOP if index % 50 == 0 else ConsentState.OPT_IN
    attributes = {
        "name": f"Customer {index}",
        "city": RAW_CITIES[index % len(RAW_CITIES)],
        "age": 18 + index % 70,
        "tier": "gold" if index % 7 == 0 else "basic",
    }
    user = new_user(f"+9477{index:07d}", attributes, None, state, "import", now)
    event = consent_event(None, state, "import", now, f"import raw row {index + 1}")
    return user_doc(user), event


def raw_rates_here(rows: int, batch_rows: int, in_flight: int) -> dict[str, Any]:
    """Write `rows` rows in plain WriteBatches, then read them back in batched
    gets, into the emulator and project of this process's environment."""
    from datetime import UTC, datetime

    from google.cloud import firestore

    from shared.platform.firestore_writes import batch_create
    from shared.store.users import record_consent_change, user_ref

    db = firestore.Client(project=os.environ["GCP_PROJECT"])
    now = datetime.now(UTC)

    def write(start: int) -> None:
        batch = db.batch()
        for index in range(start, min(start + batch_rows, rows)):
            user, event = raw_row_documents(index, now)
            # The cheapest writes the client can send: the emulator's rate.
            batch_create(batch, user_ref(db, user["phone"]), user)
            record_consent_change(batch, db, user["phone"], event)
        batch.commit(timeout=600)

    def read(start: int) -> int:
        end = min(start + batch_rows, rows)
        refs = [user_ref(db, f"+9477{index:07d}") for index in range(start, end)]
        return sum(1 for snapshot in db.get_all(refs) if snapshot.exists)

    starts = range(0, rows, batch_rows)
    with ThreadPoolExecutor(in_flight) as pool:
        started = time.perf_counter()
        list(pool.map(write, starts))
        written = time.perf_counter() - started
        started = time.perf_counter()
        found = sum(pool.map(read, starts))
        read_seconds = time.perf_counter() - started
    return {
        "rows": rows,
        "write_seconds": written,
        "read_seconds": read_seconds,
        "read_found": found,
    }


@dataclass(frozen=True)
class RawRates:
    """The emulator's own rates, measured on a bench's stack in the same run."""

    rows: int
    write_seconds: float
    read_seconds: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.write_seconds

    @property
    def docs_written_per_s(self) -> float:
        return 2 * self.rows / self.write_seconds

    @property
    def docs_read_per_s(self) -> float:
        return self.rows / self.read_seconds

    def line(self) -> str:
        return (
            f"raw emulator, same run: {self.rows:,} rows (a user and a consent "
            f"event each) in WriteBatches of {RAW_BATCH_ROWS} rows, "
            f"{RAW_IN_FLIGHT} in flight: {self.write_seconds:.1f}s = "
            f"{self.rows_per_s:,.0f} rows/s = {self.docs_written_per_s:,.0f} "
            f"docs written/s; batched gets: {self.docs_read_per_s:,.0f} docs read/s"
        )


def raw_rates(endpoints: dict[str, Any], rows: int) -> RawRates:
    """The raw batched write (and read) rate of the stack's Firestore emulator.

    Written by a process of its own (the bench's threads do not share its GIL)
    into a project of its own on the same emulator, so that the stack's data
    is left as it is and the database starts empty; that project is emptied
    after.
    """
    host = endpoints["firestore_emulator"]
    project = f"{endpoints['project']}-raw"
    url = f"http://{host}/emulator/v1/projects/{project}/databases/(default)/documents"
    requests.delete(url, timeout=900).raise_for_status()
    env = {**os.environ, "FIRESTORE_EMULATOR_HOST": host, "GCP_PROJECT": project}
    env["PYTHONPATH"] = str(REPO)
    args = [str(rows), str(RAW_BATCH_ROWS), str(RAW_IN_FLIGHT)]
    out = subprocess.run(  # noqa: S603 - this module, fixed arguments
        [sys.executable, "-m", "bench.stack_support", *args],
        env=env,
        cwd=REPO,
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    requests.delete(url, timeout=900).raise_for_status()
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["read_found"] != rows:
        raise RuntimeError(f"raw reads found {result['read_found']} of {rows} rows")
    return RawRates(rows, result["write_seconds"], result["read_seconds"])


if __name__ == "__main__":
    print(json.dumps(raw_rates_here(*(int(value) for value in sys.argv[1:4]))))
