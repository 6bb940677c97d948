"""The entry point the local stack uses for every function when faults are on.

It patches the clock, loads `functions/<ESE_FUNCTION>/main.py`, installs the
fault patches and exposes the wrapped entry point under the function's own name.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from local.faults import (
    FaultPlan,
    patch_clock,
    patch_firestore_commits,
    patch_reconcile_claims,
    patch_twilio_gateway,
    wrap_http_handler,
    wrap_pubsub_handler,
    wrap_send_task_handler,
)

REPO = Path(__file__).resolve().parent.parent
NAME = os.environ["ESE_FUNCTION"]
HTTP = {"api", "twilio_webhooks", "campaign_scheduler", "message_sender"}

_plan = FaultPlan(os.environ.get("ESE_FAULTS_FILE"), NAME)
# Before the function and shared/ load, so every `utcnow` they bind is this one.
patch_clock(_plan)

_spec = importlib.util.spec_from_file_location(
    f"functions_{NAME}_main", REPO / "functions" / NAME / "main.py"
)
assert _spec and _spec.loader  # noqa: S101 - a missing function is a set-up error
_module = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _module
_spec.loader.exec_module(_module)

patch_firestore_commits(_plan)
patch_twilio_gateway(_plan)
patch_reconcile_claims(_plan)
_real = getattr(_module, NAME)
if NAME == "message_sender":
    _real = wrap_send_task_handler(_plan, _real)
_wrapped = (
    wrap_http_handler(_plan, _real, NAME)
    if NAME in HTTP
    else wrap_pubsub_handler(_plan, _real)
)
_wrapped.__name__ = NAME
globals()[NAME] = _wrapped
