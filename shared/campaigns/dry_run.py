"""Dry run: what a launch would do now, without sending or writing anything.

It walks the same segment evaluator as a launch, renders each message as
fan-out would, and runs the same send-time steps as the sender.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from shared.audience.segments import iter_segment_users
from shared.campaigns.planning import render_for
from shared.delivery.pipeline import (
    RECIPIENT_STEPS,
    Outcome,
    SendContext,
    run_steps,
    skip_reason,
)
from shared.delivery.quiet_hours import parse_quiet_hours
from shared.delivery.sender import count_recent_sends, parse_cap
from shared.platform.config import CoreSettings
from shared.platform.firestore import Database
from shared.store.campaigns import Campaign
from shared.store.messages import Message
from shared.store.templates import Template


def dry_run(
    db: Database,
    campaign: Campaign,
    template: Template,
    definition: Mapping[str, Any],
    core: CoreSettings,
    now: datetime,
) -> dict[str, Any]:
    skips: Counter[str] = Counter()
    targeted = eligible = deferred = segments = 0
    for user in iter_segment_users(db, definition, now):
        targeted += 1
        doc = render_for(template, user, campaign, core, now)
        if doc.get("skip_reason"):
            skips[doc["skip_reason"]] += 1
            continue
        message = Message.model_validate({**doc, "id": "dry-run", "send_at": now})
        ctx = SendContext(
            message=message,
            campaign=campaign,
            now=now,
            user=user,
            quiet_default=parse_quiet_hours(core.quiet_hours_default),
            global_cap=parse_cap(core.global_frequency_cap),
            prohibited_patterns=core.prohibited_pattern_list,
            count_recent_sends=count_recent_sends(db),
        )
        final = run_steps(ctx, RECIPIENT_STEPS)[-1]
        if final.outcome is Outcome.SKIP:
            skips[skip_reason(final)] += 1
            continue
        deferred += final.outcome is Outcome.DEFER
        eligible += 1
        segments += message.segments
    seconds = segments / campaign.rate_limit_mps
    return {
        "targeted": targeted,
        "eligible": eligible,
        "skips": dict(skips),
        "quiet_hours_deferrals_now": deferred,
        "total_segments": segments,
        "rate_limit_mps": campaign.rate_limit_mps,
        "estimated_duration_seconds": round(seconds, 1),
        "estimated_duration": str(timedelta(seconds=round(seconds))),
    }
