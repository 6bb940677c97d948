"""Start and stop the official Firestore and Pub/Sub emulators (gcloud's).

Each server starts in its own session (setsid), so stopping it by process group
also ends the Java process that the wrapper script launches.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import requests

# Debian's google-cloud-cli package; other installs say where they are through
# `gcloud info` (the Cloud Build image google-cloud-cli:emulators keeps the SDK
# in /google-cloud-sdk).
FALLBACK_SDK_ROOT = Path("/usr/lib/google-cloud-sdk")
FIRESTORE_RELATIVE = "platform/cloud-firestore-emulator/cloud_firestore_emulator"
PUBSUB_RELATIVE = "platform/pubsub-emulator/bin/cloud-pubsub-emulator"
INSTALL_HINT = (
    "install them with: gcloud components install cloud-firestore-emulator "
    "pubsub-emulator (and Java 11+ on PATH)"
)


class EmulatorsMissing(RuntimeError):
    pass


@cache
def sdk_root() -> Path:
    """Where gcloud's components live: GCLOUD_SDK_ROOT if set, else what
    `gcloud info` reports, else the Debian package's directory."""
    if override := os.environ.get("GCLOUD_SDK_ROOT"):
        return Path(override)
    gcloud = shutil.which("gcloud")
    if gcloud:
        try:
            answer = subprocess.run(  # noqa: S603 - gcloud from PATH, fixed argv
                [gcloud, "info", "--format=value(installation.sdk_root)"],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            return FALLBACK_SDK_ROOT
        root = answer.stdout.strip()
        if answer.returncode == 0 and root:
            return Path(root)
    return FALLBACK_SDK_ROOT


def firestore_bin() -> Path:
    return sdk_root() / FIRESTORE_RELATIVE


def pubsub_bin() -> Path:
    return sdk_root() / PUBSUB_RELATIVE


def missing_emulators() -> list[str]:
    """What is missing to run the emulators, as readable strings."""
    missing = [str(p) for p in (firestore_bin(), pubsub_bin()) if not p.exists()]
    if not _java_available():
        missing.append("java")
    return missing


def _java_available() -> bool:
    return any(
        (Path(d) / "java").exists() for d in os.environ.get("PATH", "").split(":") if d
    )


def require_emulators() -> None:
    missing = missing_emulators()
    if missing:
        raise EmulatorsMissing(
            f"emulators unavailable (missing: {', '.join(missing)}); {INSTALL_HINT}"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    name: str
    pgid: int
    port: int
    log_path: Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"


def start_process(
    name: str,
    argv: list[str],
    port: int,
    log_dir: Path,
    env: dict[str, str] | None = None,
) -> Server:
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(  # noqa: S603 - our own fixed argv
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
    return Server(name, process.pid, port, log_path)


def _reap(pid: int) -> None:
    """Collect the exited group leader if we started it, so it is not a zombie
    that keeps the group alive."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def stop_group(pgid: int, grace: float = 5.0) -> None:
    """SIGTERM the process group, then SIGKILL what is left after `grace`."""
    stop_groups([(pgid, grace)])


def stop_groups(groups: Sequence[tuple[int, float]]) -> None:
    """SIGTERM every (group, grace) at once, then SIGKILL what is left of each
    group after its grace: a stack stops in its longest grace, not their sum."""
    started = time.monotonic()
    deadlines: dict[int, float] = {}
    for pgid, grace in groups:
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadlines[pgid] = started + grace
    while deadlines:
        for pgid, deadline in list(deadlines.items()):
            _reap(pgid)
            if not _group_alive(pgid):
                del deadlines[pgid]
            elif time.monotonic() >= deadline:
                _kill_group(pgid)
                del deadlines[pgid]
        time.sleep(0.1)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return
    time.sleep(0.1)
    _reap(pgid)


def wait_http(url: str, timeout: float = 60.0, server: Server | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    hint = f" (log: {server.log_path})" if server else ""
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s{hint}")


def start_firestore(port: int, log_dir: Path) -> Server:
    require_emulators()
    server = start_process(
        "firestore-emulator",
        [str(firestore_bin()), "start", "--host=127.0.0.1", f"--port={port}"],
        port,
        log_dir,
    )
    wait_http(f"http://127.0.0.1:{port}/", server=server)
    return server


def start_pubsub(port: int, log_dir: Path, project: str) -> Server:
    require_emulators()
    data_dir = log_dir / f"pubsub-data-{port}"
    server = start_process(
        "pubsub-emulator",
        [
            str(pubsub_bin()),
            "--host=127.0.0.1",
            f"--port={port}",
            f"--data-dir={data_dir}",
        ],
        port,
        log_dir,
    )
    wait_http(f"http://127.0.0.1:{port}/v1/projects/{project}/topics", server=server)
    return server


def reset_firestore(host: str, project: str) -> None:
    url = f"http://{host}/emulator/v1/projects/{project}/databases/(default)/documents"
    requests.delete(url, timeout=30).raise_for_status()
