"""Throughput of message rendering and segment counting, the fan-out hot path.

Usage: .venv/bin/python bench/bench_render.py [--n 50000]
Prints figures only; timings depend on the machine, so nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from shared.content.encoding import count_segments  # noqa: E402
from shared.content.templates import compile_template, render_message  # noqa: E402

TEMPLATE = 'Hi {{ name | default: "there" }}, your code is {{ code }}'
PHONE = "+94771234567"
PROGRESS_STEPS = 10


def make_attributes(index: int) -> dict[str, object]:
    # A typical contact: a handful of attributes, some of them unused here.
    return {
        "name": f"Customer {index}",
        "code": f"{index % 1_000_000:06d}",
        "city": "Colombo",
        "tier": "gold",
        "address": {"city": "Colombo", "zip": "00300"},
    }


def measure(label: str, n: int, operation: Callable[[int], object]) -> float:
    """Run `operation` n times; return operations per second."""
    step = max(n // PROGRESS_STEPS, 1)
    started = time.perf_counter()
    for index in range(n):
        operation(index)
        if n >= 100_000 and (index + 1) % step == 0:
            print(f"  {label}: {index + 1}/{n}", flush=True)
    elapsed = time.perf_counter() - started
    rate = n / elapsed if elapsed > 0 else float("inf")
    print(f"{label}: {n} in {elapsed:.3f}s = {rate:,.0f}/s", flush=True)
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="operations per test")
    n = parser.parse_args().n

    compile_template(TEMPLATE)  # warm the per-process cache, as fan-out would
    attributes = [make_attributes(index) for index in range(1_000)]
    rendered = [
        render_message(TEMPLATE, attributes[index], PHONE).body for index in range(8)
    ]
    texts = [*rendered, "Привет, ваш код 493021", "Price 10€ {promo}"]

    def render(index: int) -> object:
        return render_message(TEMPLATE, attributes[index % len(attributes)], PHONE)

    def count(index: int) -> object:
        return count_segments(texts[index % len(texts)])

    print(f"template: {TEMPLATE}")
    measure("render_message", n, render)
    measure("count_segments", n, count)


if __name__ == "__main__":
    main()
