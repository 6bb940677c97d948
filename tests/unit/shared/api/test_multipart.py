"""The `file` part of a multipart import upload."""

from __future__ import annotations

import pytest

from shared.api.multipart import multipart_file, unwrap_upload
from shared.audience.import_files import ImportFileError, open_upload
from shared.store.imports import ImportFormat


def test_multipart_yields_the_file_part() -> None:
    body = (
        b"preamble\r\n--b1\r\n"
        b'Content-Disposition: form-data; name="other"\r\n\r\nx\r\n'
        b"--b1\r\n"
        b'Content-Disposition: form-data; name="file"; filename="c.json"\r\n\r\n'
        b'[{"phone": "1"}]\r\n--b1--\r\n'
    )
    payload, part_type, filename = multipart_file(
        body, 'multipart/form-data; boundary="b1"'
    )
    assert (payload, part_type, filename) == (b'[{"phone": "1"}]', "", "c.json")
    unwrapped = unwrap_upload(body, "multipart/form-data; boundary=b1")
    assert open_upload(*unwrapped)[0] == ImportFormat.JSON
    with pytest.raises(ImportFileError):
        multipart_file(body, "multipart/form-data")
    with pytest.raises(ImportFileError):
        multipart_file(
            body.replace(b'"file"', b'"upload"'), "multipart/form-data; boundary=b1"
        )
