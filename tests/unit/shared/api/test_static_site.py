"""The console's static files: public, typed, strict CSP, nothing outside the folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.api.http import ApiRequest
from shared.api.static_site import CONTENT_SECURITY_POLICY, StaticSite

REPO = Path(__file__).resolve().parents[4]
CONSOLE = REPO / "functions" / "api" / "console"


@pytest.fixture
def site(tmp_path: Path) -> StaticSite:
    root = tmp_path / "site"
    (root / "views").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>x</title>")
    (root / "app.js").write_text("export {};")
    (root / "views" / "a.js").write_text("export const a = 1;")
    (root / "notes.md").write_text("not served")
    (tmp_path / "secret.html").write_text("outside")
    (root / "link.html").symlink_to(tmp_path / "secret.html")
    return StaticSite.from_directory(root, "/console")


def get(site: StaticSite, path: str, method: str = "GET", **headers: str) -> object:
    response = site.serve(ApiRequest(method, path, headers=headers))
    assert response is not None
    return response


def test_index_and_modules_with_their_types_and_a_strict_policy(
    site: StaticSite,
) -> None:
    index = site.serve(ApiRequest("GET", "/console/"))
    assert index is not None and index.status == 200
    assert index.headers["Content-Type"] == "text/html; charset=utf-8"
    assert index.body == b"<!doctype html><title>x</title>"
    policy = index.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert index.headers["X-Content-Type-Options"] == "nosniff"
    module = site.serve(ApiRequest("GET", "/console/views/a.js"))
    assert module is not None and module.status == 200
    assert module.headers["Content-Type"] == "text/javascript; charset=utf-8"


def test_bare_prefix_redirects_to_the_folder(site: StaticSite) -> None:
    response = site.serve(ApiRequest("GET", "/console"))
    assert response is not None
    assert (response.status, response.headers["Location"]) == (308, "/console/")


@pytest.mark.parametrize(
    "path",
    [
        "/console/../secret.html",
        "/console/%2e%2e/secret.html",
        "/console/..%2fsecret.html",
        "/console/views/../../secret.html",
        "/console//etc/passwd",
        "/console/link.html",
        "/console/notes.md",
        "/console/missing.js",
    ],
)
def test_nothing_outside_the_folder_or_unlisted_is_served(
    site: StaticSite, path: str
) -> None:
    response = site.serve(ApiRequest("GET", path))
    assert response is not None
    assert response.status == 404
    assert b"outside" not in str(response.body).encode()


def test_only_reads_are_allowed(site: StaticSite) -> None:
    response = site.serve(ApiRequest("POST", "/console/index.html"))
    assert response is not None
    assert response.status == 405
    assert response.headers["Allow"] == "GET, HEAD"


def test_revalidation_answers_304(site: StaticSite) -> None:
    first = site.serve(ApiRequest("GET", "/console/app.js"))
    assert first is not None
    again = site.serve(
        ApiRequest(
            "GET", "/console/app.js", headers={"If-None-Match": first.headers["ETag"]}
        )
    )
    assert again is not None and again.status == 304


def test_other_paths_are_left_to_the_api(site: StaticSite) -> None:
    assert site.serve(ApiRequest("GET", "/v1/campaigns")) is None
    assert site.serve(ApiRequest("GET", "/consoles")) is None


def test_the_real_console_ships_every_file_its_page_loads() -> None:
    site = StaticSite.from_directory(CONSOLE, "/console")
    index = site.files["index.html"].body.decode()
    for asset in ("style.css", "app.js", "vendor/chart.umd.min.js"):
        assert f'"{asset}"' in index
        assert asset in site.files
    app = site.files["app.js"].body.decode()
    for view in (
        "dashboard",
        "contacts",
        "segments",
        "templates",
        "campaigns",
        "activity",
    ):
        assert f"./views/{view}.js" in app
        assert f"views/{view}.js" in site.files
    assert CONTENT_SECURITY_POLICY.startswith("default-src 'none'")
