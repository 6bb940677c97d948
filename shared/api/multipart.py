"""multipart/form-data uploads: the `file` part of a body, for the import route."""

from __future__ import annotations

from email.message import Message
from email.parser import BytesHeaderParser
from typing import IO

from shared.audience.import_files import ImportFileError

MULTIPART = "multipart/form-data"


class MultipartError(ImportFileError):
    """A multipart body without a usable `file` part."""


def _header_params(content_type: str) -> Message:
    message = Message()
    message["content-type"] = content_type
    return message


def multipart_file(body: bytes, content_type: str) -> tuple[bytes, str, str]:
    """The `file` part of a multipart/form-data body: (bytes, type, filename)."""
    boundary = _header_params(content_type).get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise MultipartError("multipart body without a boundary parameter")
    delimiter = b"--" + boundary.encode("latin-1")
    position = body.find(delimiter)
    while position >= 0:
        start = position + len(delimiter)
        if body[start : start + 2] == b"--":
            break
        head_end = body.find(b"\r\n\r\n", start)
        end = body.find(b"\r\n" + delimiter, head_end)
        if head_end < 0 or end < 0:
            break
        headers = BytesHeaderParser().parsebytes(body[start:head_end].lstrip())
        if headers.get_param("name", header="content-disposition") == "file":
            filename = headers.get_filename() or ""
            part_type = headers.get("content-type", "")
            return body[head_end + 4 : end], part_type, filename
        position = end + 2
    raise MultipartError("multipart body has no 'file' part")


def unwrap_upload(
    source: bytes | IO[bytes], content_type: str
) -> tuple[bytes | IO[bytes], str, str]:
    """The bytes to import, their content type and file name.

    A multipart upload yields its `file` part, cut out of the body read whole
    (at most the upload limit); anything else is passed through unread.
    """
    media = _header_params(content_type).get_content_type() if content_type else ""
    if media != MULTIPART:
        return source, content_type, ""
    body = source if isinstance(source, bytes) else source.read()
    return multipart_file(body, content_type)
