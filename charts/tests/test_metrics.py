"""Metrics and shutdown settings added with observability and reliability reach every pod consistently."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest
import yaml

from infra.deploy import chart
from panorama.core.contract import PORTS

HTTP = PORTS  # the chart's "panorama.ports" must agree with the contract
COMPONENTS = [*HTTP, "video-worker"]
DEFAULTS = yaml.safe_load((chart.CHART_DIR / "values.yaml").read_text())


def effective(rendered: chart.Rendered) -> dict[str, Any]:
    """The values Helm used: the chart's defaults under what the test passed."""
    return chart.merge(DEFAULTS, rendered.values)


@pytest.fixture(scope="module", params=chart.ci_values_files(), ids=lambda p: p.stem)
def rendered(request: pytest.FixtureRequest) -> chart.Rendered:
    return chart.render(chart.load_values([request.param]))


def deployment(rendered: chart.Rendered, component: str) -> dict[str, Any]:
    return rendered.get("Deployment", f"panorama-{component}")


def container(rendered: chart.Rendered, component: str) -> dict[str, Any]:
    return deployment(rendered, component)["spec"]["template"]["spec"]["containers"][0]


def test_worker_serves_metrics_on_the_port_it_is_told_and_declares_it(rendered: chart.Rendered) -> None:
    env = chart.container_env(rendered, deployment(rendered, "video-worker"))
    port = effective(rendered)["videoWorker"]["metricsPort"]
    assert env["PANORAMA_WORKER_METRICS_PORT"] == str(port)
    assert container(rendered, "video-worker")["ports"] == [
        {"name": "metrics", "containerPort": port, "protocol": "TCP"}
    ]


@pytest.mark.parametrize("component", COMPONENTS)
def test_every_pod_announces_its_metrics_port_for_scraping(rendered: chart.Rendered, component: str) -> None:
    annotations = deployment(rendered, component)["spec"]["template"]["metadata"]["annotations"]
    values = effective(rendered)
    own = {"gateway": values["gateway"]["metricsPort"], "video-worker": values["videoWorker"]["metricsPort"]}
    port = own.get(component) or HTTP[component]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"
    declared = {p["containerPort"] for p in container(rendered, component)["ports"]}
    assert port in declared


def test_gateway_metrics_are_on_their_own_port_never_the_public_one(rendered: chart.Rendered) -> None:
    env = chart.container_env(rendered, deployment(rendered, "gateway"))
    port = effective(rendered)["gateway"]["metricsPort"]
    assert env["PANORAMA_METRICS_PORT"] == str(port)
    assert port != HTTP["gateway"]
    ports = {p["name"]: p["containerPort"] for p in container(rendered, "gateway")["ports"]}
    assert ports == {"http": HTTP["gateway"], "metrics": port}
    service_ports = [p["port"] for p in rendered.get("Service", "panorama-gateway")["spec"]["ports"]]
    assert service_ports == [HTTP["gateway"]], "the Service (and Ingress) must not expose /metrics"


def test_scrape_annotations_can_be_switched_off() -> None:
    rendered = chart.render(
        chart.merge(chart.load_values([chart.ci_values_files()[0]]), {"metrics": {"scrapeAnnotations": False}})
    )
    for component in COMPONENTS:
        annotations = deployment(rendered, component)["spec"]["template"]["metadata"]["annotations"]
        assert not [k for k in annotations if k.startswith("prometheus.io/")]


@pytest.mark.parametrize("component", COMPONENTS)
def test_multiprocess_metrics_live_on_an_emptydir_of_their_own(rendered: chart.Rendered, component: str) -> None:
    env = chart.container_env(rendered, deployment(rendered, component))
    directory = env["PROMETHEUS_MULTIPROC_DIR"]
    mounts = {m["mountPath"]: m["name"] for m in container(rendered, component)["volumeMounts"]}
    assert directory in mounts, "the read-only root file system has nowhere else to write"
    volumes = {v["name"]: v for v in deployment(rendered, component)["spec"]["template"]["spec"]["volumes"]}
    assert "emptyDir" in volumes[mounts[directory]]
    assert volumes[mounts[directory]]["emptyDir"]["sizeLimit"]


def worker_ingress(rendered: chart.Rendered) -> list[dict[str, Any]]:
    return rendered.get("NetworkPolicy", "panorama-video-worker")["spec"].get("ingress") or []


def test_worker_metrics_stay_behind_default_deny_unless_a_scraper_is_named(rendered: chart.Rendered) -> None:
    if not effective(rendered)["networkPolicy"]["enabled"]:
        pytest.skip("network policies off in this mode")
    assert worker_ingress(rendered) == []


def test_named_scraper_may_reach_only_each_components_metrics_port() -> None:
    scraper = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
               "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}  # fmt: skip
    values = chart.merge(chart.load_values([chart.ci_values_files()[0]]), {"metrics": {"allowFrom": [scraper]}})
    rendered = chart.render(values)
    if not effective(rendered)["networkPolicy"]["enabled"]:
        pytest.skip("network policies off in this mode")
    port = effective(rendered)["videoWorker"]["metricsPort"]
    assert worker_ingress(rendered) == [{"from": [scraper], "ports": [{"protocol": "TCP", "port": port}]}]
    gateway_ingress = rendered.get("NetworkPolicy", "panorama-gateway")["spec"]["ingress"]
    gateway_port = effective(rendered)["gateway"]["metricsPort"]
    assert {"from": [scraper], "ports": [{"protocol": "TCP", "port": gateway_port}]} in gateway_ingress
    # io and compute serve /metrics on their HTTP port: the scraper reaches that port and no other.
    for component, http_port in (("io", PORTS["io"]), ("compute", PORTS["compute"])):
        ingress = rendered.get("NetworkPolicy", f"panorama-{component}")["spec"]["ingress"]
        assert {"from": [scraper], "ports": [{"protocol": "TCP", "port": http_port}]} in ingress
    # Default deny still selects the worker: this edge is the only way in.
    deny = rendered.get("NetworkPolicy", "panorama-default-deny")["spec"]
    assert deny["podSelector"] == {} or deny["podSelector"]["matchLabels"]


@pytest.mark.parametrize("component", HTTP)
def test_drain_and_prestop_do_not_double_the_wait(rendered: chart.Rendered, component: str) -> None:
    spec = deployment(rendered, component)["spec"]["template"]["spec"]
    env = chart.container_env(rendered, deployment(rendered, component))
    sleep = int(spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][1])
    drain = int(env["PANORAMA_DRAIN_SECONDS"])
    # preStop already keeps serving while the endpoint is removed; by default nothing waits after it.
    assert drain == 0
    assert sleep + drain + int(env["PANORAMA_GRACEFUL_TIMEOUT"]) < spec["terminationGracePeriodSeconds"]


def test_a_drain_shortens_the_graceful_timeout_to_stay_within_the_grace_period() -> None:
    base = chart.ci_values_files()[0]
    rendered = chart.render(chart.merge(chart.load_values([base]), {"io": {"drainSeconds": 7}}))
    io = deployment(rendered, "io")
    env = chart.container_env(rendered, io)
    grace = io["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    sleep = effective(rendered)["io"]["preStopSleepSeconds"]
    assert env["PANORAMA_DRAIN_SECONDS"] == "7"
    assert int(env["PANORAMA_GRACEFUL_TIMEOUT"]) == grace - sleep - 7 - 2


def test_a_drain_that_leaves_no_time_to_finish_requests_fails_saying_why() -> None:
    values = chart.merge(
        chart.load_values([chart.ci_values_files()[0]]),
        {"io": {"terminationGracePeriodSeconds": 20, "drainSeconds": 15}},
    )
    with pytest.raises(
        helm.HelmError, match=r"io.terminationGracePeriodSeconds \(20\) must exceed .*drainSeconds \(15\)"
    ):
        chart.render(values)


def test_gateway_gets_its_wrong_key_limit_and_trusted_proxies() -> None:
    rendered = chart.render(
        chart.merge(
            chart.load_values([chart.ci_values_files()[0]]),
            {"gateway": {"authFailureLimit": 7, "forwardedAllowIps": "10.42.0.0/16"}},
        )
    )
    env = chart.container_env(rendered, deployment(rendered, "gateway"))
    assert env["PANORAMA_AUTH_FAILURE_LIMIT"] == "7"
    assert env["FORWARDED_ALLOW_IPS"] == "10.42.0.0/16"
