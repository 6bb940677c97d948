"""Message planning: one recipient's message, rendered the one way every path does.

The render preview (`POST /v1/templates/{id}/render`), the dry run, fan-out and
the event router all build the template's scope with `template_scope` and
render with `render_content`, so a preview that renders is a send that renders
(docs/architecture.md §7). A triggered campaign's template sees `event` as
{event_id, type, occurred_at, properties}.

A render that fails on one recipient's data (a division by zero, a list past
the loop limit, an attribute past the output limit) makes that one message
SKIPPED(`render_failed`): raising would fail the whole batch on every
redelivery and leave the campaign RUNNING forever.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from shared.content.encoding import count_segments
from shared.content.templates import (
    TemplateRenderError,
    TemplateSyntaxError,
    render_content_variables,
    render_message,
)
from shared.content.validation import with_opt_out_footer
from shared.delivery.messages import message_expire_at
from shared.platform.config import CoreSettings
from shared.store.campaigns import Campaign
from shared.store.messages import QUEUED_RANK, MessageStatus, rank_of
from shared.store.templates import Template
from shared.store.users import User

SKIPPED_RANK = rank_of(MessageStatus.SKIPPED)


class TriggeringEvent(Protocol):
    """What a template may read of the event that triggered its message."""

    @property
    def event_id(self) -> str | None: ...

    @property
    def type(self) -> str | None: ...

    @property
    def occurred_at(self) -> datetime | None: ...

    @property
    def properties(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class TemplateScope:
    """The names a template renders with for one recipient."""

    attributes: Mapping[str, Any]
    phone: str
    # Names the engine provides (`event`); they win over same-named attributes.
    engine: Mapping[str, Any]


def template_scope(
    attributes: Mapping[str, Any], phone: str, event: TriggeringEvent | None = None
) -> TemplateScope:
    """The one builder of a template's scope: the user's attributes, `phone`,
    and for a triggered message `event` = {event_id, type, occurred_at,
    properties}."""
    if event is None:
        return TemplateScope(attributes, phone, {})
    variable = {
        "event_id": event.event_id,
        "type": event.type,
        "occurred_at": event.occurred_at,
        "properties": event.properties,
    }
    return TemplateScope(attributes, phone, {"event": variable})


@dataclass(frozen=True)
class RenderedContent:
    body: str
    # WhatsApp content-template values (ContentSid placeholders), if any.
    content_variables: dict[str, str] | None
    missing_variables: list[str]


def render_content(template: Template, scope: TemplateScope) -> RenderedContent:
    """Render the body and any content variables; raises TemplateRenderError
    (or TemplateSyntaxError for a stored template that no longer compiles)."""
    rendered = render_message(
        template.body, scope.attributes, scope.phone, scope.engine
    )
    missing = set(rendered.missing_variables)
    values: dict[str, str] | None = None
    if template.content_sid or template.content_variables:
        values, missing_content = render_content_variables(
            template.content_variables or {},
            scope.attributes,
            scope.phone,
            scope.engine,
        )
        missing.update(missing_content)
    return RenderedContent(rendered.body, values, sorted(missing))


@dataclass(frozen=True)
class PlannedMessage:
    message_id: str
    doc: dict[str, Any]

    @property
    def sendable(self) -> bool:
        return bool(self.doc["status_rank"] == QUEUED_RANK)


def _skipped_at_render(
    doc: dict[str, Any], reason: str, detail: str, now: datetime
) -> dict[str, Any]:
    doc["status_rank"] = SKIPPED_RANK
    doc["skip_reason"] = reason
    doc["skipped_at"] = now
    doc["expire_at"] = message_expire_at(now)
    doc["audit"] = [
        {
            "step": "render",
            "outcome": "skip",
            "reason": f"{reason}: {detail}",
            "at": now,
        }
    ]
    return doc


def _base_doc(
    template: Template, user: User, campaign: Campaign, body: str, now: datetime
) -> dict[str, Any]:
    info = count_segments(body)
    return {
        "campaign_id": campaign.id,
        "phone": user.phone,
        "body": body,
        "encoding": info.encoding.value,
        "segments": info.segments,
        "channel": template.channel,
        "status_rank": QUEUED_RANK,
        "generation": 0,
        "attempts": 0,
        # Stored false, not absent: the scheduler finds stranded messages
        # with `held == false` (Firestore cannot query a missing field).
        "held": False,
        "created_at": now,
        "audit": [],
    }


def render_for(
    template: Template,
    user: User,
    campaign: Campaign,
    core: CoreSettings,
    now: datetime,
    event: TriggeringEvent | None = None,
) -> dict[str, Any]:
    """The message document for one recipient (send_at is planned later).

    A variable that renders empty without a default makes the message SKIPPED
    (`missing_variable`), and a render that fails makes it SKIPPED
    (`render_failed`), so no message with a hole in it is ever queued.
    """
    try:
        content = render_content(
            template, template_scope(user.attributes, user.phone, event)
        )
    except (TemplateRenderError, TemplateSyntaxError) as error:
        doc = _base_doc(template, user, campaign, "", now)
        doc["segments"] = 0
        return _skipped_at_render(doc, "render_failed", str(error), now)
    body = content.body
    if core.add_opt_out_footer and template.channel == "sms":
        body = with_opt_out_footer(body, core.opt_out_footer)
    doc = _base_doc(template, user, campaign, body, now)
    if template.content_sid:
        doc["content_sid"] = template.content_sid
        doc["content_variables"] = content.content_variables
    if content.missing_variables:
        detail = ", ".join(content.missing_variables)
        _skipped_at_render(doc, "missing_variable", detail, now)
    return doc
