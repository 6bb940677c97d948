"""A route answers as its contract says: the model, its status, its public flag."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, Field

from shared.api.http import ApiRequest, ApiResponse, Contract, Router, Tag
from shared.api.openapi import openapi_document
from shared.api.paging import Page


class Thing(BaseModel):
    name: str
    kind: str | None = Field(None, alias="type")


class Other(BaseModel):
    size: int


def router_with(answer: Any, response: Any, status: int = 200) -> Router:
    router = Router()

    @router.route(
        "POST", "/things/{thing_id}", Contract("Make", Tag.USERS, response, status)
    )
    def make(request: ApiRequest, context: Any) -> Any:
        """Make a thing."""
        return answer

    return router


def post(router: Router) -> ApiResponse:
    return router.dispatch(ApiRequest("POST", "/things/t1"), context=None)


def test_a_model_answer_is_sent_as_json_with_the_declared_status() -> None:
    response = post(router_with(Thing(name="a", type="b"), Thing, status=201))
    assert response.status == 201
    assert response.body == {"name": "a", "type": "b"}


def test_a_page_of_models_is_sent_with_each_item_as_its_model() -> None:
    page = Page[Any](items=[Thing(name="a", type="b")], next_page_token=None)
    response = post(router_with(page, Page[Thing]))
    assert response.body == {
        "items": [{"name": "a", "type": "b"}],
        "next_page_token": None,
    }


def test_a_model_the_contract_does_not_declare_is_refused() -> None:
    with pytest.raises(TypeError, match="POST /things/{thing_id}"):
        post(router_with(Other(size=1), Thing))


def test_a_page_of_models_the_contract_does_not_declare_is_refused() -> None:
    page = Page[Any](items=[Thing(name="a"), Other(size=1)], next_page_token=None)
    with pytest.raises(TypeError, match=r"Page\[Thing\]"):
        post(router_with(page, Page[Thing]))


def test_an_api_response_passes_as_it_is() -> None:
    response = post(router_with(ApiResponse(204), None, status=204))
    assert response == ApiResponse(204)


def test_the_public_paths_and_the_document_come_from_the_contracts() -> None:
    router = router_with(Thing(name="a"), Thing)

    @router.route("GET", "/ping", Contract("Ping", Tag.HEALTH, Other, public=True))
    def ping(request: ApiRequest, context: Any) -> Other:
        return Other(size=0)

    assert router.public_paths() == {"/ping"}
    paths = openapi_document(router)["paths"]
    assert paths["/ping"]["get"]["security"] == []
    assert "security" not in paths["/things/{thing_id}"]["post"]
    assert paths["/things/{thing_id}"]["post"]["summary"] == "Make"
    ok = paths["/ping"]["get"]["responses"]["200"]["content"]["application/json"]
    assert ok["schema"] == {"$ref": "#/components/schemas/Other"}
