"""skaffold.yaml validates against skaffold's published schema and matches the chart and images."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from infra import images
from infra.deploy import chart

ROOT = Path(__file__).resolve().parents[2]
# Vendored from skaffold's repository (source, version and licence: infra/schemas/README.md).
SCHEMA_PATH = ROOT / "infra" / "schemas" / "skaffold-v4beta14.json"
SCHEMA_SHA256 = "7c29a621995d2c6143d3c423c8e3d3dfb25703a49fd1cf77644b54168414b39e"


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "skaffold.yaml").read_text())


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    return jsonschema.validators.validator_for(schema)(schema)


def test_the_vendored_schema_is_skaffolds_published_file() -> None:
    assert hashlib.sha256(SCHEMA_PATH.read_bytes()).hexdigest() == SCHEMA_SHA256
    assert (SCHEMA_PATH.parent / "LICENSE.skaffold-schema").read_text().lstrip().startswith("Apache License")


def test_skaffold_yaml_validates_against_the_published_schema(config: dict, validator: Any) -> None:
    assert [e.message for e in validator.iter_errors(config)] == []


def test_api_version_is_the_one_the_schema_describes(config: dict) -> None:
    # The schema accepts any string as apiVersion, so the version is checked here.
    assert config["apiVersion"] == "skaffold/v4beta14"
    assert config["kind"] == "Config"


def test_schema_rejects_a_misspelled_key(config: dict, validator: Any) -> None:
    broken = copy.deepcopy(config)
    broken["deploy"]["helm"]["releases"][0]["chartPth"] = "charts/panorama"
    assert list(validator.iter_errors(broken))


def test_one_artifact_per_service_built_as_make_images_builds_it(config: dict) -> None:
    artifacts = {a["image"]: a for a in config["build"]["artifacts"]}
    assert set(artifacts) == {f"panorama/{c}" for c in images.SERVICES}
    for component, service in images.SERVICES.items():
        artifact = artifacts[f"panorama/{component}"]
        assert artifact["context"] == "."
        assert artifact["docker"]["dockerfile"] == images.DOCKERFILE
        assert (ROOT / artifact["docker"]["dockerfile"]).exists()
        assert artifact["docker"]["target"] == component
        assert artifact["docker"]["buildArgs"] == images.component_build_args(component)
        assert artifact["docker"]["buildArgs"]["SERVICE"] == service


def test_helm_release_uses_the_chart_and_sets_every_image(config: dict) -> None:
    release = config["deploy"]["helm"]["releases"][0]
    assert release["chartPath"] == "charts/panorama"
    for path in release["valuesFiles"]:
        assert (ROOT / path).exists()
    templates = release["setValueTemplates"]
    # Skaffold's image templates turn into the chart's values: the chart must accept and use them.
    overrides: dict[str, Any] = {}
    for key in templates:
        component, _, field = key.partition(".image.")
        overrides.setdefault(component, {"image": {}})["image"][field] = (
            f"built-{component}" if field == "tag" else f"repo/{component}"
        )
    values = chart.merge(chart.load_values([ROOT / release["valuesFiles"][0]]), overrides)
    rendered = chart.render(values)
    for component in ("gateway", "io", "compute", "videoWorker"):
        name = "panorama-video-worker" if component == "videoWorker" else f"panorama-{component}"
        image = rendered.get("Deployment", name)["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == f"repo/{component}:built-{component}"


def test_profiles_for_kind_and_minikube_pick_their_values(config: dict) -> None:
    profiles = {p["name"]: p for p in config["profiles"]}
    assert set(profiles) == {"kind", "minikube"}
    assert profiles["kind"]["activation"] == [{"kubeContext": "kind-panorama"}]
    assert profiles["minikube"]["activation"] == [{"kubeContext": "minikube"}]
    for name, profile in profiles.items():
        patch = profile["patches"][0]
        assert patch["value"] == f"charts/panorama/ci/{name}-values.yaml"
        assert (ROOT / patch["value"]).exists()


def test_kind_cluster_name_matches_the_kind_profile(config: dict) -> None:
    kind = yaml.safe_load((ROOT / "infra" / "kind-config.yaml").read_text())
    assert (
        f"kind-{kind['name']}"
        == next(p for p in config["profiles"] if p["name"] == "kind")["activation"][0]["kubeContext"]
    )


def test_port_forward_reaches_the_gateway_and_jaeger(config: dict) -> None:
    forwards = {(f["resourceName"], f["port"], f["localPort"]) for f in config["portForward"]}
    assert forwards == {("panorama-gateway", 8000, 8000), ("panorama-jaeger", 16686, 16686)}
    rendered = chart.render(chart.load_values([chart.CI_VALUES_DIR / "kind-values.yaml"]))
    for name, port, _ in forwards:
        assert port in [p["port"] for p in rendered.get("Service", name)["spec"]["ports"]]
