"""Every ci/*-values.yaml renders with Helm's engine, lints clean and validates strictly."""

from __future__ import annotations

from pathlib import Path

import helm_python as helm
import pytest

from infra.deploy import chart

CI_FILES = chart.ci_values_files()
COMPONENTS = ("gateway", "io", "compute", "video-worker")


@pytest.fixture(scope="module", params=CI_FILES, ids=lambda p: p.stem)
def rendered(request: pytest.FixtureRequest) -> chart.Rendered:
    return chart.render(chart.load_values([request.param]))


def test_every_mode_has_a_ci_values_file() -> None:
    assert {p.name for p in CI_FILES} >= {"kind-values.yaml", "minikube-values.yaml", "production-values.yaml"}


@pytest.mark.parametrize("path", CI_FILES, ids=lambda p: p.stem)
def test_helm_lint_strict_finds_nothing(path: Path) -> None:
    assert chart.lint(chart.load_values([path])) == []


def test_every_object_validates_strictly_against_kubernetes_schemas(rendered: chart.Rendered) -> None:
    assert rendered.objects
    assert chart.validate(rendered) == []


def test_every_component_has_deployment_configmap_and_networkpolicy(rendered: chart.Rendered) -> None:
    for component in COMPONENTS:
        name = f"panorama-{component}"
        rendered.get("Deployment", name)
        rendered.get("ConfigMap", name)
        rendered.get("NetworkPolicy", name)


def test_http_components_have_services_and_the_worker_has_none(rendered: chart.Rendered) -> None:
    services = {s["metadata"]["name"] for s in rendered.of_kind("Service")}
    assert {"panorama-gateway", "panorama-io", "panorama-compute"} <= services
    assert "panorama-video-worker" not in services


def test_only_the_gateway_is_ever_exposed_by_an_ingress(rendered: chart.Rendered) -> None:
    for ingress in rendered.of_kind("Ingress"):
        backends = [p["backend"]["service"]["name"] for r in ingress["spec"]["rules"] for p in r["http"]["paths"]]
        assert set(backends) == {"panorama-gateway"}
    for service in rendered.of_kind("Service"):
        assert service["spec"].get("type", "ClusterIP") == "ClusterIP"


def test_hpa_and_pdb_follow_the_values(rendered: chart.Rendered) -> None:
    values = chart.merge(helm.Chart.load(chart.CHART_DIR).values, rendered.values)
    for component, key in (
        ("gateway", "gateway"),
        ("io", "io"),
        ("compute", "compute"),
        ("video-worker", "videoWorker"),
    ):
        name = f"panorama-{component}"
        deployment = rendered.get("Deployment", name)
        hpas = [h for h in rendered.of_kind("HorizontalPodAutoscaler") if h["metadata"]["name"] == name]
        if values[key]["autoscaling"]["enabled"]:
            assert hpas[0]["spec"]["maxReplicas"] == values[key]["autoscaling"]["maxReplicas"]
            assert hpas[0]["spec"]["scaleTargetRef"]["name"] == name
            assert "replicas" not in deployment["spec"], "an HPA-managed Deployment must not pin replicas"
        else:
            assert hpas == []
            assert deployment["spec"]["replicas"] == values[key]["replicas"]
        pdbs = [p for p in rendered.of_kind("PodDisruptionBudget") if p["metadata"]["name"] == name]
        assert len(pdbs) == int(values[key]["pdb"]["enabled"])


def test_migration_job_is_a_helm_hook_running_the_io_migrations(rendered: chart.Rendered) -> None:
    job = rendered.get("Job", "panorama-migrate")
    hooks = job["metadata"]["annotations"]["helm.sh/hook"].split(",")
    assert "pre-upgrade" in hooks
    external = not rendered.values.get("postgresql", {}).get("enabled", True)
    assert ("pre-install" in hooks) == (external and bool(rendered.values["database"].get("existingSecret")))
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["python", "-m", "panorama.io.migrate"]
    assert (
        container["image"]
        == rendered.get("Deployment", "panorama-io")["spec"]["template"]["spec"]["containers"][0]["image"]
    )
    assert chart.container_env(rendered, job)["PANORAMA_DATABASE_URL"].startswith("postgresql+asyncpg://")


def test_helm_test_hook_calls_the_gateway(rendered: chart.Rendered) -> None:
    pod = rendered.get("Pod", "panorama-test")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    env = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
    assert env["GATEWAY_URL"]["value"] == "http://panorama-gateway:8000"
    script = pod["spec"]["containers"][0]["command"][-1]
    assert "/compute" in script
    assert "/users" in script


def test_in_cluster_or_external_dependencies_match_the_mode(rendered: chart.Rendered) -> None:
    statefulsets = {s["metadata"]["name"] for s in rendered.of_kind("StatefulSet")}
    io_env = chart.container_env(rendered, rendered.get("Deployment", "panorama-io"))
    if rendered.values.get("postgresql", {}).get("enabled", True):
        assert "panorama-postgresql" in statefulsets
        assert "@panorama-postgresql:5432/" in io_env["PANORAMA_DATABASE_URL"]
    else:
        assert "panorama-postgresql" not in statefulsets
        assert rendered.values["externalDatabase"]["host"] in io_env["PANORAMA_DATABASE_URL"]
    assert ("panorama-redis" in statefulsets) == rendered.values.get("redis", {}).get("enabled", True)


def test_images_are_the_four_service_images(rendered: chart.Rendered) -> None:
    for component in COMPONENTS:
        image = rendered.get("Deployment", f"panorama-{component}")["spec"]["template"]["spec"]["containers"][0][
            "image"
        ]
        assert f"panorama/{component}:" in image


def test_notes_explain_how_to_reach_the_gateway(rendered: chart.Rendered) -> None:
    assert "panorama-gateway" in rendered.notes or "://" in rendered.notes
    assert "helm test panorama" in rendered.notes


def test_chart_without_api_keys_fails_with_a_fix_it_message() -> None:
    values = chart.load_values([chart.CI_VALUES_DIR / "kind-values.yaml"])
    values["apiKeys"] = {"keys": ""}
    with pytest.raises(helm.HelmError, match=r"apiKeys.keys is empty: set it"):
        chart.render(values)


def test_short_api_key_is_refused_like_the_gateway_refuses_it() -> None:
    values = chart.merge(chart.load_values([chart.CI_VALUES_DIR / "kind-values.yaml"]), {"apiKeys": {"keys": "short"}})
    with pytest.raises(helm.HelmError, match="at least 16 characters"):
        chart.render(values)


def test_schema_refuses_unknown_keys() -> None:
    values = chart.merge(chart.load_values([chart.CI_VALUES_DIR / "kind-values.yaml"]), {"io": {"poolSize": 3}})
    with pytest.raises(helm.HelmValuesError, match="poolSize"):
        chart.render(values)


def test_every_value_is_documented_with_a_param_line() -> None:
    text = (chart.CHART_DIR / "values.yaml").read_text()
    documented = {line.split()[2] for line in text.splitlines() if line.startswith("## @param ")}
    defaults = helm.Chart.load(chart.CHART_DIR).values

    def leaves(tree: dict, prefix: str = "") -> set[str]:
        out = set()
        for key, value in tree.items():
            path = f"{prefix}{key}"
            # Maps of free-form settings (resources, labels, annotations) are documented as one key.
            if (
                isinstance(value, dict)
                and value
                and path.split(".")[-1] not in {"resources", "annotations", "labels"}
                and not any(path.endswith(s) for s in ("Labels",))
            ):
                out |= leaves(value, path + ".")
            else:
                out.add(path)
        return out

    assert leaves(defaults) - documented == set()
