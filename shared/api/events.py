"""Events API."""

from __future__ import annotations

from shared.api.http import Router

router = Router()
