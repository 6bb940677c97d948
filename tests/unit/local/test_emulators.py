"""The emulators are found where gcloud says its SDK lives.

Cloud Build's google-cloud-cli:emulators image keeps the SDK in
/google-cloud-sdk, Debian's package in /usr/lib/google-cloud-sdk: a fake
`gcloud` on PATH answers `gcloud info` with a directory of our choosing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from local import emulators


@pytest.fixture(autouse=True)
def fresh_lookup(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("GCLOUD_SDK_ROOT", raising=False)
    emulators.sdk_root.cache_clear()
    yield
    emulators.sdk_root.cache_clear()


def fake_gcloud(bin_dir: Path, script: str) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    gcloud = bin_dir / "gcloud"
    gcloud.write_text(f"#!/bin/sh\n{script}\n", encoding="utf-8")
    gcloud.chmod(0o755)


def test_emulators_live_under_the_sdk_root_gcloud_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sdk = tmp_path / "google-cloud-sdk"
    fake_gcloud(
        tmp_path / "bin",
        f'[ "$1 $2" = "info --format=value(installation.sdk_root)" ] && echo {sdk}',
    )
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    assert emulators.firestore_bin() == (
        sdk / "platform/cloud-firestore-emulator/cloud_firestore_emulator"
    )
    assert emulators.pubsub_bin() == (
        sdk / "platform/pubsub-emulator/bin/cloud-pubsub-emulator"
    )
    assert str(emulators.firestore_bin()) in emulators.missing_emulators()


def test_without_gcloud_the_debian_location(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert emulators.sdk_root() == Path("/usr/lib/google-cloud-sdk")


def test_a_failing_gcloud_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_gcloud(tmp_path / "bin", "echo broken >&2; exit 1")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    assert emulators.sdk_root() == Path("/usr/lib/google-cloud-sdk")


def test_an_explicit_root_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCLOUD_SDK_ROOT", str(tmp_path))
    assert emulators.pubsub_bin().is_relative_to(tmp_path)
