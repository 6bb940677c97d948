"""api: HTTP (authenticated). The REST API v1 of DESIGN §10."""

import json

import flask
import functions_framework

from shared.api.app import handle_request
from shared.api.http import ApiRequest
from shared.api.imports import STREAMED_ROUTES, upload_fully_read
from shared.platform.runtime import api_context, start_function

start_function()


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    # An upload is read as a stream by its handler, after the checks that
    # refuse it (credentials, Content-Length), never whole up front.
    streamed = (request.method, request.path) in STREAMED_ROUTES
    response = handle_request(
        ApiRequest(
            method=request.method,
            path=request.path,
            query=request.args.to_dict(),
            headers=dict(request.headers),
            body=b"" if streamed else request.get_data(),
            stream=request.stream if streamed else None,
        ),
        api_context(),
    )
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
