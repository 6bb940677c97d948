"""The local stack: emulators, simulator, task dispatcher and every function.

    python -m local.stack up [--base-port 18600] [--state-dir .local]
    python -m local.stack down [--state-dir .local]
    python -m local.stack status [--state-dir .local]

`up` starts each server in its own session (setsid), creates the Pub/Sub topics
with their dead-letter topics and push subscriptions to the local functions,
waits until everything answers, and writes `<state-dir>/endpoints.json`.
`down` stops every process group it started, and nothing else.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import requests

from local import emulators
from local.emulators import (
    Server,
    start_process,
    stop_group,
    stop_groups,
    wait_http,
)
from local.queue_settings import deployed_queue_settings

REPO = Path(__file__).resolve().parent.parent
PROJECT = "ese-local"
API_KEY = "local-dev-key"
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "local-auth-token"  # noqa: S105 - the simulator's fixed local token
# The senders' REST credential: an API key (the simulator refuses the token).
API_KEY_SID = "SK" + "1" * 32
API_KEY_SECRET = "local-api-key-secret"  # noqa: S105 - the simulator's fixed key
# The HMAC key of recipient keys and suppression entries (a secret in production).
RECIPIENT_KEY = "local-recipient-key-not-secret"
MESSAGING_SERVICE_SID = "MG" + "0" * 32

HTTP_FUNCTIONS = ("api", "twilio_webhooks", "campaign_scheduler", "message_sender")
# topic → the function its push subscription delivers to
PUSH_FUNCTIONS = {
    "campaign-launches": "segment_evaluator",
    "recipient-batches": "campaign_fanout",
    "delivery-receipts": "receipt_updater",
    "inbound-messages": "inbound_processor",
    "events": "event_router",
    "import-chunks": "contact_importer",
}
FUNCTIONS = (*HTTP_FUNCTIONS, *PUSH_FUNCTIONS.values())
# Local push subscriptions have no retryPolicy, unlike infra/pubsub.tf: the
# emulator (0.8.20) with one stops pushing messages that were nacked at the
# same time: none came again within 400 s, so even a poison message was never
# dead-lettered (tests/e2e/test_local_pubsub.py). Without one, the emulator
# redelivers a nacked message about a second later, so the local budget of
# attempts is about a minute (deployed: 10 spaced 10-600 s). Fewer would
# dead-letter the messages of a function that is restarting.
MAX_DELIVERY_ATTEMPTS = 60
# As in infra/pubsub.tf: a push waits for its consumer's timeout (at most 600 s)
# before Pub/Sub redelivers. A shorter deadline only redelivers work still queued
# or in progress, which the emulator does for its whole backlog at once.
ACK_DEADLINE_SECONDS = {
    "segment_evaluator": 540,
    "campaign_fanout": 540,
    "receipt_updater": 60,
    "inbound_processor": 60,
    "event_router": 120,
    "contact_importer": 300,
}
# gunicorn threads per function process: the I/O-bound hot paths get more.
FUNCTION_THREADS = {
    "message_sender": "32",
    "twilio_webhooks": "16",
    "receipt_updater": "16",
    "event_router": "16",
}


def log(message: str) -> None:
    print(f"[stack] {message}", flush=True)


def ports_for(base: int) -> dict[str, int]:
    ports = {
        "firestore": base,
        "pubsub": base + 1,
        "simulator": base + 2,
        "tasks": base + 3,
    }
    ports.update({name: base + 10 + i for i, name in enumerate(FUNCTIONS)})
    return ports


def ports_free(ports: dict[str, int]) -> bool:
    for port in ports.values():
        with socket.socket() as sock:
            # Servers bind with SO_REUSEADDR too, so TIME_WAIT leftovers are fine.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_base_port(start: int, attempts: int = 40) -> int:
    """The first block of ports from `start` (in steps of 50) that is all free."""
    for base in range(start, start + 50 * attempts, 50):
        if ports_free(ports_for(base)):
            return base
    raise RuntimeError(f"no free block of ports from {start}")


def url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def function_env(ports: dict[str, int], extra: dict[str, str]) -> dict[str, str]:
    return {
        "PYTHONPATH": str(REPO),
        "GCP_PROJECT": PROJECT,
        "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{ports['firestore']}",
        "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{ports['pubsub']}",
        "PUBLIC_BASE_URL": url(ports["twilio_webhooks"]),
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_API_KEY_SID": API_KEY_SID,
        "TWILIO_API_KEY_SECRET": API_KEY_SECRET,
        "TWILIO_MESSAGING_SERVICE_SID": MESSAGING_SERVICE_SID,
        "TWILIO_API_BASE_URL": url(ports["simulator"]),
        "API_KEYS": API_KEY,
        "RECIPIENT_KEY": RECIPIENT_KEY,
        "TASKS_BACKEND": "local",
        "LOCAL_TASKS_URL": url(ports["tasks"]),
        "MESSAGE_SENDER_URL": url(ports["message_sender"]) + "/",
        # A SENT message without a final receipt counts as settled after this.
        "SETTLE_SECONDS": "30",
        # A QUEUED message this long past its send_at is stranded: longer than
        # the local dispatcher's whole retry budget (10 attempts, ≤ 10 s apart).
        "STRANDED_QUEUED_SECONDS": "300",
        **extra,
    }


def function_threads(name: str, env: dict[str, str]) -> str:
    """The gunicorn thread count the stack gives function `name`."""
    return env.get(f"THREADS_{name.upper()}", FUNCTION_THREADS.get(name, "8"))


def start_function(name: str, port: int, env: dict[str, str], log_dir: Path) -> Server:
    # Each function process reports its Firestore reads and writes here.
    env = {
        **env,
        "ESE_OPS_COUNTER_FILE": str(log_dir.parent / "ops" / f"{name}.json"),
        "THREADS": function_threads(name, env),
    }
    source = REPO / "functions" / name / "main.py"
    if env.get("ESE_FAULTS_FILE"):
        # Reliability tests: the same function behind the fault-injection wrapper.
        source = REPO / "local" / "fault_entry.py"
        env = {**env, "ESE_FUNCTION": name}
    return serve_function(
        name, source, port, env, log_dir, cloudevent=name not in HTTP_FUNCTIONS
    )


def serve_function(
    name: str,
    source: Path,
    port: int,
    env: dict[str, str],
    log_dir: Path,
    cloudevent: bool = False,
) -> Server:
    """Target `name` of `source` under functions-framework (gunicorn, THREADS)."""
    argv = [
        sys.executable,
        "-m",
        "functions_framework",
        f"--source={source}",
        f"--target={name}",
        "--host=127.0.0.1",
        f"--port={port}",
    ]
    if cloudevent:
        argv.append("--signature-type=cloudevent")
    return start_process(name, argv, port, log_dir, env)


def restart_function(state_dir: Path, name: str) -> None:
    """Kill one function's process group and start it again (fault tests)."""
    path = state_dir / "processes.json"
    records = json.loads(path.read_text())
    endpoints = json.loads((state_dir / "endpoints.json").read_text())
    env = function_env(ports_for(int(endpoints["base_port"])), endpoints["extra_env"])
    for record in records:
        if record["name"] == name:
            stop_group(int(record["pgid"]), grace=0.5)
            server = start_function(name, int(record["port"]), env, state_dir / "logs")
            record["pgid"] = server.pgid
            wait_ready(server)
    path.write_text(json.dumps(records, indent=2))


def create_topics(ports: dict[str, int], max_attempts: int | None = None) -> None:
    """Topics, dead-letter topics, push subscriptions and DLQ pull subscriptions."""
    attempts = max_attempts or MAX_DELIVERY_ATTEMPTS
    base = f"{url(ports['pubsub'])}/v1/projects/{PROJECT}"
    for topic, function in PUSH_FUNCTIONS.items():
        for name in (topic, f"{topic}-dlq"):
            requests.put(f"{base}/topics/{name}", json={}, timeout=10)
        requests.put(
            f"{base}/subscriptions/{topic}-dlq-pull",
            json={"topic": f"projects/{PROJECT}/topics/{topic}-dlq"},
            timeout=10,
        )
        response = requests.put(
            f"{base}/subscriptions/{topic}-push",
            json={
                "topic": f"projects/{PROJECT}/topics/{topic}",
                "pushConfig": {"pushEndpoint": url(ports[function]) + "/"},
                "ackDeadlineSeconds": ACK_DEADLINE_SECONDS[function],
                "deadLetterPolicy": {
                    "deadLetterTopic": f"projects/{PROJECT}/topics/{topic}-dlq",
                    "maxDeliveryAttempts": attempts,
                },
            },
            timeout=10,
        )
        if response.status_code not in (200, 409):
            raise RuntimeError(f"subscription for {topic}: {response.text}")


def start_all(
    ports: dict[str, int], state_dir: Path, extra_env: dict[str, str]
) -> list[Server]:
    logs = state_dir / "logs"
    shutil.rmtree(state_dir / "ops", ignore_errors=True)  # counts of an older run
    servers: list[Server] = []
    _save(state_dir, servers)
    log("starting the Firestore and Pub/Sub emulators")
    servers.append(emulators.start_firestore(ports["firestore"], logs))
    _save(state_dir, servers)
    servers.append(emulators.start_pubsub(ports["pubsub"], logs, PROJECT))
    _save(state_dir, servers)
    env = function_env(ports, extra_env)
    log("starting the Twilio simulator and the task dispatcher")
    servers.append(_start_simulator(ports, logs, env))
    servers.append(_start_dispatcher(ports, logs, env))
    _save(state_dir, servers)
    log(f"starting {len(FUNCTIONS)} functions")
    for name in FUNCTIONS:
        servers.append(start_function(name, ports[name], env, logs))
    _save(state_dir, servers)
    for server in servers:
        wait_http(
            f"{url(server.port)}/healthz" if server.name == "api" else url(server.port),
            server=server,
        )
    # Tests may shorten the budget (LOCAL_PUBSUB_MAX_DELIVERY_ATTEMPTS) to
    # dead-letter a poison message sooner; it must outlast a restart.
    budget = env.get("LOCAL_PUBSUB_MAX_DELIVERY_ATTEMPTS")
    create_topics(ports, int(budget) if budget else None)
    servers.append(_start_ticker(ports, logs, env))
    _save(state_dir, servers)
    return servers


def _start_simulator(ports: dict[str, int], logs: Path, env: dict[str, str]) -> Server:
    argv = [
        sys.executable,
        "-m",
        "local.twilio_simulator",
        f"--port={ports['simulator']}",
        f"--account-sid={ACCOUNT_SID}",
        f"--auth-token={AUTH_TOKEN}",
        "--api-key",
        API_KEY_SID,
        API_KEY_SECRET,
        "--rest-requires-api-key",
        f"--inbound-url={url(ports['twilio_webhooks'])}/twilio/inbound",
    ]
    return start_process("twilio-simulator", argv, ports["simulator"], logs, env)


# Environment overrides of the deployed queue settings, for tests and benches
# that need a faster queue than production's (each names why it deviates).
DISPATCHER_OVERRIDES = {
    "max_dispatches_per_second": "LOCAL_TASKS_MAX_DPS",
    "max_concurrent": "LOCAL_TASKS_MAX_CONCURRENT",
    "max_attempts": "LOCAL_TASKS_MAX_ATTEMPTS",
    "min_backoff": "LOCAL_TASKS_MIN_BACKOFF",
    "max_backoff": "LOCAL_TASKS_MAX_BACKOFF",
    "max_doublings": "LOCAL_TASKS_MAX_DOUBLINGS",
}


def dispatcher_settings(env: dict[str, str]) -> dict[str, Any]:
    """The local queue's settings: what infra/ deploys, unless env overrides."""
    settings: dict[str, Any] = deployed_queue_settings()
    for field_name, variable in DISPATCHER_OVERRIDES.items():
        if env.get(variable):
            settings[field_name] = env[variable]
    return settings


def _start_dispatcher(ports: dict[str, int], logs: Path, env: dict[str, str]) -> Server:
    settings = dispatcher_settings(env)
    argv = [
        sys.executable,
        "-m",
        "local.task_dispatcher",
        f"--port={ports['tasks']}",
        *(f"--{name.replace('_', '-')}={value}" for name, value in settings.items()),
    ]
    return start_process("task-dispatcher", argv, ports["tasks"], logs, env)


def _start_ticker(ports: dict[str, int], logs: Path, env: dict[str, str]) -> Server:
    argv = [
        sys.executable,
        "-m",
        "local.ticker",
        f"--url={url(ports['campaign_scheduler'])}/",
        f"--every={env.get('SCHEDULER_TICK_SECONDS', '10')}",
    ]
    return start_process("scheduler-ticker", argv, 0, logs, env)


def wait_ready(server: Server, timeout: float = 60.0) -> None:
    """HTTP health for servers that have one; a TCP connect for the functions."""
    if server.name == "api":
        wait_http(f"{url(server.port)}/healthz", timeout, server)
        return
    if server.name not in FUNCTIONS:
        wait_http(url(server.port), timeout, server)
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{server.name} did not listen (log: {server.log_path})")


def endpoints(
    ports: dict[str, int], state_dir: Path, extra_env: dict[str, str]
) -> dict[str, Any]:
    return {
        "state_dir": str(state_dir),
        "base_port": ports["firestore"],
        "extra_env": extra_env,
        "api": url(ports["api"]),
        "twilio_webhooks": url(ports["twilio_webhooks"]),
        "campaign_scheduler": url(ports["campaign_scheduler"]),
        "message_sender": url(ports["message_sender"]),
        "simulator": url(ports["simulator"]),
        "task_dispatcher": url(ports["tasks"]),
        "firestore_emulator": f"127.0.0.1:{ports['firestore']}",
        "pubsub_emulator": f"127.0.0.1:{ports['pubsub']}",
        "project": PROJECT,
        "api_key": API_KEY,
        "twilio_auth_token": AUTH_TOKEN,
        "twilio_api_key_sid": API_KEY_SID,
        "twilio_api_key_secret": API_KEY_SECRET,
        "recipient_key": RECIPIENT_KEY,
        "twilio_account_sid": ACCOUNT_SID,
        "functions": {name: url(ports[name]) for name in FUNCTIONS},
    }


def _save(state_dir: Path, servers: list[Server]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    records = [{**asdict(s), "log_path": str(s.log_path)} for s in servers]
    (state_dir / "processes.json").write_text(json.dumps(records, indent=2))


def up(base_port: int, state_dir: Path, extra_env: dict[str, str]) -> dict[str, Any]:
    if (state_dir / "processes.json").exists():
        down(state_dir)
    ports = ports_for(base_port)
    if not ports_free(ports):
        raise RuntimeError(
            f"ports {base_port}..{max(ports.values())} are not all free; "
            "stop what uses them or pass another --base-port"
        )
    started = time.monotonic()
    try:
        start_all(ports, state_dir, extra_env)
    except BaseException:
        log("start-up failed; stopping what was started")
        down(state_dir)
        raise
    info = endpoints(ports, state_dir, extra_env)
    (state_dir / "endpoints.json").write_text(json.dumps(info, indent=2))
    elapsed = time.monotonic() - started
    log(f"up in {elapsed:.1f}s; endpoints in {state_dir / 'endpoints.json'}")
    return info


def down(state_dir: Path) -> None:
    path = state_dir / "processes.json"
    if not path.exists():
        log("nothing to stop")
        return
    records = json.loads(path.read_text())
    stop_groups(
        [
            (int(record["pgid"]), 2.0 if "emulator" in record["name"] else 5.0)
            for record in records
        ]
    )
    path.unlink()
    (state_dir / "endpoints.json").unlink(missing_ok=True)
    log(f"stopped {len(records)} process groups")


def status(state_dir: Path) -> int:
    path = state_dir / "processes.json"
    if not path.exists():
        log("not running")
        return 1
    for record in json.loads(path.read_text()):
        try:
            os.killpg(int(record["pgid"]), 0)
            state = "running"
        except ProcessLookupError:
            state = "stopped"
        log(f"{record['name']:<22} port {record['port']:<6} {state}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.stack")
    parser.add_argument("command", choices=["up", "down", "status"])
    parser.add_argument(
        "--base-port", type=int, default=int(os.environ.get("ESE_BASE_PORT", "18600"))
    )
    parser.add_argument("--state-dir", type=Path, default=REPO / ".local")
    parser.add_argument(
        "--env", action="append", default=[], help="KEY=VALUE for the functions"
    )
    args = parser.parse_args(argv)
    if args.command == "down":
        down(args.state_dir)
        return 0
    if args.command == "status":
        return status(args.state_dir)
    missing = emulators.missing_emulators()
    if missing:
        log(f"cannot start: {emulators.INSTALL_HINT}; missing: {', '.join(missing)}")
        return 2
    extra = dict(item.split("=", 1) for item in args.env)
    up(args.base_port, args.state_dir, extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
