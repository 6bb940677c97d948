"""What log masking costs per line: the structured handler's whole format(),
with and without the phone mask, over lines like the functions write.

Usage: .venv/bin/python bench/bench_log_mask.py [--lines 20000]

Prints microseconds per line for: a line with no number, a line with an
E.164 number in a label, and a line with a national-format number and a
timestamp in its message. Prints figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import io
import logging
import time

from google.cloud.logging_v2.handlers import StructuredLogHandler

from shared.platform.logging import _MaskingStructuredLogHandler

LINES = {
    "no number": ("message sent", {"campaign_id": "c1", "sid": "SM" + "a" * 32}),
    "E.164 in a label": ("consent STOP", {"phone": "whatsapp:+14155550100"}),
    "national + timestamp": (
        "deferred (415) 555-0100 to 2026-12-01 08:00:00",
        {"campaign_id": "c1"},
    ),
}


def per_line_us(handler: logging.Handler, message: str, labels: dict, n: int) -> float:
    # A name without digits: the logger's name is in the line too.
    logger = logging.getLogger(f"bench.{type(handler).__name__}")
    logger.propagate = False
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    start = time.perf_counter()
    for _ in range(n):
        logger.info(message, extra={"labels": labels})
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lines", type=int, default=20000)
    args = parser.parse_args()
    print(f"{'line':<22} {'plain us':>9} {'masked us':>10}")
    for name, (message, labels) in LINES.items():
        plain = per_line_us(
            StructuredLogHandler(stream=io.StringIO()), message, labels, args.lines
        )
        masked = per_line_us(
            _MaskingStructuredLogHandler(stream=io.StringIO()),
            message,
            labels,
            args.lines,
        )
        print(f"{name:<22} {plain:>9.1f} {masked:>10.1f}")


if __name__ == "__main__":
    main()
