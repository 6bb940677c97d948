"""Template documents and their repository boundary."""

from __future__ import annotations

from datetime import datetime

from google.cloud import firestore
from pydantic import BaseModel, Field

TEMPLATES = "templates"


class TemplateFields(BaseModel):
    """What an operator sets on a template."""

    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=200)
    body: str = Field(max_length=4096)
    channel: str = Field("sms", pattern="^(sms|whatsapp)$")
    content_sid: str | None = Field(None, pattern=r"^HX[0-9a-fA-F]{32}$")
    # WhatsApp content variables: placeholder number → Liquid expression.
    content_variables: dict[str, str] | None = None


class Template(TemplateFields):
    model_config = {"extra": "ignore"}

    id: str
    variables: list[str] = Field(default_factory=list)
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @classmethod
    def from_snapshot(cls, snapshot: firestore.DocumentSnapshot) -> Template:
        return cls.model_validate({**(snapshot.to_dict() or {}), "id": snapshot.id})


def template_ref(db: firestore.Client, template_id: str) -> firestore.DocumentReference:
    return db.collection(TEMPLATES).document(template_id)


def get_template(db: firestore.Client, template_id: str) -> Template | None:
    snapshot = template_ref(db, template_id).get()
    return Template.from_snapshot(snapshot) if snapshot.exists else None
