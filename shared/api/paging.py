"""Paged list answers: `limit` (≤ 500) and `page_token` of a store's listing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from shared.api.http import ApiError, ApiRequest, QueryParam
from shared.platform.paging import InvalidPageToken, Listing, PageOf, read_page
from shared.platform.shared_reads import SharedReads

MAX_LIMIT = 500
PAGING = (
    QueryParam("limit", "page size, 1..500 (default 50)", {"type": "integer"}),
    QueryParam("page_token", "next_page_token of the previous page"),
)

ItemT = TypeVar("ItemT")
StoredT = TypeVar("StoredT")
ModelT = TypeVar("ModelT", bound=BaseModel)


class Page(BaseModel, Generic[ItemT]):
    items: list[ItemT]
    next_page_token: str | None = None


# A list page asked for by many callers at once is read once for all of those
# who asked before that read began (a dashboard polls the same first page).
_pages: SharedReads[Page[Any]] = SharedReads()


def page_limit(request: ApiRequest, default: int = 50) -> int:
    raw = request.query.get("limit", str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(400, "invalid_limit", f"limit must be 1..{MAX_LIMIT}")
    return int(raw)


def as_is(item: ModelT) -> ModelT:
    """The view of a stored model the API answers with unchanged."""
    return item


def paged(
    request: ApiRequest,
    listing: Listing[StoredT],
    view: Callable[[StoredT], ModelT],
) -> Page[ModelT]:
    """The page of `listing` the request asks for, each item as `view` shows it.

    Identical requests at once share one read, begun after each of them came.
    """
    limit = page_limit(request)

    def read() -> Page[Any]:
        try:
            page: PageOf[StoredT] = read_page(
                listing, limit, request.query.get("page_token")
            )
        except InvalidPageToken as exc:
            raise ApiError(
                400, "invalid_page_token", "page_token is not valid"
            ) from exc
        # Items are sent as their own models (aliases included) whatever they are.
        return Page[Any](
            items=[view(item) for item in page.items], next_page_token=page.next_token
        )

    return _pages.read((request.path, tuple(sorted(request.query.items()))), read)
