"""The dry run reports WhatsApp's closed 24-hour window as the sender would."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from shared.campaigns.dry_run import dry_run
from shared.platform.config import CoreSettings
from shared.store.campaigns import Campaign, CampaignSettings, CampaignStatus
from shared.store.templates import get_template
from shared.store.users import ConsentState, new_user, user_doc

pytestmark = pytest.mark.integration

EVERYONE = {"attribute": "city", "operator": "equals", "value": "Galle"}


def test_a_dry_run_counts_free_form_whatsapp_outside_the_window(
    db: Any, clock: Any
) -> None:
    now = clock.now
    inside, outside, never = "+94771230001", "+94771230002", "+94771230003"
    for phone, last_inbound in (
        (inside, now - timedelta(hours=2)),
        (outside, now - timedelta(hours=30)),
        (never, None),
    ):
        user = new_user(
            phone, {"city": "Galle"}, "UTC", ConsentState.OPT_IN, "api", now
        )
        doc = {**user_doc(user), "last_inbound_at": last_inbound}
        db.collection("users").document(phone).set(doc)
    db.collection("templates").document("wa").set(
        {"name": "wa", "channel": "whatsapp", "body": "Hi", "variables": []}
    )
    settings = CampaignSettings(
        name="wa", template_id="wa", segment_id="galle", quiet_hours=None
    ).model_dump(by_alias=True)
    campaign = Campaign.model_validate(
        {**settings, "id": "wa", "status": CampaignStatus.DRAFT.value}
    )
    template = get_template(db, "wa")
    assert template is not None

    core = CoreSettings(GCP_PROJECT="ese-test")
    report = dry_run(db, campaign, template, EVERYONE, core, now)

    assert report["targeted"] == 3
    assert report["eligible"] == 1
    assert report["skips"] == {"whatsapp_window_closed": 2}
