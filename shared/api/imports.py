"""Imports API: upload a contact file (validated here, upserted asynchronously
by `contact_importer`), read its report."""

from __future__ import annotations

import io
from typing import IO, Any

from shared.api.context import ApiContext
from shared.api.http import (
    ApiError,
    ApiRequest,
    ApiResponse,
    Contract,
    Router,
    Tag,
    not_found,
)
from shared.api.multipart import unwrap_upload
from shared.audience.import_files import (
    ImportFileError,
    NestedTooDeep,
    UnsupportedFormat,
)
from shared.audience.imports import (
    ImportNotQueued,
    queue_import,
    validate_upload,
)
from shared.store.imports import ImportReport, get_import

router = Router()
# Routes whose body the handler reads as a stream (functions/api/main.py).
STREAMED_ROUTES = frozenset({("POST", "/v1/imports")})
READ_SIZE = 1 << 16
# The upload is read by the handler, so its body is described per format.
IMPORT_CONTENT = {
    "text/csv": {"schema": {"type": "string"}},
    "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
    "application/x-ndjson": {"schema": {"type": "string"}},
    "multipart/form-data": {
        "schema": {
            "type": "object",
            "properties": {"file": {"type": "string", "format": "binary"}},
            "required": ["file"],
        }
    },
}


class UploadTooLarge(Exception):  # noqa: N818 - reads as the HTTP condition
    """More bytes arrived than an upload may hold."""


class BoundedUpload(io.RawIOBase):
    """The request body, refused past `limit` bytes as they are read: a body
    without a Content-Length is bounded too, and never read whole first."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self.size = 0
        self.blank = True

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(min(len(buffer), self._limit + 1 - self.size))
        self.size += len(data)
        if self.size > self._limit:
            raise UploadTooLarge
        self.blank = self.blank and not data.strip()
        buffer[: len(data)] = data
        return len(data)


# What a handler left of an upload (trailing bytes after a JSON array, a body
# refused partway) is read and dropped up to this, so that the connection can
# serve another request; past it, or for a body declared over the limit, the
# server answers and closes instead of reading it.
DRAIN_BYTES = 1 << 20


def upload_fully_read(stream: IO[bytes], declared: int | None, limit: int) -> bool:
    """Whether the rest of an upload was read (and dropped) after its answer."""
    if declared is not None and declared > limit:
        return False
    left = DRAIN_BYTES
    while left > 0:
        data = stream.read(min(READ_SIZE, left))
        if not data:
            return True
        left -= len(data)
    return not stream.read(1)


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"an import may be at most {limit} bytes")


def _declared_length(request: ApiRequest) -> int:
    if request.stream is None:
        return len(request.body)
    raw = (request.header("Content-Length") or "").strip()
    if not raw:
        return 0
    if not raw.isdigit():
        raise ApiError(400, "invalid_header", "Content-Length is not a number")
    return int(raw)


def _upload(request: ApiRequest, limit: int) -> BoundedUpload:
    # Refused from the header, before a byte of the body is read.
    if _declared_length(request) > limit:
        raise _too_large(limit)
    stream = request.stream if request.stream is not None else io.BytesIO(request.body)
    return BoundedUpload(stream, limit)


def _empty() -> ApiError:
    return ApiError(400, "empty_body", "the import file is empty")


@router.route(
    "POST",
    "/v1/imports",
    Contract(
        summary=(
            "Import contacts (CSV, JSON array, NDJSON or multipart file, at most "
            "32 MiB): rows validated now, upserted asynchronously; poll the report"
        ),
        tag=Tag.IMPORTS,
        request_content=IMPORT_CONTENT,
        response=ImportReport,
        status=202,
        errors=(400, 413, 415, 422, 503),
    ),
)
def post_import(request: ApiRequest, context: ApiContext) -> ApiResponse:
    """CSV, JSON array, NDJSON or multipart `file`; 202 with the import report."""
    limit = context.api.max_upload_bytes
    upload = _upload(request, limit)
    try:
        source, content_type, filename = unwrap_upload(
            io.BufferedReader(upload, READ_SIZE), request.header("Content-Type") or ""
        )
        report, rows = validate_upload(
            source,
            content_type,
            default_region=context.core.default_region,
            now=context.clock(),
            filename=filename,
        )
    except UploadTooLarge as exc:
        raise _too_large(limit) from exc
    except UnsupportedFormat as exc:
        raise ApiError(415, "unsupported_media_type", str(exc)) from exc
    except NestedTooDeep as exc:
        raise ApiError(400, "nested_too_deep", str(exc)) from exc
    except ImportFileError as exc:
        if upload.blank:
            raise _empty() from exc
        raise ApiError(422, "invalid_file", str(exc)) from exc
    if upload.blank:
        raise _empty()
    try:
        queue_import(context.db, context.publisher, report, rows)
    except ImportNotQueued as exc:
        raise ApiError(
            503, "unavailable", str(exc), headers={"Retry-After": "5"}
        ) from exc
    return ApiResponse(
        202,
        report.model_dump(mode="json"),
        headers={"Location": f"/v1/imports/{report.id}"},
    )


@router.route(
    "GET",
    "/v1/imports/{import_id}",
    Contract(
        summary=(
            "Read an import report: RUNNING with chunks_done/chunks_planned, then "
            "COMPLETED (or FAILED)"
        ),
        tag=Tag.IMPORTS,
        response=ImportReport,
        errors=(404,),
    ),
)
def read_import(request: ApiRequest, context: ApiContext) -> ImportReport:
    report = get_import(context.db, request.path_params["import_id"])
    if report is None:
        raise not_found("import")
    return report
