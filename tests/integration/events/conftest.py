"""The events tests' router: a fresh instance per call, on the emulator."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shared.events.router import RouterDeps, build_router_deps
from shared.platform.config import CoreSettings


@pytest.fixture
def router(db: Any, task_queue: Any) -> Callable[[], RouterDeps]:
    """A fresh router instance (empty caches and pacer) on each call."""
    return lambda: build_router_deps(db, task_queue, CoreSettings())
