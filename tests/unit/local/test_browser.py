"""make test's browser check: install chromium as root, else name the command."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from local import browser


@pytest.fixture
def no_chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    monkeypatch.setattr(browser, "CHROMIUM", str(tmp_path / "chromium"))
    monkeypatch.setattr(browser.shutil, "which", lambda name: f"/usr/bin/{name}")
    calls: list[Any] = []
    monkeypatch.setattr(
        browser.subprocess,
        "run",
        lambda argv, **kw: calls.append(argv) or subprocess.CompletedProcess(argv, 0),
    )
    return calls


def test_without_root_it_names_the_command_and_installs_nothing(
    no_chromium: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(browser.os, "geteuid", lambda: 1000)
    reason = browser.ensure_chromium()
    assert reason is not None and "apt-get install -y chromium" in reason
    assert no_chromium == []


def test_as_root_it_installs_the_debian_package(
    no_chromium: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(browser.os, "geteuid", lambda: 0)
    browser.ensure_chromium()
    assert no_chromium == [
        ["/usr/bin/apt-get", "update"],
        ["/usr/bin/apt-get", "install", "-y", "chromium"],
    ]


def test_an_installed_browser_needs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    present = tmp_path / "chromium"
    present.write_text("#!/bin/sh\n")
    monkeypatch.setattr(browser, "CHROMIUM", str(present))
    assert browser.ensure_chromium() is None
