"""The OpenAPI 3.1 document of the REST API, derived from the router.

Every route declares its `Contract` where it is defined (summary, request and
response models, success status, query parameters, error statuses, public
flag); this module only turns the routes a router serves into the document,
so the document lists exactly what the API serves, as the handlers answer it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from shared.api.http import Contract, ErrorEnvelope, Route, Router

API_TITLE = "Event Stream Engine API"
API_VERSION = "1.0.0"
REF_TEMPLATE = "#/components/schemas/{model}"

SUCCESS_DESCRIPTIONS: dict[int, str] = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "No Content",
}
ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "Bad request: unreadable JSON, query parameter or page token",
    401: "Missing or wrong API key",
    404: "Not found",
    409: "Conflict with the current state (the details name it)",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Validation failed (the details name each field)",
    503: "A dependency is unavailable; retry",
}
PATH_PARAMETERS: dict[str, str] = {
    "phone": "E.164, as '+14155550100' or '%2B14155550100'",
    "message_id": (
        "{campaign_id}_{recipient_key}[_{event_id}]; no phone in it: find a"
        " recipient's message with ?phone="
    ),
}
_PARAMETER = re.compile(r"\{(\w+)\}")


# ---------------------------------------------------------------- generation


def _models_of(
    operation: Contract,
) -> Iterable[tuple[type[BaseModel], JsonSchemaMode]]:
    if operation.request is not None:
        yield operation.request, "validation"
    for model in operation.request_models:
        yield model, "validation"
    if isinstance(operation.response, type):
        yield operation.response, "serialization"


def schema_components(
    operations: Iterable[Contract],
) -> tuple[dict[Any, Any], dict[str, Any]]:
    """Each model's $ref, and every schema they need, for components.schemas."""
    pairs: set[tuple[type[BaseModel], JsonSchemaMode]] = {
        (ErrorEnvelope, "serialization"),
    }
    for operation in operations:
        pairs.update(_models_of(operation))
    refs, definitions = models_json_schema(
        sorted(pairs, key=lambda pair: (pair[0].__name__, pair[1])),
        ref_template=REF_TEMPLATE,
    )
    return dict(refs), definitions.get("$defs", {})


def _json_content(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _error_statuses(operation: Contract) -> list[int]:
    statuses = set(operation.errors)
    if not operation.public:
        # Every authenticated route reads or writes Firestore (503 on contention).
        statuses.update({401, 503})
    if operation.request is not None:
        statuses.update({400, 422})
    return sorted(statuses)


def _responses(operation: Contract, refs: Mapping[Any, Any]) -> dict[str, Any]:
    success: dict[str, Any] = {"description": SUCCESS_DESCRIPTIONS[operation.status]}
    if isinstance(operation.response, type):
        success["content"] = _json_content(refs[operation.response, "serialization"])
    elif operation.response is not None:
        success["content"] = _json_content(operation.response)
    error = _json_content(refs[ErrorEnvelope, "serialization"])
    responses = {str(operation.status): success}
    for status in _error_statuses(operation):
        responses[str(status)] = {
            "description": ERROR_DESCRIPTIONS.get(status, "Error"),
            "content": error,
        }
    return responses


def _parameters(pattern: str, operation: Contract) -> list[dict[str, Any]]:
    path = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string"},
            **(
                {"description": PATH_PARAMETERS[name]}
                if name in PATH_PARAMETERS
                else {}
            ),
        }
        for name in _PARAMETER.findall(pattern)
    ]
    query = [
        {
            "name": param.name,
            "in": "query",
            "required": False,
            "description": param.description,
            "schema": dict(param.schema or {"type": "string"}),
        }
        for param in operation.query
    ]
    return path + query


def _request_body(
    operation: Contract, refs: Mapping[Any, Any]
) -> dict[str, Any] | None:
    if operation.request is not None:
        content = _json_content(refs[operation.request, "validation"])
    elif operation.request_content is not None:
        content = dict(operation.request_content)
    else:
        return None
    return {"required": operation.request_required, "content": content}


def operation_object(route: Route, refs: Mapping[Any, Any]) -> dict[str, Any]:
    operation = route.contract
    body: dict[str, Any] = {
        "operationId": route.handler.__name__,
        "summary": operation.summary,
        "tags": [operation.tag],
        "parameters": _parameters(route.pattern, operation),
        "responses": _responses(operation, refs),
    }
    request_body = _request_body(operation, refs)
    if request_body is not None:
        body["requestBody"] = request_body
    if operation.public:
        body["security"] = []
    return body


@lru_cache(maxsize=4)
def openapi_document(router: Router) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every route `router` serves."""
    refs, schemas = schema_components(route.contract for route in router.routes)
    paths: dict[str, dict[str, Any]] = {}
    for route in router.routes:
        paths.setdefault(route.pattern, {})[route.method.lower()] = operation_object(
            route, refs
        )
    return {
        "openapi": "3.1.0",
        "info": {"title": API_TITLE, "version": API_VERSION},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearerAuth": []}],
    }
