"""Load generation for the load benchmarks, and the floor they are read against.

- Closed loop: `clients` callers each send a request, wait for its answer and
  send the next, for a number of seconds (the API's callers wait for answers).
- Open loop: requests fall due by the clock at `rate` per second whatever the
  answers take (Twilio does not wait for us). A latency counts from the moment
  its request was due, so a server that falls behind cannot hide it by slowing
  the generator; how late the generator itself sent is reported apart.

One asyncio loop with aiohttp (already installed: twilio depends on it) drives
either; it needs well under one core for 500 requests/s.

The floor is bench/floor_function, served exactly as the stack serves its
functions (functions-framework, the same THREADS as the function it stands
beside, the same Firestore emulator): one document write per request.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.stack_support import group_cpu_seconds, process_group
from local import emulators, stack

FLOOR_SOURCE = Path(__file__).resolve().parent / "floor_function" / "main.py"
FLOOR_COLLECTION = "floor_writes"
PROGRESS_EVERY = 5.0
FAILURE_TEXT = 60
REQUEST_TIMEOUT = 30.0
TWILIO_TIMEOUT = 15.0  # Twilio gives up on a webhook after 15 s
OPEN_LOOP_CONNECTIONS = 1000  # Twilio opens what it needs; cap only runaway cases
# Idle connections are dropped before gunicorn's own 2 s keep-alive ends them:
# a request sent as the server closes its connection would be reset (ECONNRESET).
CLIENT_KEEPALIVE = 1.0
GENERATOR_LAG_OK = 0.050  # a generator sending later than this is not keeping up


@dataclass(frozen=True)
class Call:
    """One request; `expected` lists the 4xx answers that are right for it."""

    label: str
    method: str
    path: str
    json: Any = None
    data: Mapping[str, str] | None = None
    headers: Mapping[str, str] | None = None
    expected: frozenset[int] = frozenset()

    def ok(self, status: int) -> bool:
        return 200 <= status < 300 or status in self.expected


@dataclass(frozen=True)
class Sample:
    call: Call
    status: int  # 0: no answer (timeout, refused or broken connection)
    latency: float  # from when the request was due
    lag: float  # how late the generator sent it
    ok: bool
    failure: str = ""  # why there was no answer

    @property
    def label(self) -> str:
        return self.call.label


@dataclass
class Tally:
    """What a run has done so far (read by the progress printer)."""

    samples: list[Sample] = field(default_factory=list)
    sent: int = 0


@dataclass
class LoadResult:
    target: str
    samples: list[Sample]
    wall: float  # from the first request due to the last answer
    offered: int = 0  # open loop: requests scheduled
    send_span: float = 0.0  # open loop: first due to last actually sent
    # CPU used meanwhile, per process group measured ("server", "emulator")
    cpu_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def ok_count(self) -> int:
        return sum(1 for s in self.samples if s.ok)

    @property
    def errors(self) -> int:
        return len(self.samples) - self.ok_count

    @property
    def throughput(self) -> float:
        """Successful answers per second."""
        return self.ok_count / self.wall if self.wall else 0.0

    @property
    def attempted_rate(self) -> float:
        return len(self.samples) / self.send_span if self.send_span else 0.0

    def cpu_ms_per_request(self, group: str) -> float:
        return self.cpu_seconds.get(group, 0.0) / max(len(self.samples), 1) * 1000

    def latency_ms(self, fraction: float, label: str | None = None) -> float:
        values = [s.latency for s in self.samples if label in (None, s.label)]
        return percentile(values, fraction) * 1000

    def lag_ms(self, fraction: float) -> float:
        return percentile([s.lag for s in self.samples], fraction) * 1000

    def error_kinds(self, label: str | None = None) -> Counter[str]:
        return Counter(
            str(s.status) if s.status else f"no answer: {s.failure}"
            for s in self.samples
            if not s.ok and label in (None, s.label)
        )


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return 0.0
    if fraction == 0.5:
        return statistics.median(values)
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def http_session(
    base: str,
    connections: int,
    headers: Mapping[str, str] | None = None,
    keep_alive: bool = True,
    timeout: float = REQUEST_TIMEOUT,
) -> aiohttp.ClientSession:
    connector = (
        aiohttp.TCPConnector(limit=connections, keepalive_timeout=CLIENT_KEEPALIVE)
        if keep_alive
        else aiohttp.TCPConnector(limit=connections, force_close=True)
    )
    return aiohttp.ClientSession(
        base_url=base,
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout),
        headers=dict(headers or {}),
    )


async def send(http: aiohttp.ClientSession, call: Call, due: float) -> Sample:
    loop = asyncio.get_running_loop()
    lag = loop.time() - due
    try:
        async with http.request(
            call.method,
            call.path,
            json=call.json,
            data=call.data,
            headers=call.headers,
        ) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as error:
        failure = f"{type(error).__name__} {error}".strip()[:FAILURE_TEXT]
        return Sample(call, 0, loop.time() - due, lag, False, failure)
    return Sample(call, status, loop.time() - due, lag, call.ok(status))


async def print_progress(
    target: str, tally: Tally, begin: float, offered_rate: float = 0.0
) -> None:
    """One line every PROGRESS_EVERY seconds until cancelled."""
    loop = asyncio.get_running_loop()
    seen = 0
    while True:
        await asyncio.sleep(PROGRESS_EVERY)
        window = tally.samples[seen:]
        seen += len(window)
        errors = sum(1 for s in tally.samples if not s.ok)
        p99 = percentile([s.latency for s in window], 0.99) * 1000
        offered = f"{offered_rate:.0f}/s due, " if offered_rate else ""
        print(
            f"[{target}] {loop.time() - begin:4.0f}s: {offered}{tally.sent} sent, "
            f"{len(tally.samples)} answered, {errors} errors; last "
            f"{PROGRESS_EVERY:.0f}s: {len(window) / PROGRESS_EVERY:.0f} answers/s, "
            f"p99 {p99:.0f} ms",
            flush=True,
        )


async def closed_loop(
    base: str,
    next_call: Callable[[random.Random], Call],
    clients: int,
    seconds: float,
    target: str,
    headers: Mapping[str, str] | None = None,
) -> LoadResult:
    """`clients` callers back to back for `seconds`; caller i draws from seed i."""
    loop = asyncio.get_running_loop()
    tally = Tally()
    async with http_session(base, clients, headers) as http:
        begin = loop.time()
        end = begin + seconds

        async def caller(seed: int) -> None:
            rng = random.Random(seed)
            while loop.time() < end:
                tally.sent += 1
                tally.samples.append(await send(http, next_call(rng), loop.time()))

        progress = asyncio.create_task(print_progress(target, tally, begin))
        await asyncio.gather(*(caller(seed) for seed in range(clients)))
        progress.cancel()
        wall = loop.time() - begin
    return LoadResult(target, tally.samples, wall)


async def open_loop(
    base: str,
    calls: Sequence[Call],
    rate: float,
    target: str,
    headers: Mapping[str, str] | None = None,
) -> LoadResult:
    """Call i falls due at i / rate seconds, sent then whatever is in flight."""
    loop = asyncio.get_running_loop()
    tally = Tally()
    # A connection per request: a generator that falls behind would otherwise
    # reuse connections the server is closing (keep-alive races, not failures).
    session = http_session(
        base, OPEN_LOOP_CONNECTIONS, headers, keep_alive=False, timeout=TWILIO_TIMEOUT
    )
    async with session as http:

        async def fire(call: Call, due: float) -> None:
            tally.samples.append(await send(http, call, due))

        begin = loop.time() + 0.05
        progress = asyncio.create_task(print_progress(target, tally, begin, rate))
        in_flight = []
        for index, call in enumerate(calls):
            due = begin + index / rate
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            tally.sent += 1
            in_flight.append(asyncio.create_task(fire(call, due)))
        send_span = loop.time() - begin
        await asyncio.gather(*in_flight)
        progress.cancel()
        wall = loop.time() - begin
    return LoadResult(target, tally.samples, wall, len(calls), send_span)


def measured(
    groups: Mapping[str, int], run: Coroutine[Any, Any, LoadResult]
) -> LoadResult:
    """Run a load to completion, adding the CPU each named process group used."""
    before = {name: group_cpu_seconds(pgid) for name, pgid in groups.items() if pgid}
    generator_before = time.process_time()
    result = asyncio.run(run)
    result.cpu_seconds = {
        name: group_cpu_seconds(groups[name]) - used for name, used in before.items()
    }
    result.cpu_seconds["load generator"] = time.process_time() - generator_before
    return result


EMULATORS = {
    "firestore-emulator": "Firestore emulator",
    "pubsub-emulator": "Pub/Sub emulator",
}


@dataclass(frozen=True)
class Floor:
    url: str
    pgid: int
    threads: str
    emulators: dict[str, int]  # the same emulator groups as its function's

    @property
    def groups(self) -> dict[str, int]:
        return {"process": self.pgid, **self.emulators}


def emulator_groups(
    endpoints: dict[str, Any], names: Sequence[str] = ("firestore-emulator",)
) -> dict[str, int]:
    return {EMULATORS[name]: process_group(endpoints, name) for name in names}


def stack_groups(
    endpoints: dict[str, Any],
    function: str,
    names: Sequence[str] = ("firestore-emulator",),
) -> dict[str, int]:
    """The process groups to measure for `function`: it and the emulators named."""
    return {
        "process": process_group(endpoints, function),
        **emulator_groups(endpoints, names),
    }


@contextmanager
def floor_function(
    endpoints: dict[str, Any],
    beside: str,
    names: Sequence[str] = ("firestore-emulator",),
) -> Iterator[Floor]:
    """The floor, served as the stack serves function `beside`, on its emulator."""
    env = stack.function_env(
        stack.ports_for(int(endpoints["base_port"])), endpoints["extra_env"]
    )
    threads = stack.function_threads(beside, env)
    port = emulators.free_port()
    server = stack.serve_function(
        "floor",
        FLOOR_SOURCE,
        port,
        {**env, "THREADS": threads},
        Path(endpoints["state_dir"]) / "logs",
    )
    try:
        stack.wait_ready(server)
        groups = emulator_groups(endpoints, names)
        yield Floor(stack.url(port), server.pgid, threads, groups)
    finally:
        emulators.stop_group(server.pgid)


def floor_writes(db: Any) -> int:
    """Documents the floor has written so far."""
    return int(db.collection(FLOOR_COLLECTION).count().get()[0][0].value)


def beside_floor(
    name: str, figure: str, value: float, floor: float, unit: str, digits: int = 0
) -> str:
    """`api p99 41 ms | floor p99 12 ms | ratio 3.4x`."""
    ratio = "n/a" if not floor else f"{value / floor:.{2 if value < floor else 1}f}x"
    return (
        f"{name} {figure} {value:.{digits}f} {unit} | "
        f"floor {figure} {floor:.{digits}f} {unit} | ratio {ratio}"
    )


def comparison_lines(name: str, result: LoadResult, floor: LoadResult) -> list[str]:
    """The headline figures of a run beside the floor's."""
    return [
        beside_floor(name, "throughput", result.throughput, floor.throughput, "req/s"),
        beside_floor(
            name, "p50", result.latency_ms(0.5), floor.latency_ms(0.5), "ms", 1
        ),
        beside_floor(
            name, "p99", result.latency_ms(0.99), floor.latency_ms(0.99), "ms", 1
        ),
        *(
            # All the group's CPU during the run (with its background work).
            beside_floor(
                name,
                f"{group} CPU/request",
                result.cpu_ms_per_request(group),
                floor.cpu_ms_per_request(group),
                "ms",
                2,
            )
            for group in result.cpu_seconds
        ),
        f"{name} errors {result.errors} of {len(result.samples)}"
        f"{describe_errors(result)} | floor errors {floor.errors} of "
        f"{len(floor.samples)}{describe_errors(floor)}",
    ]


def describe_errors(result: LoadResult, label: str | None = None) -> str:
    kinds = result.error_kinds(label)
    if not kinds:
        return ""
    return " (" + ", ".join(f"{k}: {n}" for k, n in kinds.most_common()) + ")"


def machine_line() -> str:
    """CPUs and load; the 5-minute figure spans the run (the 1-minute, its end)."""
    one, five, fifteen = os.getloadavg()
    return (
        f"{os.cpu_count()} CPUs, load average {one:.1f} / {five:.1f} / "
        f"{fifteen:.1f} (1/5/15 min)"
    )
