"""The webhook URLs infra/ outputs for operators carry the same connection
overrides as every StatusCallback the sender gives Twilio (docs/architecture.md §9)."""

from __future__ import annotations

from pathlib import Path

import hcl2

from shared.delivery.gateway import CONNECTION_OVERRIDES

OUTPUTS = Path(__file__).resolve().parents[3] / "infra" / "outputs.tf"


def test_the_webhook_urls_operators_paste_carry_the_overrides() -> None:
    with OUTPUTS.open(encoding="utf-8") as handle:
        parsed = hcl2.load(handle)
    local_values = {k: v for block in parsed["locals"] for k, v in block.items()}
    assert local_values["webhook_connection_overrides"].strip('"') == (
        CONNECTION_OVERRIDES
    )
    outputs = {
        name.strip('"'): body
        for block in parsed["output"]
        for name, body in block.items()
    }
    for name, path in (
        ("twilio_inbound_webhook_url", "/twilio/inbound"),
        ("twilio_status_callback_url", "/twilio/status"),
    ):
        assert (
            outputs[name]["value"]
            .strip('"')
            .endswith(f"{path}#${{local.webhook_connection_overrides}}")
        ), name
