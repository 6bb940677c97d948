"""Imports API: upload a contact file, read its report."""

from __future__ import annotations

from shared.api.context import ApiContext
from shared.api.http import ApiError, ApiRequest, ApiResponse, Router, not_found
from shared.audience.imports import (
    ImportFileError,
    UnsupportedFormat,
    get_import,
    run_import,
)

router = Router()


@router.add("POST", "/v1/imports")
def post_import(request: ApiRequest, context: ApiContext) -> ApiResponse:
    """CSV, JSON array, NDJSON or multipart `file`; 201 with the import report."""
    limit = context.api.max_upload_bytes
    if len(request.body) > limit:
        raise ApiError(
            413, "payload_too_large", f"an import may be at most {limit} bytes"
        )
    if not request.body or request.body.isspace():
        raise ApiError(400, "empty_body", "the import file is empty")
    try:
        report = run_import(
            context.db,
            request.body,
            request.header("Content-Type") or "",
            default_region=context.core.default_region,
            now=context.clock(),
        )
    except UnsupportedFormat as exc:
        raise ApiError(415, "unsupported_media_type", str(exc)) from exc
    except ImportFileError as exc:
        raise ApiError(422, "invalid_file", str(exc)) from exc
    return ApiResponse(201, report.model_dump(mode="json"))


@router.add("GET", "/v1/imports/{import_id}")
def read_import(request: ApiRequest, context: ApiContext) -> ApiResponse:
    report = get_import(context.db, request.path_params["import_id"])
    if report is None:
        raise not_found("import")
    return ApiResponse(200, report.model_dump(mode="json"))
