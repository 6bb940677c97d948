"""A framework-free HTTP layer for the REST API: requests, responses, routing.

The `api` function adapts Flask's request to `ApiRequest`; everything below it
is plain Python, so handlers are tested without a web server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar

from pydantic import BaseModel, ValidationError


class ApiError(Exception):
    """An error answered as {"error": {"code", "message", "details"}}."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "details": self.details,
            }
        }


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


@dataclass
class ApiRequest:
    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    path_params: dict[str, str] = field(default_factory=dict)
    # Set instead of `body` on routes that read their body as a stream.
    stream: IO[bytes] | None = None

    @property
    def content_type(self) -> str:
        for key, value in self.headers.items():
            if key.lower() == "content-type":
                return value.split(";")[0].strip().lower()
        return ""

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    def json(self) -> Any:
        if not self.body.strip():
            raise ApiError(400, "invalid_json", "a JSON body is required")
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise ApiError(
                400, "invalid_json", f"body is not valid JSON: {exc}"
            ) from exc


@dataclass
class ApiResponse:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


ModelT = TypeVar("ModelT", bound=BaseModel)


def validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(part) for part in err["loc"]), "error": err["msg"]}
        for err in exc.errors()
    ]


def parse_model(data: Any, model: type[ModelT]) -> ModelT:
    """Validate input against a model; bad input is a 422 naming each field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ApiError(
            422,
            "validation_failed",
            "the request is not valid",
            validation_details(exc),
        ) from exc


def parse_body(request: ApiRequest, model: type[ModelT]) -> ModelT:
    return parse_model(request.json(), model)


def is_document_id(value: str) -> bool:
    """Firestore's rules for a document id (no slash, no dots-only, no __x__)."""
    return (
        0 < len(value.encode()) <= 1500
        and "/" not in value
        and value not in (".", "..")
        and not (value.startswith("__") and value.endswith("__"))
    )


Handler = Callable[[ApiRequest, Any], ApiResponse]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    handler: Handler
    regex: re.Pattern[str]


def _compile(pattern: str) -> re.Pattern[str]:
    # "{phone}" matches one path segment; phones may arrive as %2B-encoded.
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
    return re.compile(f"^{regex}$")


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, pattern: str) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(Route(method, pattern, handler, _compile(pattern)))
            return handler

        return register

    def include(self, other: Router) -> None:
        self.routes.extend(other.routes)

    def dispatch(self, request: ApiRequest, context: Any) -> ApiResponse:
        allowed: list[str] = []
        for route in self.routes:
            match = route.regex.match(request.path)
            if not match:
                continue
            if route.method != request.method:
                allowed.append(route.method)
                continue
            request.path_params = match.groupdict()
            if not all(is_document_id(v) for v in request.path_params.values()):
                # No document can have such an id, so there is nothing to find.
                raise ApiError(404, "not_found", f"no resource at {request.path}")
            return route.handler(request, context)
        if allowed:
            raise ApiError(
                405, "method_not_allowed", f"{request.method} is not allowed here"
            )
        raise ApiError(404, "not_found", f"no route for {request.path}")
