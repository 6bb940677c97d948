"""The send queue's settings as infra/ deploys them, for the local dispatcher.

Terraform's variables are the one source: the stack reads their defaults here
(python-hcl2) when it starts the local task dispatcher, so the local queue
retries and paces as the deployed one does. A unit test also holds
`DispatcherConfig`'s own defaults equal to these values.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import hcl2

INFRA = Path(__file__).resolve().parent.parent / "infra"

# DispatcherConfig field -> Terraform variable of the send queue (infra/tasks.tf).
QUEUE_VARIABLES = {
    "max_dispatches_per_second": "tasks_max_dispatches_per_second",
    "max_concurrent": "tasks_max_concurrent_dispatches",
    "max_attempts": "tasks_max_attempts",
    "min_backoff": "tasks_min_backoff",
    "max_backoff": "tasks_max_backoff",
    "max_doublings": "tasks_max_doublings",
    "queue_name": "tasks_queue_name",
}


def _unquote(value: Any) -> Any:
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _seconds(duration: str) -> float:
    """A Cloud Tasks duration ("2s", "300s", "1.5s") in seconds."""
    if not duration.endswith("s"):
        raise ValueError(f"not a duration in seconds: {duration!r}")
    return float(duration[:-1])


def variable_defaults(infra: Path = INFRA) -> dict[str, Any]:
    """Every Terraform variable's default in infra/variables.tf."""
    with (infra / "variables.tf").open(encoding="utf-8") as handle:
        parsed = hcl2.load(handle)
    defaults: dict[str, Any] = {}
    for block in parsed.get("variable", []):
        for name, body in block.items():
            if "default" in body:
                defaults[_unquote(name)] = _unquote(body["default"])
    return defaults


def deployed_queue_settings(infra: Path = INFRA) -> dict[str, Any]:
    """The send queue's rate and retry settings, as `DispatcherConfig` fields."""
    defaults = variable_defaults(infra)
    found = {field: defaults[var] for field, var in QUEUE_VARIABLES.items()}
    for field in ("min_backoff", "max_backoff"):
        found[field] = _seconds(found[field])
    found["max_dispatches_per_second"] = float(found["max_dispatches_per_second"])
    for field in ("max_concurrent", "max_attempts", "max_doublings"):
        found[field] = int(found[field])
    return found
