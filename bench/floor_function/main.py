"""floor: HTTP. One Firestore write per request and nothing else.

The load benchmarks serve this beside the stack (same functions-framework
server, same THREADS, same emulator) as the floor the functions are read
against: whatever a function costs above it is the function's own work.
"""

import os
from functools import cache

import flask
import functions_framework
from google.cloud import firestore

COLLECTION = "floor_writes"


@cache
def client() -> firestore.Client:
    # Built on first use, after gunicorn forks: a gRPC channel does not survive fork.
    return firestore.Client(project=os.environ["GCP_PROJECT"])


@functions_framework.http
def floor(request: flask.Request) -> flask.Response:
    client().collection(COLLECTION).document().set(
        {"path": request.path, "bytes": len(request.get_data())}
    )
    return flask.Response(status=204)
