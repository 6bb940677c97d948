"""Shared helpers for the benchmarks that run on the local stack."""

from __future__ import annotations

import json
import os
import time
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


def seed_users(
    db: Any, count: int, attributes: dict[str, Any], first: int = 0
) -> list[str]:
    """Write `count` OPT_IN users straight to Firestore (set-up, not measured)."""
    from datetime import UTC, datetime

    from google.cloud.firestore_v1.bulk_writer import BulkWriterOptions

    now = datetime.now(UTC)
    writer = db.bulk_writer(
        options=BulkWriterOptions(
            initial_ops_per_second=20000, max_ops_per_second=20000
        )
    )
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
