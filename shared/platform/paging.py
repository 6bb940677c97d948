"""Cursor paging over a Firestore query: by document id, or newest first.

A store says what a list reads (a `Listing`: the query, how a document maps
to its model, the order); `read_page` reads one page of it after a page token
and gives the next page's token. Tokens are opaque to callers:
- by id: the last document's id, URL-safe base64;
- newest first: URL-safe base64 of the JSON `[<ISO time or "">, <id>]`.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from google.cloud import firestore

from shared.platform.documents import is_document_id
from shared.platform.firestore import stream_query

T = TypeVar("T")


class InvalidPageToken(ValueError):
    """A page token that names no place in the listing."""


@dataclass(frozen=True)
class Listing(Generic[T]):
    """What a list reads: `query` over `collection`, each document as `read`
    maps it, by document id, or newest `newest_by` first (ties by id)."""

    query: firestore.Query
    collection: firestore.CollectionReference
    read: Callable[[firestore.DocumentSnapshot], T]
    newest_by: str | None = None


@dataclass(frozen=True)
class PageOf(Generic[T]):
    items: list[T]
    next_token: str | None


def read_page(listing: Listing[T], limit: int, token: str | None) -> PageOf[T]:
    """Up to `limit` items after `token` (from the start without one)."""
    field = listing.newest_by
    if field is None:
        query = listing.query.order_by("__name__")
        if token:
            query = query.start_after([_by_id_cursor(listing, token)])
    else:
        query = listing.query.order_by(
            field, direction=firestore.Query.DESCENDING
        ).order_by("__name__", direction=firestore.Query.DESCENDING)
        if token:
            query = query.start_after(_newest_cursor(listing, field, token))
    snapshots = list(stream_query(query.limit(limit + 1)))
    more = len(snapshots) > limit
    snapshots = snapshots[:limit]
    next_token = _token_after(snapshots[-1], field) if more and snapshots else None
    return PageOf([listing.read(s) for s in snapshots], next_token)


def _token_after(snapshot: firestore.DocumentSnapshot, field: str | None) -> str:
    if field is None:
        return base64.urlsafe_b64encode(snapshot.id.encode()).decode()
    value = snapshot.get(field)
    at = value.isoformat() if isinstance(value, datetime) else ""
    return base64.urlsafe_b64encode(json.dumps([at, snapshot.id]).encode()).decode()


def _by_id_cursor(listing: Listing[Any], token: str) -> firestore.DocumentReference:
    try:
        doc_id = base64.b64decode(
            token.encode(), altchars=b"-_", validate=True
        ).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidPageToken(token) from exc
    if not is_document_id(doc_id):
        raise InvalidPageToken(token)
    return listing.collection.document(doc_id)


def _newest_cursor(listing: Listing[Any], field: str, token: str) -> dict[str, Any]:
    try:
        at, doc_id = json.loads(base64.urlsafe_b64decode(token.encode()))
        if not isinstance(doc_id, str) or not is_document_id(doc_id):
            raise ValueError("not a document id")
        return {
            field: datetime.fromisoformat(at),
            "__name__": listing.collection.document(doc_id),
        }
    except (ValueError, TypeError, binascii.Error) as exc:
        raise InvalidPageToken(token) from exc
