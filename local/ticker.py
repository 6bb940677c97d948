"""Stands in for Cloud Scheduler: calls campaign_scheduler every N seconds."""

from __future__ import annotations

import argparse
import time

import requests


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--every", type=float, default=10.0)
    args = parser.parse_args()
    session = requests.Session()
    while True:
        try:
            session.post(args.url, timeout=60)
        except requests.RequestException as exc:
            print(f"[ticker] scheduler call failed: {exc}", flush=True)
        time.sleep(args.every)


if __name__ == "__main__":
    main()
