from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from panorama.core.errors import Problem
from panorama.core.service import create_service_app
from panorama.core.settings import PanoramaSettings


class Item(BaseModel):
    n: int = Field(ge=0)
    name: str


def build() -> FastAPI:
    app = create_service_app(service="t", settings=PanoramaSettings())

    @app.post("/items")
    async def create(item: Item) -> Item:
        return item

    @app.get("/busy")
    async def busy() -> None:
        raise Problem(503, "pool exhausted", headers={"Retry-After": "1"})

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    return app


def test_validation_errors_are_422_problems_naming_each_field() -> None:
    client = TestClient(build())
    response = client.post("/items", json={"n": -1})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"body.n", "body.name"}


def test_problem_keeps_status_and_headers() -> None:
    response = TestClient(build()).get("/busy")
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["detail"] == "pool exhausted"


def test_unknown_route_is_a_404_problem() -> None:
    response = TestClient(build()).get("/nowhere")
    assert response.status_code == 404
    assert response.json()["status"] == 404


def test_unhandled_error_is_a_500_problem_not_a_bare_500() -> None:
    response = TestClient(build(), raise_server_exceptions=False).get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "a bug" not in response.text
