"""A framework-free HTTP layer for the REST API: requests, responses, routing.

The `api` function adapts Flask's request to `ApiRequest`; everything below it
is plain Python, so handlers are tested without a web server.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import IO, Any, TypeVar

from pydantic import BaseModel, Field, ValidationError

from shared.platform.documents import is_document_id


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


class ErrorBody(BaseModel):
    code: str = Field(examples=["not_found"])
    message: str
    details: list[Any] = Field(default_factory=list)


class ErrorEnvelope(BaseModel):
    """Every 4xx answer: {"error": {"code", "message", "details"}}."""

    error: ErrorBody


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


class Tag(StrEnum):
    USERS = "users"
    IMPORTS = "imports"
    EVENTS = "events"
    TEMPLATES = "templates"
    SEGMENTS = "segments"
    CAMPAIGNS = "campaigns"
    MESSAGES = "messages"
    REPORTS = "reports"
    HEALTH = "health"


@dataclass(frozen=True)
class QueryParam:
    name: str
    description: str
    schema: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Contract:
    """What a route promises: the OpenAPI document and authentication read it.

    A handler answers with an instance of `response`, sent with `status`; or,
    for what a model cannot say (204, headers, a raw document), an ApiResponse.
    """

    summary: str
    tag: Tag
    response: type[BaseModel] | Mapping[str, Any] | None = None
    status: int = 200
    request: type[BaseModel] | None = None
    # A body the handler reads itself (files, lists): content type → schema.
    request_content: Mapping[str, Any] | None = None
    # Models `request_content` refers to by $ref, for the document's schemas.
    request_models: tuple[type[BaseModel], ...] = ()
    request_required: bool = True
    query: tuple[QueryParam, ...] = ()
    errors: tuple[int, ...] = ()
    # Served without an API key.
    public: bool = False


Handler = Callable[[ApiRequest, Any], ApiResponse | BaseModel]
HandlerT = TypeVar("HandlerT", bound=Handler)


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str
    handler: Handler
    regex: re.Pattern[str]
    contract: Contract

    def respond(self, answer: ApiResponse | BaseModel) -> ApiResponse:
        """The handler's answer on the wire: a model is sent as its JSON."""
        if isinstance(answer, ApiResponse):
            return answer
        declared = self.contract.response
        if not (isinstance(declared, type) and _answers(declared, answer)):
            raise TypeError(
                f"{self.method} {self.pattern} answered a {type(answer).__name__}"
                f", not the {declared!r} its contract declares"
            )
        return ApiResponse(
            self.contract.status, answer.model_dump(mode="json", by_alias=True)
        )


def _answers(declared: type[BaseModel], answer: BaseModel) -> bool:
    """Whether `answer` is what `declared` promises.

    A page declared as Page[User] is built at run time as a page of any items
    (each sent as its own model), so its items are checked one by one.
    """
    generic = declared.__pydantic_generic_metadata__
    if generic["origin"] is None:
        return isinstance(answer, declared)
    (item_type,) = generic["args"]
    items = getattr(answer, "items", [])
    return isinstance(answer, generic["origin"]) and all(
        isinstance(item, item_type) for item in items
    )


def _compile(pattern: str) -> re.Pattern[str]:
    # "{phone}" matches one path segment; phones may arrive as %2B-encoded.
    regex = re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", pattern)
    return re.compile(f"^{regex}$")


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def route(
        self,
        method: str,
        pattern: str,
        contract: Contract,
    ) -> Callable[[HandlerT], HandlerT]:
        """Serve `method pattern` with the decorated handler, as `contract` says."""

        def register(handler: HandlerT) -> HandlerT:
            self.routes.append(
                Route(method, pattern, handler, _compile(pattern), contract)
            )
            return handler

        return register

    def include(self, other: Router) -> None:
        self.routes.extend(other.routes)

    def public_paths(self) -> frozenset[str]:
        return frozenset(r.pattern for r in self.routes if r.contract.public)

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
            return route.respond(route.handler(request, context))
        if allowed:
            raise ApiError(
                405, "method_not_allowed", f"{request.method} is not allowed here"
            )
        raise ApiError(404, "not_found", f"no route for {request.path}")
