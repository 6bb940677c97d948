"""Webhook intake throughput: signed status callbacks into one function process.

Starts its own Pub/Sub emulator and ONE `twilio_webhooks` function under
functions-framework (as the local stack starts it), creates the
delivery-receipts topic, then posts validly signed status callbacks
concurrently and prints requests/s, p50/p99 latency and the error count. It
pulls the topic afterwards to check that every accepted callback was published.

Usage: .venv/bin/python bench/bench_webhooks.py [--n 5000] [--concurrency 32]
       [--threads 8] [--workers 1] [--base-port 18825]
Everything it starts is stopped by process group at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twilio.request_validator import RequestValidator  # noqa: E402

from local import emulators, stack  # noqa: E402

PROJECT = "ese-bench"
AUTH_TOKEN = "bench-auth-token"  # noqa: S105 - a local, throw-away token
ACCOUNT_SID = "AC" + "b" * 32
TOPIC = "delivery-receipts"
SUBSCRIPTION = f"{TOPIC}-bench"
STATUSES = ("queued", "sent", "delivered")
TARGET_RPS = 390
TARGET_P99_MS = 45.0
PULL_BATCH = 1000


@dataclass(frozen=True)
class SignedCallback:
    url: str
    form: dict[str, str]
    headers: dict[str, str]


def signed_callbacks(public_base_url: str, n: int) -> list[SignedCallback]:
    """Sign everything before the clock starts: Twilio signs, not the bench."""
    validator = RequestValidator(AUTH_TOKEN)
    callbacks = []
    for index in range(n):
        sid = f"SM{index:032x}"
        status = STATUSES[index % len(STATUSES)]
        url = f"{public_base_url}/twilio/status?message_id=bench_{index:010d}"
        form = {
            "AccountSid": ACCOUNT_SID,
            "ApiVersion": "2010-04-01",
            "From": "+15005550006",
            "MessageSid": sid,
            "MessageStatus": status,
            "SmsSid": sid,
            "SmsStatus": status,
            "To": f"+1415555{index % 10_000:04d}",
        }
        headers = {
            "X-Twilio-Signature": validator.compute_signature(url, form),
            "I-Twilio-Idempotency-Token": f"{sid}-{status}",
        }
        callbacks.append(SignedCallback(url, form, headers))
    return callbacks


async def post_all(
    callbacks: list[SignedCallback], concurrency: int, rate: float
) -> tuple[list[float], int, float]:
    """(latencies in seconds, errors, wall time) for posting every callback.

    With a rate, callbacks are due at a steady pace, as Twilio sends them
    whatever our answers take, and a latency counts from the moment a callback
    was due, waiting for a free connection included. Without one, `concurrency`
    senders post back to back (a closed loop, to find the saturation rate).
    """
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)

    async def post(session: aiohttp.ClientSession, callback: SignedCallback) -> bool:
        try:
            async with session.post(
                callback.url, data=callback.form, headers=callback.headers
            ) as response:
                await response.read()
                return response.status == 204
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def send(
        session: aiohttp.ClientSession, callback: SignedCallback, due: float
    ) -> None:
        nonlocal errors
        await asyncio.sleep(max(due - loop.time(), 0))
        async with slots:
            started = due if rate else loop.time()
            ok = await post(session, callback)
            latencies.append(loop.time() - started)
        errors += 0 if ok else 1

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        begin = loop.time()
        await asyncio.gather(
            *(
                send(session, callback, begin + (index / rate if rate else 0))
                for index, callback in enumerate(callbacks)
            )
        )
        wall = loop.time() - begin
    return latencies, errors, wall


def create_topic(pubsub_url: str) -> None:
    base = f"{pubsub_url}/v1/projects/{PROJECT}"
    requests.put(f"{base}/topics/{TOPIC}", json={}, timeout=10).raise_for_status()
    requests.put(
        f"{base}/subscriptions/{SUBSCRIPTION}",
        json={"topic": f"projects/{PROJECT}/topics/{TOPIC}"},
        timeout=10,
    ).raise_for_status()


def count_published(pubsub_url: str, expected: int, timeout: float = 60.0) -> int:
    """Pull and ack the bench subscription until `expected` arrived or time runs out."""
    base = f"{pubsub_url}/v1/projects/{PROJECT}/subscriptions/{SUBSCRIPTION}"
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < expected and time.monotonic() < deadline:
        pulled = requests.post(
            f"{base}:pull", json={"maxMessages": PULL_BATCH}, timeout=30
        ).json()
        received = pulled.get("receivedMessages") or []
        if not received:
            time.sleep(0.2)
            continue
        seen.update(m["message"]["messageId"] for m in received)
        requests.post(
            f"{base}:acknowledge",
            json={"ackIds": [m["ackId"] for m in received]},
            timeout=30,
        ).raise_for_status()
    return len(seen)


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


def function_env(pubsub_port: int, public_base_url: str, args: Any) -> dict[str, str]:
    return {
        "PYTHONPATH": str(stack.REPO),
        "GCP_PROJECT": PROJECT,
        "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{pubsub_port}",
        "PUBLIC_BASE_URL": public_base_url,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "THREADS": str(args.threads),
        "WORKERS": str(args.workers),
        "LOG_LEVEL": "WARNING",
    }


def report(
    latencies: list[float], errors: int, wall: float, published: int, cpu: float
) -> bool:
    n = len(latencies)
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) * 1000
    p99 = ordered[min(n - 1, int(n * 0.99))] * 1000
    rps = n / wall
    print(f"requests      {n}")
    print(f"wall time     {wall:.2f} s")
    print(f"throughput    {rps:.0f} req/s   (target >= {TARGET_RPS})")
    print(f"latency p50   {p50:.1f} ms")
    print(f"latency p99   {p99:.1f} ms   (target <= {TARGET_P99_MS:.0f})")
    print(f"latency max   {ordered[-1] * 1000:.1f} ms")
    print(f"server CPU    {cpu / n * 1000:.2f} ms per request")
    print(f"errors        {errors}")
    print(f"published     {published} of {n - errors} accepted")
    met = rps >= TARGET_RPS and p99 <= TARGET_P99_MS and errors == 0
    met = met and published == n - errors
    print("targets       " + ("met" if met else "MISSED"))
    return met


def run(args: Any) -> bool:
    emulators.require_emulators()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    pubsub_port, function_port = args.base_port, args.base_port + 1
    public_base_url = stack.url(function_port)
    servers: list[emulators.Server] = []
    try:
        servers.append(emulators.start_pubsub(pubsub_port, log_dir, PROJECT))
        create_topic(stack.url(pubsub_port))
        env = function_env(pubsub_port, public_base_url, args)
        function = stack.start_function("twilio_webhooks", function_port, env, log_dir)
        servers.append(function)
        stack.wait_ready(function)
        print(
            f"twilio_webhooks on {public_base_url}: workers={args.workers} "
            f"threads={args.threads}; client: {args.concurrency} in flight at most, "
            f"{f'{args.rate:.0f}/s offered' if args.rate else 'closed loop'}",
            flush=True,
        )
        warmup = signed_callbacks(public_base_url, args.warmup)
        asyncio.run(post_all(warmup, args.concurrency, args.rate))
        count_published(stack.url(pubsub_port), len(warmup))
        callbacks = signed_callbacks(public_base_url, args.n)
        cpu_before = group_cpu_seconds(function.pgid)
        latencies, errors, wall = asyncio.run(
            post_all(callbacks, args.concurrency, args.rate)
        )
        cpu = group_cpu_seconds(function.pgid) - cpu_before
        published = count_published(stack.url(pubsub_port), args.n - errors)
        return report(latencies, errors, wall, published, cpu)
    finally:
        for server in reversed(servers):
            stop_group(server.pgid)
        print(f"stopped {len(servers)} process groups; logs in {log_dir}")


def stop_group(pgid: int, grace: float = 5.0) -> None:
    """SIGTERM the group, reaping its leader (our child) so no zombie holds it."""
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.waitpid(pgid, os.WNOHANG)
        except ChildProcessError:
            pass
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    emulators.stop_group(pgid, grace=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32, help="max in flight")
    parser.add_argument(
        "--rate",
        type=float,
        default=450.0,
        help="callbacks due per second (0: closed loop, as fast as answered)",
    )
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--base-port", type=int, default=18825)
    args = parser.parse_args()
    sys.exit(0 if run(args) else 1)


if __name__ == "__main__":
    main()
