"""The chart derives workers and pools with the same rules as panorama.core.sizing.plan."""

from __future__ import annotations

import os
import re

import helm_python as helm
import pytest

from infra.deploy import chart
from panorama.compute.settings import ComputeSettings
from panorama.core.settings import PanoramaSettings
from panorama.core.sizing import PlanError, plan
from panorama.gateway.settings import GatewaySettings
from panorama.io.settings import IoSettings
from panorama.video_worker.settings import WorkerSettings

KIND = chart.CI_VALUES_DIR / "kind-values.yaml"
# (quantity as a user writes it, the CPUs it means)
CPU_LIMITS = [("500m", 0.5), ("1", 1.0), ("1500m", 1.5), (2, 2.0), ("2500m", 2.5), ("4", 4.0)]
COMPONENTS = {"gateway": "gateway", "io": "io", "compute": "compute", "video-worker": "videoWorker"}
# Each pod's own settings class: it decides whether the pod plans database connections.
SETTINGS: dict[str, type[PanoramaSettings]] = {
    "gateway": GatewaySettings,
    "io": IoSettings,
    "compute": ComputeSettings,
    "video-worker": WorkerSettings,
}


def render_with(component_key: str, overrides: dict, **top: dict) -> chart.Rendered:
    values = chart.merge(chart.load_values([KIND]), {component_key: overrides, **top})
    return chart.render(values)


def annotation_plan(rendered: chart.Rendered, component: str) -> dict[str, str]:
    pod = rendered.get("Deployment", f"panorama-{component}")["spec"]["template"]["metadata"]
    return dict(pair.split("=") for pair in pod["annotations"]["panorama.dev/plan"].split())


@pytest.mark.parametrize(("quantity", "cpus"), CPU_LIMITS, ids=[str(q) for q, _ in CPU_LIMITS])
@pytest.mark.parametrize("component", list(COMPONENTS))
def test_rendered_env_gives_the_same_plan_in_the_pod_as_in_the_chart(
    component: str, quantity: str | int, cpus: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = COMPONENTS[component]
    rendered = render_with(
        key,
        {
            "resources": {"limits": {"cpu": quantity}},
            "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 2},
        },
        database={"maxConnections": 500, "reservedConnections": 20},
    )
    env = chart.container_env(rendered, rendered.get("Deployment", f"panorama-{component}"))
    assert float(env["PANORAMA_CPU_LIMIT"]) == cpus

    # What the pod computes at start-up from exactly this environment.
    for name in [n for n in os.environ if n.startswith("PANORAMA_") or n == "WEB_CONCURRENCY"]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = SETTINGS[component].load()
    pod_plan = settings.sizing()

    # Only io has a database: it gets the database's budget; the others plan no connections at all.
    assert settings.uses_database == (component == "io")
    if component == "io":
        expected = plan(cpus, replicas=2, max_connections=500, reserved_connections=20, database=True)
    else:
        # The gateway also plans its upstream sockets (the chart's upstreamConnections, 1024 by default).
        upstream = {"upstream_connections": 1024} if component == "gateway" else {}
        expected = plan(cpus, database=False, **upstream)
        assert expected.connections_total == 0
    assert pod_plan == expected
    shown = annotation_plan(rendered, component)
    assert int(shown["workers"]) == expected.workers
    assert int(shown["process_pool"]) == expected.process_pool_size
    assert int(shown["celery"]) == expected.celery_concurrency
    assert int(shown["thread_tokens"]) == expected.thread_tokens
    assert shown["connections"] == f"{expected.connections_total}/{expected.connection_budget}"
    if component == "video-worker":
        assert int(env["PANORAMA_CELERY_CONCURRENCY"]) == expected.celery_concurrency
    else:
        assert int(env["WEB_CONCURRENCY"]) == expected.workers


@pytest.mark.parametrize(("quantity", "cpus"), CPU_LIMITS, ids=[str(q) for q, _ in CPU_LIMITS])
def test_explicit_workers_override_the_cpu_rule_like_web_concurrency(quantity: str | int, cpus: float) -> None:
    rendered = render_with("compute", {"resources": {"limits": {"cpu": quantity}}, "workers": 1})
    expected = plan(cpus, workers=1)
    shown = annotation_plan(rendered, "compute")
    assert (int(shown["workers"]), int(shown["process_pool"])) == (1, expected.process_pool_size)


def test_io_gets_the_database_budget_with_the_hpa_maximum_as_replicas() -> None:
    rendered = render_with(
        "io", {"resources": {"limits": {"cpu": "2"}}, "autoscaling": {"enabled": True, "maxReplicas": 2}}
    )
    env = chart.container_env(rendered, rendered.get("Deployment", "panorama-io"))
    assert env["PANORAMA_REPLICAS"] == "2"
    assert env["WEB_CONCURRENCY"] == "2"
    assert (env["PANORAMA_DB_POOL_SIZE"], env["PANORAMA_DB_MAX_OVERFLOW"], env["PANORAMA_SYNC_POOL_SIZE"]) == (
        "5",
        "5",
        "10",
    )
    assert (env["PANORAMA_DB_MAX_CONNECTIONS"], env["PANORAMA_DB_RESERVED_CONNECTIONS"]) == ("100", "10")


def test_over_committed_database_plan_fails_with_how_much_to_cut() -> None:
    overrides = {"resources": {"limits": {"cpu": "2"}}, "autoscaling": {"enabled": True, "maxReplicas": 10}}
    with pytest.raises(PlanError) as core_error:
        plan(2.0, replicas=10, max_connections=100, reserved_connections=10)
    core_over = re.search(r"over by (\d+)", str(core_error.value)).group(1)
    with pytest.raises(helm.HelmError) as chart_error:
        render_with("io", overrides)
    message = str(chart_error.value)
    assert f"over by {core_over}" in message  # 10 x 2 x 20 = 400 of 90
    assert "io.autoscaling.maxReplicas" in message
    assert "database.maxConnections" in message


def test_budget_counts_the_hpa_maximum_not_the_minimum() -> None:
    fits = {"resources": {"limits": {"cpu": "1"}}, "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 4}}
    render_with("io", fits)  # 4 x 1 x 20 = 80 of 90
    with pytest.raises(helm.HelmError, match="over by 10"):
        render_with("io", {**fits, "autoscaling": {"enabled": True, "minReplicas": 1, "maxReplicas": 5}})


def test_raising_max_connections_fixes_the_plan_it_refused() -> None:
    values = chart.merge(
        chart.load_values([KIND]),
        {
            "io": {"autoscaling": {"enabled": True, "maxReplicas": 10}},
            "database": {"maxConnections": 300, "reservedConnections": 10},
        },
    )
    rendered = chart.render(values)
    assert annotation_plan(rendered, "io")["connections"] == "200/290"


@pytest.mark.parametrize("component", ["gateway", "compute", "video-worker"])
def test_services_without_a_database_render_no_pools_and_no_budget_failure_at_any_cpu_limit(component: str) -> None:
    # 64 workers x 20 connections would be far over a 90-connection budget, if they had one.
    rendered = render_with(COMPONENTS[component], {"resources": {"limits": {"cpu": "64"}}})
    env = chart.container_env(rendered, rendered.get("Deployment", f"panorama-{component}"))
    assert not [name for name in env if name.startswith("PANORAMA_DB_") or name == "PANORAMA_SYNC_POOL_SIZE"]
    expected = plan(64.0, database=False)
    shown = annotation_plan(rendered, component)
    assert shown["connections"] == f"0/{expected.connection_budget}"
    assert int(shown["thread_tokens"]) == expected.thread_tokens
    with pytest.raises(PlanError):
        plan(64.0, database=True)  # what the old chart (and core before database=False) refused


def test_missing_cpu_limit_fails_naming_the_value() -> None:
    values = chart.load_values([KIND])
    values["compute"]["resources"]["limits"]["cpu"] = None  # null deletes a default in Helm
    with pytest.raises(helm.HelmError, match=r"compute.resources.limits.cpu is required"):
        chart.render(values)


def test_gateway_upstream_connections_follow_the_plan_and_an_over_large_value_is_refused() -> None:
    rendered = render_with("gateway", {})
    env = chart.container_env(rendered, rendered.get("Deployment", "panorama-gateway"))
    planned = plan(1, database=False, upstream_connections=1024)
    assert int(env["PANORAMA_UPSTREAM_CONNECTIONS"]) == planned.upstream_connections
    with pytest.raises(helm.HelmError, match="upstreamConnections"):
        render_with("gateway", {"upstreamConnections": 10_001})
    with pytest.raises(PlanError, match="PANORAMA_UPSTREAM_CONNECTIONS"):
        plan(1, database=False, upstream_connections=10_001)
