"""Templates API."""

from __future__ import annotations

import uuid
from typing import Any

from shared.api.context import ApiContext
from shared.api.http import (
    ApiError,
    ApiRequest,
    ApiResponse,
    Router,
    not_found,
    parse_body,
)
from shared.content.encoding import count_segments
from shared.content.store import Template, TemplateFields, get_template, template_ref
from shared.content.templates import (
    TemplateSyntaxError,
    compile_template,
    template_variables,
)

router = Router()


def template_body(template: Template) -> dict[str, Any]:
    info = count_segments(template.body)
    return {
        **template.model_dump(mode="json"),
        "encoding": info.encoding.value,
        "segments": info.segments,
    }


def check_syntax(body: str) -> list[str]:
    try:
        compile_template(body)
    except TemplateSyntaxError as exc:
        raise ApiError(
            422,
            "template_syntax",
            f"template does not parse: line {exc.line}: {exc.reason}",
            [{"field": "body", "line": exc.line, "error": exc.reason}],
        ) from exc
    return template_variables(body)


@router.add("POST", "/v1/templates")
def create_template(request: ApiRequest, context: ApiContext) -> ApiResponse:
    fields = parse_body(request, TemplateFields)
    variables = check_syntax(fields.body)
    now = context.clock()
    template = Template(
        **fields.model_dump(),
        id=uuid.uuid4().hex[:20],
        variables=variables,
        created_at=now,
        updated_at=now,
    )
    template_ref(context.db, template.id).create(template.model_dump(exclude={"id"}))
    return ApiResponse(201, template_body(template))


@router.add("GET", "/v1/templates/{template_id}")
def read_template(request: ApiRequest, context: ApiContext) -> ApiResponse:
    template = get_template(context.db, request.path_params["template_id"])
    if template is None:
        raise not_found("template")
    return ApiResponse(200, template_body(template))
