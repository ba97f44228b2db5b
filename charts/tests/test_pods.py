"""Production defaults on every pod: probes, resources, graceful shutdown, locked-down security."""

from __future__ import annotations

from typing import Any

import pytest

from infra.deploy import chart
from panorama.core.contract import PORTS

HTTP = PORTS  # the chart's "panorama.ports" must agree with the contract


@pytest.fixture(scope="module", params=chart.ci_values_files(), ids=lambda p: p.stem)
def rendered(request: pytest.FixtureRequest) -> chart.Rendered:
    return chart.render(chart.load_values([request.param]))


def pod_specs(rendered: chart.Rendered) -> list[tuple[str, dict[str, Any]]]:
    specs = [
        (o["metadata"]["name"], o["spec"]["template"]["spec"])
        for o in rendered.objects
        if o["kind"] in ("Deployment", "StatefulSet", "Job")
    ]
    specs += [(o["metadata"]["name"], o["spec"]) for o in rendered.of_kind("Pod")]
    return specs


@pytest.mark.parametrize(("component", "port"), HTTP.items())
def test_http_probes_split_liveness_from_readiness(rendered: chart.Rendered, component: str, port: int) -> None:
    container = rendered.get("Deployment", f"panorama-{component}")["spec"]["template"]["spec"]["containers"][0]
    assert container["ports"][0]["containerPort"] == port
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    # The readiness probe must outlast the service's own per-check timeout (2 s), or it times out first.
    assert container["readinessProbe"]["timeoutSeconds"] > 2
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30


def test_worker_probes_use_celery_ping_without_restarting_on_broker_outages(rendered: chart.Rendered) -> None:
    container = rendered.get("Deployment", "panorama-video-worker")["spec"]["template"]["spec"]["containers"][0]
    for probe in ("readinessProbe", "startupProbe"):
        command = container[probe]["exec"]["command"]
        assert command[:2] == ["python", "-c"]
        assert "app.control.ping([f'celery@{socket.gethostname()}']" in command[2]
    assert "livenessProbe" not in container
    # Its only port is /metrics (no API): nothing probes it, so a scrape failure restarts nothing.
    assert [p["name"] for p in container["ports"]] == ["metrics"]


@pytest.mark.parametrize("component", [*HTTP, "video-worker"])
def test_every_component_runs_the_documented_command(rendered: chart.Rendered, component: str) -> None:
    command = rendered.get("Deployment", f"panorama-{component}")["spec"]["template"]["spec"]["containers"][0][
        "command"
    ]
    if component == "video-worker":
        assert command[:5] == ["celery", "-A", "panorama.video_worker.celery_app", "worker", "--loglevel"]
    else:
        assert command == [
            "gunicorn", "-c", "python:panorama.core.gunicorn_conf", "--bind", f"0.0.0.0:{HTTP[component]}",
            f"panorama.{component}.app:create_app()",
        ]  # fmt: skip


@pytest.mark.parametrize("component", [*HTTP, "video-worker"])
def test_grace_period_covers_prestop_and_graceful_shutdown(rendered: chart.Rendered, component: str) -> None:
    deployment = rendered.get("Deployment", f"panorama-{component}")
    spec = deployment["spec"]["template"]["spec"]
    sleep = int(spec["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][1])
    assert sleep > 0
    grace = spec["terminationGracePeriodSeconds"]
    env = chart.container_env(rendered, deployment)
    if component == "video-worker":
        values = chart.merge({"videoWorker": {"longestJobSeconds": 600}}, rendered.values)
        assert grace >= sleep + values["videoWorker"]["longestJobSeconds"]
        # The worker's own hard limit ends a job before the kubelet's SIGKILL would.
        assert sleep + int(env["PANORAMA_VIDEO_TIME_LIMIT"]) < grace
    else:
        assert sleep + int(env["PANORAMA_GRACEFUL_TIMEOUT"]) < grace


def test_every_container_has_cpu_and_memory_requests_and_limits(rendered: chart.Rendered) -> None:
    for name, spec in pod_specs(rendered):
        for container in spec["containers"]:
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), (name, kind)


def test_every_pod_is_locked_down(rendered: chart.Rendered) -> None:
    for name, spec in pod_specs(rendered):
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["runAsUser"] > 0, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            # A read-only root needs somewhere to write: every service mounts an emptyDir or volume.
            assert container.get("volumeMounts"), name


def test_gateway_and_worker_share_the_video_volume_and_nobody_else_mounts_it(rendered: chart.Rendered) -> None:
    claim = next(
        v["persistentVolumeClaim"]["claimName"]
        for v in rendered.get("Deployment", "panorama-gateway")["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    )
    users = set()
    for deployment in rendered.of_kind("Deployment"):
        for volume in deployment["spec"]["template"]["spec"].get("volumes", []):
            if volume.get("persistentVolumeClaim", {}).get("claimName") == claim:
                users.add(deployment["metadata"]["name"])
    assert users == {"panorama-gateway", "panorama-video-worker"}
    for name in users:
        env = chart.container_env(rendered, rendered.get("Deployment", name))
        assert env["PANORAMA_STORAGE_DIR"] == "/data/videos"
    pvcs = rendered.of_kind("PersistentVolumeClaim")
    if pvcs:
        assert pvcs[0]["spec"]["accessModes"] == [rendered.values.get("storage", {}).get("accessMode", "ReadWriteMany")]


def test_secrets_reach_the_pods_only_through_secret_refs(rendered: chart.Rendered) -> None:
    gateway = rendered.get("Deployment", "panorama-gateway")["spec"]["template"]["spec"]["containers"][0]
    keys = next(e for e in gateway["env"] if e["name"] == "PANORAMA_API_KEYS")
    assert "secretKeyRef" in keys["valueFrom"]
    for configmap in rendered.of_kind("ConfigMap"):
        text = str(configmap["data"])
        assert "PASSWORD" not in text
        assert "API_KEYS" not in text


@pytest.mark.parametrize("longest", [60, 600, 7200])
def test_worker_time_limits_follow_the_longest_job_and_pass_its_own_validation(longest: int) -> None:
    from panorama.video_worker.settings import WorkerSettings

    values = chart.merge(
        chart.load_values([chart.ci_values_files()[0]]), {"videoWorker": {"longestJobSeconds": longest}}
    )
    rendered = chart.render(values)
    deployment = rendered.get("Deployment", "panorama-video-worker")
    env = chart.container_env(rendered, deployment)
    assert int(env["PANORAMA_VIDEO_TIME_LIMIT"]) == longest
    assert int(env["PANORAMA_VIDEO_SOFT_TIME_LIMIT"]) < longest < int(env["PANORAMA_VISIBILITY_TIMEOUT"])
    settings = WorkerSettings(
        video_soft_time_limit=int(env["PANORAMA_VIDEO_SOFT_TIME_LIMIT"]),
        video_time_limit=int(env["PANORAMA_VIDEO_TIME_LIMIT"]),
        visibility_timeout=int(env["PANORAMA_VISIBILITY_TIMEOUT"]),
    )
    assert settings.video_time_limit == longest
