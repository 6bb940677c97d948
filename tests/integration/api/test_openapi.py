"""The OpenAPI document covers exactly the routes the API serves."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from shared.api.app import api_router
from shared.api.http import Tag
from shared.api.openapi import openapi_document

pytestmark = pytest.mark.integration

METHODS = {"get", "post", "put", "patch", "delete"}


def served() -> set[tuple[str, str]]:
    return {(route.method, route.pattern) for route in api_router().routes}


def documented(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


def refs_in(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "$ref":
                yield item
            else:
                yield from refs_in(item)
    elif isinstance(value, list):
        for item in value:
            yield from refs_in(item)


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return openapi_document(api_router())


def test_every_served_route_is_documented_and_nothing_else(
    document: dict[str, Any],
) -> None:
    assert documented(document) == served()


def test_every_route_declares_its_contract_and_the_document_follows_it(
    document: dict[str, Any],
) -> None:
    for route in api_router().routes:
        contract, where = route.contract, f"{route.method} {route.pattern}"
        assert contract.summary.strip() and contract.tag in set(Tag), where
        assert (contract.response is None) == (contract.status == 204), where
        operation = document["paths"][route.pattern][route.method.lower()]
        assert operation["summary"] == contract.summary, where
        assert operation["tags"] == [contract.tag.value], where
        success = operation["responses"][str(contract.status)]
        if isinstance(contract.response, type):
            ref = success["content"]["application/json"]["schema"]["$ref"]
            model = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
            assert model["title"] == contract.response.__name__, where
        errors = {int(status) for status in operation["responses"]} - {200, 201, 202}
        assert set(contract.errors) <= errors, where
        assert ("security" in operation) == contract.public, where


def test_only_routes_declared_public_are_served_without_a_key(api: Any) -> None:
    public = {r.pattern for r in api_router().routes if r.contract.public}
    assert public == {"/healthz"}
    assert api("GET", "/healthz", key=None).status == 200
    assert api("GET", "/v1/dashboard", key=None).status == 401


def test_path_parameters_match_the_templates(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        names = set(re.findall(r"\{(\w+)\}", path))
        for operation in item.values():
            declared = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert declared == names, path


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    prefix = "#/components/schemas/"
    for ref in refs_in(document):
        assert ref.startswith(prefix) and ref[len(prefix) :] in schemas, ref


def test_errors_use_the_error_envelope(document: dict[str, Any]) -> None:
    envelope = {"$ref": "#/components/schemas/ErrorEnvelope"}
    statuses: set[str] = set()
    for item in document["paths"].values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                if status.startswith("4"):
                    statuses.add(status)
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == envelope
    assert {"400", "401", "404", "409", "413", "422"} <= statuses
    error = document["components"]["schemas"]["ErrorBody"]
    assert set(error["properties"]) == {"code", "message", "details"}


def test_bodies_and_responses_come_from_the_models(document: dict[str, Any]) -> None:
    paths = document["paths"]

    def body_schema(path: str, method: str) -> Any:
        content = paths[path][method]["requestBody"]["content"]
        return content["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]

    assert body_schema("/v1/users", "post") == "UserCreate"
    assert body_schema("/v1/templates", "post") == "TemplateFields"
    assert body_schema("/v1/campaigns", "post") == "CampaignSettings"
    schemas = document["components"]["schemas"]
    assert "phone" in schemas["UserCreate"]["properties"]
    summary = paths["/v1/campaigns/{campaign_id}/summary"]["get"]["responses"]["200"]
    ref = summary["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/CampaignSummary")
    assert "delivery_rate" in schemas["CampaignSummary"]["properties"]
    imports = paths["/v1/imports"]["post"]["requestBody"]["content"]
    assert {"text/csv", "application/x-ndjson", "multipart/form-data"} <= set(imports)
    message = schemas["MessageView"]
    assert "status" in message["properties"] and "status" in message["required"]


def test_auth_is_bearer_except_for_the_health_check(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    assert document["security"] == [{"bearerAuth": []}]
    assert document["paths"]["/healthz"]["get"]["security"] == []
    assert "401" not in document["paths"]["/healthz"]["get"]["responses"]
    assert "401" in document["paths"]["/v1/users"]["post"]["responses"]


def test_the_api_serves_the_document(api: Any) -> None:
    response = api("GET", "/v1/openapi.json")
    assert response.status == 200
    assert documented(response.body) == served()
    assert api("GET", "/v1/openapi.json", key=None).status == 401
