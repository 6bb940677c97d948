"""Static files under a URL prefix: the operator console the `api` function serves.

The files are read once, at start-up, into a table keyed by their path relative
to the folder. A request is answered only from that table, so no URL (`..`,
encoded slashes, symlinks added later) can reach a file outside the folder.
Serving is public: the pages hold no data, and every call they make to the
API carries the operator's key. The Content-Security-Policy allows scripts,
styles and requests from this origin only.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

from shared.api.http import ApiRequest, ApiResponse

CONTENT_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".txt": "text/plain; charset=utf-8",
}
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    # Revalidate each time: a deploy must reach operators at once (ETag → 304).
    "Cache-Control": "no-cache",
}
INDEX = "index.html"


@dataclass(frozen=True)
class StaticFile:
    body: bytes
    content_type: str
    etag: str


def _error(status: int, message: str, **headers: str) -> ApiResponse:
    return ApiResponse(
        status,
        f"{status} {message}\n",
        {"Content-Type": "text/plain; charset=utf-8", **SECURITY_HEADERS, **headers},
    )


class StaticSite:
    """The files of one folder, served under `prefix` (e.g. "/console")."""

    def __init__(self, prefix: str, files: dict[str, StaticFile]) -> None:
        self.prefix = prefix.rstrip("/")
        self.files = files

    @classmethod
    def from_directory(cls, root: Path, prefix: str) -> StaticSite:
        files: dict[str, StaticFile] = {}
        root = root.resolve()
        for path in sorted(root.rglob("*")):
            content_type = CONTENT_TYPES.get(path.suffix.lower())
            if not path.is_file() or content_type is None:
                continue
            if not path.resolve().is_relative_to(root):
                continue  # a symlink pointing out of the folder
            body = path.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            files[path.relative_to(root).as_posix()] = StaticFile(
                body, content_type, etag
            )
        return cls(prefix, files)

    def owns(self, path: str) -> bool:
        return path == self.prefix or path.startswith(self.prefix + "/")

    def serve(self, request: ApiRequest) -> ApiResponse | None:
        """The response for a path under the prefix; None for any other path."""
        if not self.owns(request.path):
            return None
        if request.method not in ("GET", "HEAD"):
            return _error(405, "Method Not Allowed", Allow="GET, HEAD")
        if request.path == self.prefix:
            return ApiResponse(
                308, None, {"Location": self.prefix + "/", **SECURITY_HEADERS}
            )
        relative = unquote(request.path[len(self.prefix) + 1 :]) or INDEX
        found = self.files.get(relative)
        if found is None:
            return _error(404, "Not Found")
        headers = {
            "Content-Type": found.content_type,
            "ETag": found.etag,
            **SECURITY_HEADERS,
        }
        if request.header("If-None-Match") == found.etag:
            return ApiResponse(304, None, headers)
        # For HEAD the WSGI layer sends the headers (and length) without the body.
        return ApiResponse(200, found.body, headers)
