"""Contact imports over HTTP on the local stack: the API answers 202 at once,
contact_importer upserts the chunks from `import-chunks`, the report completes."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.e2e.conftest import Stack, wait_for

pytestmark = pytest.mark.e2e

PHONES = [f"+1415555{4000 + i}" for i in range(6)]


def completed(e2e: Stack, import_id: str) -> Any:
    report = e2e.api("GET", f"/v1/imports/{import_id}").json()
    return report if report["status"] != "RUNNING" else None


def test_an_upload_is_accepted_then_upserted_by_contact_importer(e2e: Stack) -> None:
    rows = "".join(f"{phone},Importville\n" for phone in PHONES)
    response = e2e.api(
        "POST",
        "/v1/imports",
        data=f"phone,city\n{rows}not-a-phone,X\n",
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert (accepted["total"], accepted["invalid"]) == (7, 1)
    report = wait_for(lambda: completed(e2e, accepted["id"]), timeout=60)
    assert report["status"] == "COMPLETED", report
    assert (report["created"], report["chunks_done"]) == (6, report["chunks_planned"])
    users = e2e.api("GET", "/v1/users", params={"limit": "500"}).json()["items"]
    assert sorted(u["phone"] for u in users) == PHONES


def test_a_body_sent_without_length_imports(e2e: Stack) -> None:
    def body() -> Iterator[bytes]:
        yield b"phone,city\n"
        for phone in PHONES[:3]:
            yield f"{phone},Chunkton\n".encode()

    # A generator body goes out with Transfer-Encoding: chunked.
    response = e2e.api(
        "POST", "/v1/imports", data=body(), headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 202, response.text
    report = wait_for(lambda: completed(e2e, response.json()["id"]), timeout=60)
    assert report["created"] == 3, report


def test_a_declared_length_over_32_mib_is_refused_before_the_body(e2e: Stack) -> None:
    address = urlsplit(e2e.endpoints["api"])
    head = (
        "POST /v1/imports HTTP/1.1\r\n"
        f"Host: {address.netloc}\r\n"
        f"Authorization: Bearer {e2e.endpoints['api_key']}\r\n"
        "Content-Type: text/csv\r\n"
        f"Content-Length: {32 * 1024 * 1024 + 1}\r\n"
        "Connection: close\r\n\r\n"
        "phone\r\n"
    ).encode()
    # Only the headers and a few bytes are sent: the answer must not wait for
    # the other 32 MiB.
    with socket.create_connection((address.hostname, address.port), timeout=20) as s:
        s.sendall(head)
        status_line = s.makefile("rb").readline()
    assert b" 413 " in status_line, status_line
    assert e2e.api("GET", "/v1/users").json()["items"] == []
