"""RabbitMQ as the Celery broker: in the cluster, external, or not at all (Redis), wired to the right pods."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from infra.deploy import chart

BASE = chart.ci_values_files()[0]


def render(overrides: dict[str, Any]) -> chart.Rendered:
    return chart.render(chart.merge(chart.load_values([BASE]), overrides))


def env(rendered: chart.Rendered, component: str) -> dict[str, str]:
    return chart.container_env(rendered, rendered.get("Deployment", f"panorama-{component}"))


def test_by_default_redis_stays_the_broker() -> None:
    rendered = render({})
    for component in ("gateway", "video-worker", "io"):
        assert "PANORAMA_BROKER_URL" not in env(rendered, component)
    assert not [o for o in rendered.objects if "rabbitmq" in o["metadata"]["name"]]


def test_in_cluster_rabbitmq_is_the_broker_of_the_gateway_and_the_worker_only() -> None:
    rendered = render({"rabbitmq": {"enabled": True, "password": "s3cret-pass"}})
    for component in ("gateway", "video-worker"):
        assert env(rendered, component)["PANORAMA_BROKER_URL"] == "amqp://panorama:s3cret-pass@panorama-rabbitmq:5672/"
    assert "PANORAMA_BROKER_URL" not in env(rendered, "io")
    pod = rendered.get("StatefulSet", "panorama-rabbitmq")["spec"]["template"]["spec"]
    server_env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
    timeout_ms = int(server_env["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"].split()[-1])
    worker = rendered.get("Deployment", "panorama-video-worker")["spec"]["template"]["spec"]
    # The consumer timeout exceeds the longest job, or RabbitMQ would requeue a job still running.
    assert timeout_ms > (worker["terminationGracePeriodSeconds"] - 35) * 1000
    assert rendered.get("Service", "panorama-rabbitmq")["spec"]["ports"][0]["port"] == 5672


def test_only_the_gateway_and_the_worker_may_reach_rabbitmq() -> None:
    rendered = render({"rabbitmq": {"enabled": True, "password": "s3cret-pass"}, "networkPolicy": {"enabled": True}})
    ingress = rendered.get("NetworkPolicy", "panorama-rabbitmq")["spec"]["ingress"]
    peers = [p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in ingress[0]["from"]]
    assert sorted(peers) == ["gateway", "video-worker"]
    for component in ("gateway", "video-worker"):
        egress = rendered.get("NetworkPolicy", f"panorama-{component}")["spec"]["egress"]
        assert any({"protocol": "TCP", "port": 5672} in rule.get("ports", []) for rule in egress)


def test_external_rabbitmq_url_comes_from_a_secret() -> None:
    url = "amqps://user:pw@mq.example.org:5671/panorama"
    rendered = render({"externalRabbitmq": {"url": url, "port": 5671}})
    assert env(rendered, "gateway")["PANORAMA_BROKER_URL"] == url
    assert env(rendered, "video-worker")["PANORAMA_BROKER_URL"] == url
    assert not [o for o in rendered.objects if o["kind"] == "StatefulSet" and "rabbitmq" in o["metadata"]["name"]]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"rabbitmq": {"enabled": True}}, "rabbitmq.password is empty"),
        ({"rabbitmq": {"enabled": True, "password": "x"}, "externalRabbitmq": {"url": "amqp://h/"}}, "not both"),
    ],
)
def test_broker_values_that_cannot_work_fail_saying_why(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError, match=message):
        render(overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        {"rabbitmq": {"enabled": True, "password": "s3cret-pass"}, "networkPolicy": {"enabled": True}},
        {
            "externalRabbitmq": {"url": "amqp://u:p@mq:5672/", "cidrs": ["10.0.0.0/8"]},
            "networkPolicy": {"enabled": True},
        },
    ],
    ids=["in-cluster", "external"],
)
def test_broker_renders_validate_strictly(overrides: dict[str, Any]) -> None:
    assert chart.validate(render(overrides)) == []
