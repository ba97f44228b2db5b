"""The OpenAPI the gateway publishes is what io and compute enforce: the same schemas, route by route.

Each app is built in-process (building one does no I/O) and its published document compared with
the document of the service the gateway relays to: for every relaying route, the request body and
the success response resolve to the same schema, and each shared component schema is identical.
"""

from __future__ import annotations

from typing import Any

import pytest

from panorama.compute.app import create_app as create_compute
from panorama.compute.settings import ComputeSettings
from panorama.gateway.app import create_app as create_gateway
from panorama.gateway.settings import GatewaySettings
from panorama.io.app import create_app as create_io
from panorama.io.settings import IoSettings

# gateway (method, path) -> (downstream, its path): every route the gateway relays.
RELAYED = {
    ("post", "/users"): ("io", "/users"),
    ("get", "/users"): ("io", "/users"),
    ("get", "/users/{user_id}"): ("io", "/users/{user_id}"),
    ("patch", "/users/{user_id}"): ("io", "/users/{user_id}"),
    ("get", "/cached/{key}"): ("io", "/cached/{key}"),
    ("put", "/cached/{key}"): ("io", "/cached/{key}"),
    ("get", "/demo/async"): ("io", "/demo/async"),
    ("get", "/demo/sync"): ("io", "/demo/sync"),
    ("get", "/demo/blocking"): ("io", "/demo/blocking"),
    ("get", "/proxy"): ("io", "/proxy"),
    ("post", "/compute"): ("compute", "/compute"),
    ("post", "/ml-inference"): ("compute", "/ml-inference"),
}


@pytest.fixture(scope="module")
def documents() -> dict[str, dict[str, Any]]:
    gateway = create_gateway(GatewaySettings(api_keys="contract-test-key-0123456789", log_json=False, cpu_limit=1.0))
    io = create_io(IoSettings(log_json=False, cpu_limit=1.0, demo_antipatterns=True))
    compute = create_compute(ComputeSettings(log_json=False, cpu_limit=1.0))
    return {"gateway": gateway.openapi(), "io": io.openapi(), "compute": compute.openapi()}


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """A schema with every ``$ref`` replaced by the component it names, recursively."""

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(doc["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]])
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


def body_schema(doc: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any] | None:
    body = operation.get("requestBody")
    return resolve(doc, body["content"]["application/json"]["schema"]) if body else None


def success_schema(doc: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any]:
    status = next(code for code in operation["responses"] if code.startswith("2"))
    return resolve(doc, operation["responses"][status]["content"]["application/json"]["schema"])


@pytest.mark.parametrize(("route", "target"), RELAYED.items(), ids=lambda v: " ".join(v) if len(v) == 2 else None)
def test_the_gateway_publishes_the_schemas_its_downstream_enforces(
    documents: dict[str, dict[str, Any]], route: tuple[str, str], target: tuple[str, str]
) -> None:
    method, path = route
    service, downstream_path = target
    gateway, downstream = documents["gateway"], documents[service]
    ours = gateway["paths"][path][method]
    theirs = downstream["paths"][downstream_path][method]
    assert body_schema(gateway, ours) == body_schema(downstream, theirs)
    assert success_schema(gateway, ours) == success_schema(downstream, theirs)
    assert next(c for c in ours["responses"] if c.startswith("2")) == next(
        c for c in theirs["responses"] if c.startswith("2")
    )


def test_shared_component_schemas_are_identical(documents: dict[str, dict[str, Any]]) -> None:
    gateway = documents["gateway"]["components"]["schemas"]
    shared = 0
    for service in ("io", "compute"):
        theirs = documents[service]["components"]["schemas"]
        for name in sorted(set(gateway) & set(theirs) - {"HTTPValidationError", "ValidationError"}):
            assert resolve(documents["gateway"], gateway[name]) == resolve(documents[service], theirs[name]), name
            shared += 1
    # Users (4), cached (2), demo, proxy; compute (4): the contract's every model is published by both.
    assert shared >= 12


def test_every_relaying_route_is_compared(documents: dict[str, dict[str, Any]]) -> None:
    """A new relaying route must be added to RELAYED: gateway routes are either relayed or its own."""
    own = {("get", "/safe"), ("post", "/upload-video"), ("get", "/task/{task_id}"), ("get", "/videos/{video_id}")}
    published = {
        (method, path)
        for path, item in documents["gateway"]["paths"].items()
        for method in item
        if not path.startswith(("/healthz", "/readyz", "/livez", "/metrics", "/debug"))
    }
    assert published - own == set(RELAYED)
