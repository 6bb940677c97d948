"""What every API handler may use: Firestore, the publisher, tasks, settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from shared.platform.config import ApiSettings, CoreSettings
from shared.platform.firestore import Database
from shared.platform.pubsub import Publisher
from shared.platform.tasks import TaskQueue


@dataclass
class ApiContext:
    db: Database
    publisher: Publisher
    tasks: Callable[[], TaskQueue]
    core: CoreSettings
    api: ApiSettings
    clock: Callable[[], datetime]
