"""api: HTTP (authenticated). The REST API v1 of docs/architecture.md §10, and
the operator console (§15): static files beside this entry point, served
publicly; every call they make to the API carries the operator's key."""

import json
from pathlib import Path

import flask
import functions_framework

from shared.api.app import handle_request
from shared.api.http import ApiRequest
from shared.api.imports import STREAMED_ROUTES, upload_fully_read
from shared.api.static_site import StaticSite
from shared.wiring import api_context, start_function

start_function()
# Found from this file, so the console ships in the deploy archive with the
# entry point whatever way `shared` is made importable.
CONSOLE = StaticSite.from_directory(Path(__file__).parent / "console", "/console")


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    # An upload is read as a stream by its handler, after the checks that
    # refuse it (credentials, Content-Length), never whole up front.
    streamed = (request.method, request.path) in STREAMED_ROUTES
    api_request = ApiRequest(
        method=request.method,
        path=request.path,
        query=request.args.to_dict(),
        headers=dict(request.headers),
        body=b"" if streamed else request.get_data(),
        stream=request.stream if streamed else None,
    )
    response = CONSOLE.serve(api_request) or handle_request(api_request, api_context())
    if streamed and not upload_fully_read(
        request.stream, request.content_length, api_context().api.max_upload_bytes
    ):
        # A streamed answer, so that functions-framework does not read the
        # rest of the body into memory first; the connection then closes.
        chunks = iter([json.dumps(response.body, default=str)])
        headers = {**response.headers, "Connection": "close"}
        return flask.Response(
            chunks, response.status, headers, content_type="application/json"
        )
    if response.body is None:
        return flask.Response(status=response.status, headers=response.headers)
    if isinstance(response.body, str | bytes):
        return flask.Response(response.body, response.status, response.headers)
    return flask.Response(
        json.dumps(response.body, default=str),
        response.status,
        response.headers,
        content_type="application/json",
    )
