"""Cursor paging for list endpoints: `limit` (≤ 500) and `page_token`."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic, TypeVar

from google.cloud import firestore
from pydantic import BaseModel

from shared.api.http import ApiError, ApiRequest, QueryParam, is_document_id

MAX_LIMIT = 500
PAGING = (
    QueryParam("limit", "page size, 1..500 (default 50)", {"type": "integer"}),
    QueryParam("page_token", "next_page_token of the previous page"),
)

ItemT = TypeVar("ItemT")
ModelT = TypeVar("ModelT", bound=BaseModel)


class Page(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    next_page_token: str | None = None


def _page(items: list[ModelT], next_token: str | None) -> Page[ModelT]:
    # Items are sent as their own models (aliases included) whatever they are.
    return Page[Any](items=items, next_page_token=next_token)


def page_limit(request: ApiRequest, default: int = 50) -> int:
    raw = request.query.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(400, "invalid_limit", f"limit must be 1..{MAX_LIMIT}")
    return int(raw)


def _decode(token: str) -> str:
    """The document id a page token names; anything else is a 400."""
    invalid = ApiError(400, "invalid_page_token", "page_token is not valid")
    try:
        doc_id = base64.b64decode(
            token.encode(), altchars=b"-_", validate=True
        ).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise invalid from exc
    if not is_document_id(doc_id):
        raise invalid
    return doc_id


def paged(
    request: ApiRequest,
    query: firestore.Query,
    collection: firestore.CollectionReference,
    render: Callable[[firestore.DocumentSnapshot], ModelT],
) -> Page[ModelT]:
    """One page of `query`, ordered by document id, with the next page's token."""
    limit = page_limit(request)
    page = query.order_by("__name__").limit(limit + 1)
    token = request.query.get("page_token")
    if token:
        page = page.start_after([collection.document(_decode(token))])
    snapshots = list(page.stream())
    more = len(snapshots) > limit
    snapshots = snapshots[:limit]
    next_token = (
        base64.urlsafe_b64encode(snapshots[-1].id.encode()).decode()
        if more and snapshots
        else None
    )
    return _page([render(s) for s in snapshots], next_token)


def _newest_token(snapshot: firestore.DocumentSnapshot, field: str) -> str:
    value = snapshot.get(field)
    at = value.isoformat() if isinstance(value, datetime) else ""
    return base64.urlsafe_b64encode(json.dumps([at, snapshot.id]).encode()).decode()


def _newest_cursor(
    collection: firestore.CollectionReference, field: str, token: str
) -> dict[str, Any]:
    try:
        at, doc_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        if not isinstance(doc_id, str) or not is_document_id(doc_id):
            raise ValueError("not a document id")
        return {
            field: datetime.fromisoformat(at),
            "__name__": collection.document(doc_id),
        }
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ApiError(400, "invalid_page_token", "page_token is not valid") from exc


def newest_first(
    request: ApiRequest,
    query: firestore.Query,
    collection: firestore.CollectionReference,
    field: str,
    render: Callable[[firestore.DocumentSnapshot], ModelT],
) -> Page[ModelT]:
    """One page of `query`, newest `field` first (ties by id), with its token."""
    limit = page_limit(request)
    page = (
        query.order_by(field, direction=firestore.Query.DESCENDING)
        .order_by("__name__", direction=firestore.Query.DESCENDING)
        .limit(limit + 1)
    )
    token = request.query.get("page_token")
    if token:
        page = page.start_after(_newest_cursor(collection, field, token))
    snapshots = list(page.stream())
    more = len(snapshots) > limit
    snapshots = snapshots[:limit]
    next_token = _newest_token(snapshots[-1], field) if more and snapshots else None
    return _page([render(s) for s in snapshots], next_token)
