"""Template documents and their repository boundary."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from google.cloud import firestore
from pydantic import (
    BaseModel,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from shared.platform.documents import delete_unless_used, document_cache
from shared.platform.paging import Listing
from shared.platform.ttl_cache import TtlCache

TEMPLATES = "templates"


class TemplateChannel(StrEnum):
    SMS = "sms"
    WHATSAPP = "whatsapp"


MAX_BODY_CHARACTERS = 4096

# Twilio numbers its content placeholders ({{1}}); names are accepted as well. The
# pattern keeps every key usable as a Firestore map key and a JSON object key.
CONTENT_PLACEHOLDER_PATTERN = r"^[A-Za-z0-9_]{1,64}$"
MAX_CONTENT_VARIABLES = 100
MAX_CONTENT_EXPRESSION_CHARACTERS = 1024

ContentPlaceholder = Annotated[
    str, StringConstraints(pattern=CONTENT_PLACEHOLDER_PATTERN)
]
ContentExpression = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_CONTENT_EXPRESSION_CHARACTERS)
]

# Ids that Firestore refuses as document ids ("." and "..", "__…__", "/" or over
# 1,500 bytes): an id like that, taken from a request, names no template.
_TEMPLATE_ID = re.compile(r"^(?!\.{1,2}$)(?!__.*__$)[^/]{1,128}$")


def _without_content_sid(info: ValidationInfo) -> bool:
    # A content_sid that failed its own check is reported there, not again here.
    return "content_sid" in info.data and info.data["content_sid"] is None


class TemplateFields(BaseModel):
    """What an operator sets on a template.

    The content fields come before `body` so that the body rule can see them.
    """

    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=200)
    channel: str = Field("sms", pattern="^(sms|whatsapp)$")
    content_sid: str | None = Field(None, pattern=r"^HX[0-9a-fA-F]{32}$")
    # WhatsApp content variables: placeholder number → Liquid expression.
    content_variables: dict[ContentPlaceholder, ContentExpression] | None = Field(
        None, max_length=MAX_CONTENT_VARIABLES
    )
    # With a content_sid, Twilio sends the approved content, and the body is only
    # the preview operators read; otherwise the body is the message.
    body: str = Field("", max_length=MAX_BODY_CHARACTERS, validate_default=True)

    @field_validator("content_sid")
    @classmethod
    def _content_sid_needs_whatsapp(
        cls, value: str | None, info: ValidationInfo
    ) -> str | None:
        # Twilio's content templates go out over WhatsApp only.
        channel_given = "channel" in info.data
        if (
            value is not None
            and channel_given
            and info.data["channel"] != TemplateChannel.WHATSAPP
        ):
            raise ValueError("content_sid is only for whatsapp templates")
        return value

    @field_validator("content_variables")
    @classmethod
    def _content_variables_need_content_sid(
        cls, value: dict[str, str] | None, info: ValidationInfo
    ) -> dict[str, str] | None:
        if value and _without_content_sid(info):
            raise ValueError("content_variables need a content_sid")
        return value

    @field_validator("body")
    @classmethod
    def _body_unless_content_sid(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip() and _without_content_sid(info):
            raise ValueError("body must not be empty unless content_sid is given")
        return value


class Template(TemplateFields):
    model_config = {"extra": "ignore"}

    id: str
    variables: list[str] = Field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def from_snapshot(cls, snapshot: firestore.DocumentSnapshot) -> Template:
        return cls.model_validate({**(snapshot.to_dict() or {}), "id": snapshot.id})


def is_template_id(value: str) -> bool:
    return _TEMPLATE_ID.match(value) is not None


def new_template_id() -> str:
    return uuid.uuid4().hex[:20]


def template_cache(db: firestore.Client, ttl: float) -> TtlCache[Template]:
    """Template documents cached per instance for `ttl` seconds: an edit still
    takes effect within seconds while the send path reads each template about
    once per instance per TTL instead of once per message."""
    return document_cache(
        ttl, lambda template_id: template_ref(db, template_id), Template.from_snapshot
    )


def templates_collection(db: firestore.Client) -> firestore.CollectionReference:
    return db.collection(TEMPLATES)


def every_template(db: firestore.Client) -> Listing[Template]:
    """Every template, by id."""
    collection = templates_collection(db)
    return Listing(firestore.Query(collection), collection, Template.from_snapshot)


def template_ref(db: firestore.Client, template_id: str) -> firestore.DocumentReference:
    return templates_collection(db).document(template_id)


def get_template(db: firestore.Client, template_id: str) -> Template | None:
    if not is_template_id(template_id):
        return None
    snapshot = template_ref(db, template_id).get()
    return Template.from_snapshot(snapshot) if snapshot.exists else None


def create_template(
    db: firestore.Client,
    fields: TemplateFields,
    variables: list[str],
    now: datetime,
) -> Template:
    template = Template(
        **fields.model_dump(),
        id=new_template_id(),
        variables=variables,
        created_at=now,
        updated_at=now,
    )
    template_ref(db, template.id).create(template.model_dump(exclude={"id"}))
    return template


def replace_template(
    db: firestore.Client,
    template_id: str,
    fields: TemplateFields,
    variables: list[str],
    now: datetime,
) -> Template | None:
    """Replace what an operator set, keeping `created_at`; None if there is none.

    In a transaction, so that a template deleted meanwhile is not brought back.
    """
    if not is_template_id(template_id):
        return None
    ref = template_ref(db, template_id)

    @firestore.transactional
    def apply(transaction: firestore.Transaction) -> Template | None:
        snapshot = ref.get(transaction=transaction)
        if not snapshot.exists:
            return None
        template = Template(
            **fields.model_dump(),
            id=template_id,
            variables=variables,
            created_at=(snapshot.to_dict() or {}).get("created_at"),
            updated_at=now,
        )
        transaction.set(ref, template.model_dump(exclude={"id"}))
        return template

    result: Template | None = apply(db.transaction())
    return result


def delete_template_unless_used(
    db: firestore.Client,
    template_id: str,
    users_of: Callable[[firestore.Transaction], list[str]],
) -> list[str] | None:
    """Delete the template unless `users_of` names users of it; returns those.

    None when there is no template; see `delete_unless_used`.
    """
    return delete_unless_used(db, template_ref(db, template_id), users_of)
