"""NetworkPolicies deny by default and allow exactly the edges the suite uses, egress included."""

from __future__ import annotations

from typing import Any

import pytest

from infra.deploy import chart

COMPONENTS = ("gateway", "io", "compute", "video-worker", "postgresql", "redis", "jaeger", "migrate", "test")


@pytest.fixture(scope="module", params=chart.ci_values_files(), ids=lambda p: p.stem)
def rendered(request: pytest.FixtureRequest) -> chart.Rendered:
    return chart.render(chart.load_values([request.param]))


def component_of(peer: dict[str, Any]) -> str | None:
    return peer.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component")


def edges(rendered: chart.Rendered) -> set[tuple[str, str, int]]:
    """(from, to, port) for every allowed pod-to-pod edge, as both ends' policies see it."""
    out = set()
    policies = {
        p["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/component"): p
        for p in rendered.of_kind("NetworkPolicy")
    }
    for source, policy in policies.items():
        for rule in policy["spec"].get("egress", []):
            for peer in rule.get("to", []):
                target = component_of(peer)
                if target and "namespaceSelector" not in peer:
                    for port in rule["ports"]:
                        out.add((source, target, port["port"]))
    # An edge counts only if the receiving side's ingress allows it too.
    allowed = set()
    for source, target, port in out:
        receiver = policies.get(target)
        if receiver is None:
            continue
        for rule in receiver["spec"].get("ingress", []):
            # A rule without `from` admits every source.
            sources = {component_of(p) for p in rule["from"]} if "from" in rule else {source}
            if source in sources and port in {p["port"] for p in rule["ports"]}:
                allowed.add((source, target, port))
    return allowed


def test_default_deny_selects_every_pod_of_the_release_both_ways(rendered: chart.Rendered) -> None:
    deny = rendered.get("NetworkPolicy", "panorama-default-deny")
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in deny["spec"]
    assert "egress" not in deny["spec"]
    assert deny["spec"]["podSelector"]["matchLabels"] == {
        "app.kubernetes.io/name": "panorama",
        "app.kubernetes.io/instance": "panorama",
    }
    for policy in rendered.of_kind("NetworkPolicy"):
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"], policy["metadata"]["name"]


def test_pod_to_pod_edges_are_exactly_the_architecture(rendered: chart.Rendered) -> None:
    internal_db = rendered.values.get("postgresql", {}).get("enabled", True)
    internal_redis = rendered.values.get("redis", {}).get("enabled", True)
    jaeger = rendered.values.get("jaeger", {}).get("enabled", False)
    expected = {
        ("gateway", "io", 8001), ("gateway", "compute", 8002), ("video-worker", "io", 8001),
        ("test", "gateway", 8000),
    }  # fmt: skip
    if internal_db:
        expected |= {("io", "postgresql", 5432), ("migrate", "postgresql", 5432)}
    if internal_redis:
        expected |= {("gateway", "redis", 6379), ("io", "redis", 6379), ("video-worker", "redis", 6379)}
    if jaeger:
        expected |= {(c, "jaeger", 4318) for c in ("gateway", "io", "compute", "video-worker")}
    assert edges(rendered) == expected


def test_every_pod_may_resolve_names_through_cluster_dns_only(rendered: chart.Rendered) -> None:
    for policy in rendered.of_kind("NetworkPolicy"):
        component = policy["spec"]["podSelector"]["matchLabels"].get("app.kubernetes.io/component")
        if component in ("postgresql", "redis", "jaeger") or component is None:
            continue
        dns = [r for r in policy["spec"]["egress"] if any("namespaceSelector" in p for p in r.get("to", []))]
        assert len(dns) == 1, component
        assert {(p["protocol"], p["port"]) for p in dns[0]["ports"]} == {("UDP", 53), ("TCP", 53)}
        assert dns[0]["to"][0]["podSelector"]["matchLabels"] == {"k8s-app": "kube-dns"}


def test_data_stores_accept_only_their_clients_and_send_nothing(rendered: chart.Rendered) -> None:
    for name in ("panorama-postgresql", "panorama-redis", "panorama-jaeger"):
        if f"NetworkPolicy/{name}" in rendered.names():
            assert rendered.get("NetworkPolicy", name)["spec"]["egress"] == []


def test_external_dependencies_are_reached_only_on_their_ports_and_cidrs(rendered: chart.Rendered) -> None:
    values = rendered.values
    io = rendered.get("NetworkPolicy", "panorama-io")["spec"]["egress"]
    blocks = [
        (tuple(p["ipBlock"]["cidr"] for p in r.get("to", []) if "ipBlock" in p), tuple(x["port"] for x in r["ports"]))
        for r in io
    ]
    if not values.get("postgresql", {}).get("enabled", True):
        assert (tuple(values["externalDatabase"]["cidrs"]), (values["externalDatabase"]["port"],)) in blocks
    if not values.get("redis", {}).get("enabled", True):
        assert (tuple(values["externalRedis"]["cidrs"]), (values["externalRedis"]["port"],)) in blocks
    proxy = values.get("networkPolicy", {}).get("proxyEgress", [])
    assert ((tuple(proxy), (80, 443)) in blocks) == bool(proxy)
    # compute needs no data store and no outside world.
    compute = rendered.get("NetworkPolicy", "panorama-compute")["spec"]["egress"]
    assert not any("ipBlock" in p for r in compute for p in r.get("to", []))


def test_gateway_ingress_is_limited_to_the_configured_sources(rendered: chart.Rendered) -> None:
    rules = rendered.get("NetworkPolicy", "panorama-gateway")["spec"]["ingress"]
    assert [p["port"] for p in rules[0]["ports"]] == [8000]
    configured = rendered.values.get("networkPolicy", {}).get("gatewayFrom", [])
    if configured:
        assert rules[0]["from"][: len(configured)] == configured
    else:
        assert "from" not in rules[0]
