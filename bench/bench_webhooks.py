"""Webhook intake throughput: signed status callbacks into one function process.

Starts its own Pub/Sub emulator and ONE `twilio_webhooks` function under
functions-framework (argv and environment as the local stack starts it),
creates the delivery-receipts topic, then posts validly signed status
callbacks concurrently and prints requests/s, p50/p99 latency and the error
count. Afterwards it pulls the topic to check every accepted callback was
published.

Two phases, 5,000 callbacks each by default:
- closed loop: `--concurrency` senders post back to back, which finds the
  capacity (requests/s). Its latency is mostly queueing in the client: with 32
  in flight at R req/s, Little's law puts the mean at 32/R.
- paced: callbacks fall due at `--rate` per second, as Twilio sends them
  whatever our answers take (at most `--concurrency` in flight); a latency
  counts from the moment a callback was due. This is the latency at that load.

Usage: .venv/bin/python bench/bench_webhooks.py [--n 5000] [--rate 400]
       [--concurrency 32] [--threads 8] [--workers 1] [--phase both]
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

from bench.stack_support import (  # noqa: E402
    group_cpu_seconds,
    signed_status_callback,
)
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


@dataclass(frozen=True)
class PhaseResult:
    label: str
    requests: int
    wall: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    published: int
    cpu_ms_per_request: float

    @property
    def rps(self) -> float:
        return self.requests / self.wall


def signed_callbacks(public_base_url: str, n: int) -> list[SignedCallback]:
    """Sign everything before the clock starts: Twilio signs, not the bench."""
    validator = RequestValidator(AUTH_TOKEN)
    callbacks = []
    for index in range(n):
        sid = f"SM{index:032x}"
        status = STATUSES[index % len(STATUSES)]
        url = f"{public_base_url}/twilio/status?message_id=bench_{index:010d}"
        to = f"+1415555{index % 10_000:04d}"
        form, headers = signed_status_callback(
            validator, url, ACCOUNT_SID, sid, status, to
        )
        callbacks.append(SignedCallback(url, form, headers))
    return callbacks


async def post_all(
    callbacks: list[SignedCallback], concurrency: int, rate: float
) -> tuple[list[float], int, float]:
    """(latencies in seconds, errors, wall time); rate 0 means a closed loop."""
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
                send(session, callback, begin + (index / rate if rate else 0.0))
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


def function_env(pubsub_port: int, public_base_url: str, args: Any) -> dict[str, str]:
    return {
        "PYTHONPATH": str(stack.REPO),
        "GCP_PROJECT": PROJECT,
        "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{pubsub_port}",
        # Must be the URL the callbacks are signed for.
        "PUBLIC_BASE_URL": public_base_url,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "THREADS": str(args.threads),
        "WORKERS": str(args.workers),
        "LOG_LEVEL": "WARNING",
    }


def run_phase(
    label: str,
    rate: float,
    args: Any,
    pgid: int,
    pubsub_url: str,
    callbacks: list[SignedCallback],
) -> PhaseResult:
    cpu_before = group_cpu_seconds(pgid)
    latencies, errors, wall = asyncio.run(post_all(callbacks, args.concurrency, rate))
    cpu = group_cpu_seconds(pgid) - cpu_before
    published = count_published(pubsub_url, len(callbacks) - errors)
    ordered = sorted(latencies)
    n = len(ordered)
    return PhaseResult(
        label=label,
        requests=n,
        wall=wall,
        p50_ms=statistics.median(ordered) * 1000,
        p99_ms=ordered[min(n - 1, int(n * 0.99))] * 1000,
        max_ms=ordered[-1] * 1000,
        errors=errors,
        published=published,
        cpu_ms_per_request=cpu / n * 1000,
    )


def report(results: list[PhaseResult], paced: PhaseResult | None) -> bool:
    print(
        f"{'phase':<20}{'requests':>9}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'max ms':>9}{'errors':>8}{'published':>11}{'CPU ms/req':>12}"
    )
    for r in results:
        print(
            f"{r.label:<20}{r.requests:>9}{r.rps:>8.0f}{r.p50_ms:>9.1f}"
            f"{r.p99_ms:>9.1f}{r.max_ms:>9.1f}{r.errors:>8}{r.published:>11}"
            f"{r.cpu_ms_per_request:>12.2f}"
        )
    sound = all(r.errors == 0 and r.published == r.requests for r in results)
    fast = max(r.rps for r in results) >= TARGET_RPS
    prompt = paced is None or (
        paced.rps >= TARGET_RPS and paced.p99_ms <= TARGET_P99_MS
    )
    met = sound and fast and prompt
    print(
        f"targets (>= {TARGET_RPS} req/s; p99 <= {TARGET_P99_MS:.0f} ms at that "
        f"rate; 0 errors; all published): {'met' if met else 'MISSED'}"
    )
    return met


def run(args: Any) -> bool:
    emulators.require_emulators()
    log_dir = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    pubsub_port, function_port = args.base_port, args.base_port + 1
    pubsub_url, public_base_url = stack.url(pubsub_port), stack.url(function_port)
    servers: list[emulators.Server] = []
    try:
        servers.append(emulators.start_pubsub(pubsub_port, log_dir, PROJECT))
        create_topic(pubsub_url)
        env = function_env(pubsub_port, public_base_url, args)
        function = stack.start_function("twilio_webhooks", function_port, env, log_dir)
        servers.append(function)
        stack.wait_ready(function)
        print(
            f"twilio_webhooks on {public_base_url}: WORKERS={args.workers} "
            f"THREADS={args.threads}; client: aiohttp, at most {args.concurrency} "
            f"in flight; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        phases = {"closed loop": 0.0, f"paced at {args.rate:.0f}/s": args.rate}
        if args.phase != "both":
            phases = {
                k: v for k, v in phases.items() if (v > 0) == (args.phase == "paced")
            }
        callbacks = signed_callbacks(
            public_base_url, args.warmup + args.n * len(phases)
        )
        asyncio.run(post_all(callbacks[: args.warmup], args.concurrency, 0.0))
        count_published(pubsub_url, args.warmup)
        results = []
        for number, (label, rate) in enumerate(phases.items()):
            first = args.warmup + number * args.n
            batch = callbacks[first : first + args.n]
            results.append(
                run_phase(label, rate, args, function.pgid, pubsub_url, batch)
            )
        paced = next(
            (r for r, rate in zip(results, phases.values(), strict=True) if rate), None
        )
        return report(results, paced)
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
    parser.add_argument("--n", type=int, default=5000, help="callbacks per phase")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32, help="max in flight")
    parser.add_argument(
        "--rate", type=float, default=400.0, help="callbacks due per second (paced)"
    )
    parser.add_argument("--phase", choices=["both", "closed", "paced"], default="both")
    parser.add_argument("--threads", type=int, default=8, help="THREADS (gunicorn)")
    parser.add_argument("--workers", type=int, default=1, help="WORKERS (gunicorn)")
    parser.add_argument("--base-port", type=int, default=18825)
    args = parser.parse_args()
    sys.exit(0 if run(args) else 1)


if __name__ == "__main__":
    main()
