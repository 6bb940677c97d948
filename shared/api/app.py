"""The REST API v1: authentication, routing and the error contract."""

from __future__ import annotations

import hmac
from functools import lru_cache

from google.api_core import exceptions as gexc

from shared.api import (
    campaigns,
    events,
    imports,
    messages,
    reports,
    segments,
    templates,
    users,
)
from shared.api.context import ApiContext
from shared.api.http import ApiError, ApiRequest, ApiResponse, Contract, Router, Tag
from shared.api.openapi import openapi_document
from shared.platform.logging import get_logger

log = get_logger(__name__)

# The document of every route, itself a route: its router is the app's own.
schema = Router()


@schema.route(
    "GET",
    "/v1/openapi.json",
    Contract(summary="This document", tag=Tag.REPORTS, response={"type": "object"}),
)
def read_openapi(request: ApiRequest, context: ApiContext) -> ApiResponse:
    return ApiResponse(200, openapi_document(api_router()))


@lru_cache(maxsize=1)
def api_router() -> Router:
    router = Router()
    for module in (
        users,
        imports,
        templates,
        segments,
        campaigns,
        messages,
        events,
        reports,
    ):
        router.include(module.router)
    router.include(schema)
    return router


def authenticate(request: ApiRequest, keys: frozenset[str]) -> None:
    header = request.header("Authorization") or ""
    scheme, _, token = header.partition(" ")
    # Compared as bytes: compare_digest refuses str with non-ASCII characters,
    # and a header is whatever the caller sent.
    presented = token.strip().encode("utf-8", "surrogatepass")
    valid = scheme.lower() == "bearer" and any(
        hmac.compare_digest(presented, key.encode()) for key in keys
    )
    if not valid:
        raise ApiError(
            401,
            "unauthenticated",
            "a valid 'Authorization: Bearer <key>' header is required",
            headers={"WWW-Authenticate": "Bearer"},
        )


def handle_request(request: ApiRequest, context: ApiContext) -> ApiResponse:
    """Answer one request; bad input never becomes a 500 with a stack trace."""
    try:
        if request.path not in api_router().public_paths():
            authenticate(request, context.api.api_key_set)
        return api_router().dispatch(request, context)
    except ApiError as error:
        return ApiResponse(error.status, error.body(), error.headers)
    except (gexc.Aborted, gexc.ServiceUnavailable) as error:
        # Contention or a blip, not a bug of ours: the caller should retry.
        log.warning("transient Firestore error in %s: %s", request.path, error)
        busy = ApiError(
            503,
            "unavailable",
            "the datastore is briefly unavailable; retry the request",
            headers={"Retry-After": "1"},
        )
        return ApiResponse(503, busy.body(), busy.headers)
    except RecursionError:
        # Only input nests this deep (JSON the decoder took, then code that
        # walks it): bad input, never a 500, on any route.
        log.warning(
            "request body nested too deeply: %s %s", request.method, request.path
        )
        too_deep = ApiError(400, "nested_too_deep", "the body is nested too deeply")
        return ApiResponse(400, too_deep.body())
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        internal = ApiError(500, "internal", "internal error")
        return ApiResponse(500, internal.body())
