"""api: HTTP (authenticated). The REST API v1 of DESIGN §10, and the operator
console (DESIGN §15): static files beside this entry point, served publicly;
every call they make to the API carries the operator's key."""

import json
from pathlib import Path

import flask
import functions_framework

from shared.api.app import handle_request
from shared.api.http import ApiRequest
from shared.api.static_site import StaticSite
from shared.platform.runtime import api_context, start_function

start_function()
# Found from this file, so the console ships in the deploy archive with the
# entry point whatever way `shared` is made importable.
CONSOLE = StaticSite.from_directory(Path(__file__).parent / "console", "/console")


@functions_framework.http
def api(request: flask.Request) -> flask.Response:
    api_request = ApiRequest(
        method=request.method,
        path=request.path,
        query=request.args.to_dict(),
        headers=dict(request.headers),
        body=request.get_data(),
    )
    response = CONSOLE.serve(api_request) or handle_request(api_request, api_context())
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
