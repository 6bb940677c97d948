"""Templates API: CRUD, and previews rendered for one recipient."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

from shared.api.context import ApiContext
from shared.api.http import (
    ApiError,
    ApiRequest,
    ApiResponse,
    Contract,
    Router,
    Tag,
    not_found,
    parse_body,
)
from shared.api.paging import PAGING, Page, paged
from shared.api.users import phone_param
from shared.campaigns.planning import render_content, template_scope
from shared.content.encoding import count_segments
from shared.content.templates import (
    TemplateRenderError,
    TemplateSyntaxError,
    template_variables,
)
from shared.store.campaigns import unfinished_campaigns_using
from shared.store.templates import (
    Template,
    TemplateChannel,
    TemplateFields,
    create_template,
    delete_template_unless_used,
    every_template,
    get_template,
    is_template_id,
    replace_template,
)
from shared.store.users import get_user

router = Router()

# Enough ids in a 409 for an operator to act on, without listing a long history.
MAX_BLOCKING_CAMPAIGNS_SHOWN = 10


class PreviewEvent(BaseModel):
    """A triggering event to preview with, in the shape a send gives templates:
    `{{ event.properties.order_id }}`, `{{ event.type }}`."""

    model_config = {"extra": "forbid"}

    event_id: str | None = None
    type: str | None = None
    occurred_at: datetime | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class RenderRequest(BaseModel):
    """Who to preview for: given attributes, or a stored user by phone."""

    model_config = {"extra": "forbid"}

    attributes: dict[str, Any] | None = None
    phone: str | None = Field(None, min_length=1, max_length=64)
    # The triggering event of a triggered campaign; templates read it as `event`.
    event: PreviewEvent | None = None

    @model_validator(mode="after")
    def _one_recipient(self) -> RenderRequest:
        if (self.attributes is None) == (self.phone is None):
            raise ValueError("give exactly one of attributes or phone")
        return self


class TemplateDraft(TemplateFields):
    """A template as it is being written, before it is saved."""

    name: str = Field("draft", min_length=1, max_length=200)


class DraftRenderRequest(RenderRequest):
    """An unsaved template and who to preview it for (the editor's live view)."""

    template: TemplateDraft


class TemplateView(Template):
    encoding: str = Field(examples=["GSM-7"])
    segments: int


class RenderView(BaseModel):
    body: str
    encoding: str
    segments: int
    characters: int
    missing_variables: list[str]
    # Only WhatsApp templates have them; an SMS preview leaves the key out.
    content_variables: dict[str, str] | None = Field(
        None, exclude_if=lambda value: value is None
    )


def template_view(template: Template) -> TemplateView:
    info = count_segments(template.body)
    # The template is validated already: its fields are taken as they are,
    # not dumped and validated a second time (a list page has fifty).
    return TemplateView.model_construct(
        **dict(template),
        encoding=info.encoding.value,
        segments=info.segments,
    )


def _syntax_error(field: str, exc: TemplateSyntaxError) -> ApiError:
    return ApiError(
        422,
        "template_syntax",
        f"{field} does not parse: line {exc.line}: {exc.reason}",
        [{"field": field, "line": exc.line, "error": exc.reason}],
    )


def _variables_of(field: str, source: str) -> list[str]:
    try:
        return template_variables(source)
    except TemplateSyntaxError as exc:
        raise _syntax_error(field, exc) from exc


def check_syntax(fields: TemplateFields) -> list[str]:
    """Every variable the body and content variables read; 422 if one won't parse."""
    variables = set(_variables_of("body", fields.body))
    for placeholder, expression in (fields.content_variables or {}).items():
        field = f"content_variables.{placeholder}"
        variables.update(_variables_of(field, expression))
    return sorted(variables)


def _template_id(request: ApiRequest) -> str:
    template_id = request.path_params["template_id"]
    if not is_template_id(template_id):
        raise not_found("template")
    return template_id


def load_template(context: ApiContext, template_id: str) -> Template:
    template = get_template(context.db, template_id)
    if template is None:
        raise not_found("template")
    return template


@router.route(
    "POST",
    "/v1/templates",
    Contract(
        summary="Create a template",
        tag=Tag.TEMPLATES,
        request=TemplateFields,
        response=TemplateView,
        status=201,
    ),
)
def post_template(request: ApiRequest, context: ApiContext) -> TemplateView:
    fields = parse_body(request, TemplateFields)
    template = create_template(
        context.db, fields, check_syntax(fields), context.clock()
    )
    return template_view(template)


@router.route(
    "GET",
    "/v1/templates",
    Contract(
        summary="List templates",
        tag=Tag.TEMPLATES,
        response=Page[TemplateView],
        query=PAGING,
        errors=(400,),
    ),
)
def list_templates(request: ApiRequest, context: ApiContext) -> Page[TemplateView]:
    return paged(request, every_template(context.db), template_view)


@router.route(
    "GET",
    "/v1/templates/{template_id}",
    Contract(
        summary="Read a template",
        tag=Tag.TEMPLATES,
        response=TemplateView,
        errors=(404,),
    ),
)
def read_template(request: ApiRequest, context: ApiContext) -> TemplateView:
    return template_view(load_template(context, request.path_params["template_id"]))


@router.route(
    "PUT",
    "/v1/templates/{template_id}",
    Contract(
        summary="Replace a template",
        tag=Tag.TEMPLATES,
        request=TemplateFields,
        response=TemplateView,
        errors=(404,),
    ),
)
def put_template(request: ApiRequest, context: ApiContext) -> TemplateView:
    template_id = _template_id(request)
    fields = parse_body(request, TemplateFields)
    variables = check_syntax(fields)
    template = replace_template(
        context.db, template_id, fields, variables, context.clock()
    )
    if template is None:
        raise not_found("template")
    return template_view(template)


def delete_unused_template(context: ApiContext, template_id: str) -> list[str]:
    """Delete the template unless campaigns use it; returns those campaigns.

    The campaign query and the delete share a transaction, so no campaign joins
    the query's result between the check and the delete. Campaign creation reads
    the template outside any transaction, so a campaign racing a delete may still
    name a deleted template; fan-out stops it with `template_not_found`.
    Raises 404 when there is no template.
    """
    db = context.db
    blocking = delete_template_unless_used(
        db,
        template_id,
        lambda transaction: sorted(
            campaign_id
            for campaign_id, _ in unfinished_campaigns_using(
                db, transaction, "template_id", template_id
            )
        ),
    )
    if blocking is None:
        raise not_found("template")
    return blocking


@router.route(
    "DELETE",
    "/v1/templates/{template_id}",
    Contract(
        summary="Delete a template (409 while unfinished campaigns use it)",
        tag=Tag.TEMPLATES,
        status=204,
        errors=(404, 409),
    ),
)
def delete_template(request: ApiRequest, context: ApiContext) -> ApiResponse:
    blocking = delete_unused_template(context, _template_id(request))
    if blocking:
        raise ApiError(
            409,
            "template_in_use",
            f"{len(blocking)} campaign(s) not yet finished use this template",
            [
                {"campaign_id": campaign_id}
                for campaign_id in blocking[:MAX_BLOCKING_CAMPAIGNS_SHOWN]
            ],
        )
    return ApiResponse(204)


def _preview_phone(attributes: dict[str, Any]) -> str:
    # Without a stored user, `{{ phone }}` comes from the attributes if given;
    # otherwise the preview reports it missing (a real send always has a phone).
    phone = attributes.get("phone")
    return phone if isinstance(phone, str) else ""


def _recipient(
    request: ApiRequest, context: ApiContext, preview: RenderRequest
) -> tuple[dict[str, Any], str]:
    """The attributes and phone to render with; 404 for a phone with no user."""
    if preview.attributes is not None:
        return preview.attributes, _preview_phone(preview.attributes)
    user = get_user(context.db, phone_param(request, context, preview.phone))
    if user is None:
        raise not_found("user")
    return user.attributes, user.phone


def render_preview(
    template: Template,
    attributes: dict[str, Any],
    phone: str,
    event: PreviewEvent | None,
) -> RenderView:
    # The scope and the render are fan-out's and the router's own.
    rendered = render_content(template, template_scope(attributes, phone, event))
    info = count_segments(rendered.body)
    whatsapp = template.channel == TemplateChannel.WHATSAPP
    return RenderView(
        body=rendered.body,
        encoding=info.encoding.value,
        segments=info.segments,
        characters=info.characters,
        missing_variables=rendered.missing_variables,
        content_variables=(rendered.content_variables or {}) if whatsapp else None,
    )


def _rendered(
    request: ApiRequest,
    context: ApiContext,
    template: Template,
    preview: RenderRequest,
) -> RenderView:
    attributes, phone = _recipient(request, context, preview)
    try:
        body = render_preview(template, attributes, phone, preview.event)
    except (TemplateSyntaxError, TemplateRenderError) as exc:
        raise ApiError(
            422, "template_render", f"template does not render: {exc}"
        ) from exc
    return body


@router.route(
    "POST",
    "/v1/templates/{template_id}/render",
    Contract(
        summary="Render for given attributes or a stored user",
        tag=Tag.TEMPLATES,
        request=RenderRequest,
        response=RenderView,
        errors=(404,),
    ),
)
def render_template(request: ApiRequest, context: ApiContext) -> RenderView:
    template = load_template(context, request.path_params["template_id"])
    return _rendered(request, context, template, parse_body(request, RenderRequest))


@router.route(
    "POST",
    "/v1/templates/render",
    Contract(
        summary="Render an unsaved template for given attributes or a stored user",
        tag=Tag.TEMPLATES,
        request=DraftRenderRequest,
        response=RenderView,
        errors=(404,),
    ),
)
def render_draft(request: ApiRequest, context: ApiContext) -> RenderView:
    """Render a template that is not saved yet, as the editor shows it."""
    preview = parse_body(request, DraftRenderRequest)
    check_syntax(preview.template)
    template = Template(**preview.template.model_dump(), id="draft")
    return _rendered(request, context, template, preview)
