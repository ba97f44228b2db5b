"""Opt-in monitoring objects: the PrometheusRule, a PodMonitor per component, the Grafana dashboard.

The Prometheus Operator's objects are checked against its CRD schemas as the PyPI package
cloudcoil-models-prometheus-operator carries them (pydantic models generated from the CRDs). Those
models drop unknown fields silently, so :func:`operator_errors` round-trips each object and reports
every field the schema does not know; the first test proves that it catches a misspelling.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from cloudcoil.models.prometheus_operator.v1 import PodMonitor, PrometheusRule
from pydantic import BaseModel, ValidationError

from infra.deploy import chart

ROOT = Path(__file__).resolve().parents[2]
RULES = chart.CHART_DIR / "files/panorama-rules.yaml"
DASHBOARD = chart.CHART_DIR / "files/panorama-dashboard.json"
COMPONENTS = ["gateway", "io", "compute", "video-worker"]
ON = {
    "metrics": {
        "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}},
        "podMonitor": {"enabled": True},
        "dashboard": {"enabled": True},
    }
}
MODELS: dict[str, type[BaseModel]] = {"PodMonitor": PodMonitor, "PrometheusRule": PrometheusRule}


def unknown_fields(given: Any, kept: Any, path: str = "") -> list[str]:
    if isinstance(given, dict):
        kept = kept if isinstance(kept, dict) else {}
        out = []
        for key, value in given.items():
            if key not in kept:
                out.append(f"{path}.{key}".lstrip("."))
            else:
                out += unknown_fields(value, kept[key], f"{path}.{key}")
        return out
    if isinstance(given, list):
        kept = kept if isinstance(kept, list) else []
        return [
            e
            for i, item in enumerate(given)
            for e in unknown_fields(item, kept[i] if i < len(kept) else None, f"{path}[{i}]")
        ]
    return []


def operator_errors(obj: dict[str, Any]) -> list[str]:
    """Schema errors of one Prometheus Operator object, unknown (e.g. misspelled) fields included."""
    model = MODELS[obj["kind"]]
    try:
        parsed = model.model_validate(obj)
    except ValidationError as exc:
        return [str(exc)]
    kept = parsed.model_dump(by_alias=True, exclude_unset=True, mode="json")
    return [f"unknown field {f}" for f in unknown_fields(obj, kept)]


@pytest.fixture(scope="module")
def rendered() -> chart.Rendered:
    return chart.render(chart.merge(chart.load_values([chart.ci_values_files()[0]]), ON))


def test_the_strict_check_rejects_a_misspelled_or_mistyped_field(rendered: chart.Rendered) -> None:
    monitor = json.loads(json.dumps(rendered.get("PodMonitor", "panorama-io")))
    assert operator_errors(monitor) == []
    monitor["spec"]["podMetricsEndpoints"][0]["intervall"] = "15s"
    assert operator_errors(monitor) == ["unknown field spec.podMetricsEndpoints[0].intervall"]
    rule = json.loads(json.dumps(rendered.get("PrometheusRule", "panorama")))
    rule["spec"]["groups"][0]["rules"][0]["annotation"] = {}
    assert operator_errors(rule) == ["unknown field spec.groups[0].rules[0].annotation"]
    rule["spec"]["groups"][0]["rules"][0] = {"alert": "X", "expr": {"not": "a string"}}
    assert operator_errors(rule)  # wrong type: pydantic's own error


def test_nothing_is_rendered_unless_asked() -> None:
    rendered = chart.render(chart.load_values([chart.ci_values_files()[0]]))
    kinds = {obj["kind"] for obj in rendered.objects}
    assert not kinds & {"PodMonitor", "PrometheusRule"}
    assert all("grafana_dashboard" not in obj["metadata"].get("labels", {}) for obj in rendered.objects)


def test_the_prometheus_rule_is_the_plain_rules_file_and_valid(rendered: chart.Rendered) -> None:
    rule = rendered.get("PrometheusRule", "panorama")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"] == yaml.safe_load(RULES.read_text())
    assert operator_errors(rule) == []
    alerts = [r for g in rule["spec"]["groups"] for r in g["rules"]]
    assert len(alerts) >= 14
    for alert in alerts:
        anchor = alert["annotations"]["runbook_url"].split("#")[1]
        assert anchor == alert["alert"].lower()
        assert f"\n## {alert['alert']}\n" in (ROOT / "docs/runbook.md").read_text()
        assert alert["annotations"]["summary"]


@pytest.mark.parametrize("component", COMPONENTS)
def test_every_component_has_a_valid_pod_monitor_on_its_metrics_port(rendered: chart.Rendered, component: str) -> None:
    monitor = rendered.get("PodMonitor", f"panorama-{component}")
    assert operator_errors(monitor) == []
    deployment = rendered.get("Deployment", f"panorama-{component}")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    ports = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert endpoint["port"] in ports
    assert {r["targetLabel"] for r in endpoint["relabelings"]} == {"service", "instance"}


def test_the_dashboard_config_map_carries_the_sidecar_label_and_the_dashboard(rendered: chart.Rendered) -> None:
    config_map = rendered.get("ConfigMap", "panorama-dashboard")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["panorama-dashboard.json"])
    assert dashboard == json.loads(DASHBOARD.read_text())
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    for model in ("Event loop", "Thread pool", "DB pools", "Process pool", "Upstream pools", "Celery"):
        assert any(r.startswith(model) for r in rows), rows
    assert chart.validate(chart.Rendered((config_map,), ("dashboard",), "", {})) == []


@pytest.mark.parametrize("script", ["make_dashboard.py", "make_rules_test.py"])
def test_generated_files_are_current(script: str) -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "monitoring" / script), "--check"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
