"""The chart seen through Helm's own engine: load, render, lint, and validate every object.

Rendering uses helm-python-sdk (Helm v4's Go engine over a C ABI), so what the tests check is
what ``helm install`` would send; each object is then validated with kubernetes-validate against
the Kubernetes schemas, strictly (unknown fields are errors).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml
from kubernetes_validate import utils as kube_schemas

ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = ROOT / "charts" / "panorama"
CI_VALUES_DIR = CHART_DIR / "ci"
# A current Kubernetes release; kubernetes-validate ships the schemas (see its utils.all_versions()).
KUBE_VERSION = "1.35.0"
RELEASE = "panorama"
NAMESPACE = "panorama"


@dataclass(frozen=True)
class Rendered:
    """One render of the chart: objects by template, hooks included, and NOTES.txt."""

    objects: tuple[dict[str, Any], ...]
    sources: tuple[str, ...]
    notes: str = ""
    values: Mapping[str, Any] = field(default_factory=dict)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [o for o in self.objects if o["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        for obj in self.objects:
            if obj["kind"] == kind and obj["metadata"]["name"] == name:
                return obj
        raise KeyError(f"{kind}/{name} not rendered; have {sorted(self.names())}")

    def names(self) -> set[str]:
        return {f"{o['kind']}/{o['metadata']['name']}" for o in self.objects}


def ci_values_files() -> list[Path]:
    return sorted(CI_VALUES_DIR.glob("*-values.yaml"))


def load_values(paths: Iterable[Path]) -> dict[str, Any]:
    """Merge values files left to right, like repeated ``helm -f``."""
    merged: dict[str, Any] = {}
    for path in paths:
        merged = merge(merged, yaml.safe_load(Path(path).read_text()) or {})
    return merged


def merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def render(values: Mapping[str, Any] | None = None, *, release: str = RELEASE, namespace: str = NAMESPACE) -> Rendered:
    """Render offline as an install would. Raises ``helm_python.HelmError`` (e.g. a ``fail``)."""
    with helm.Chart.load(CHART_DIR) as chart:
        manifests = chart.render(dict(values or {}), name=release, namespace=namespace, is_install=True)
    objects: list[dict[str, Any]] = []
    sources: list[str] = []
    notes = ""
    for source, text in sorted(manifests.items()):
        if source.endswith("NOTES.txt"):
            notes = text
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                objects.append(doc)
                sources.append(source)
    return Rendered(tuple(objects), tuple(sources), notes, dict(values or {}))


def lint(values: Mapping[str, Any] | None = None) -> list[str]:
    """Helm lint (strict: warnings count) against KUBE_VERSION; returns the findings."""
    report = helm.lint(CHART_DIR, dict(values or {}), strict=True, kube_version=f"v{KUBE_VERSION}")
    findings = [
        f"{m.get('path', '')}: {m.get('error', '')}" for m in report.get("messages", []) if m.get("severity", 0) >= 2
    ]
    return findings + [str(e) for e in report.get("errors", []) or []]


def validate(rendered: Rendered, version: str = KUBE_VERSION) -> list[str]:
    """Validate every object against the Kubernetes schemas, strictly; returns the errors."""
    errors = []
    for obj, source in zip(rendered.objects, rendered.sources, strict=True):
        try:
            kube_schemas.validate(obj, version, strict=True)
        except kube_schemas.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            errors.append(f"{source}: {obj['kind']}/{obj['metadata']['name']}: {path}: {exc.message}")
        except kube_schemas.SchemaNotFoundError as exc:
            errors.append(f"{source}: no schema: {exc.message}")
    return errors


def container_env(rendered: Rendered, deployment: dict[str, Any]) -> dict[str, str]:
    """The environment a Deployment's (or Job's) first container gets, as the kubelet builds it.

    ConfigMap ``envFrom`` first, then ``env`` in order; Secret references are resolved from the
    rendered Secrets (an ``existingSecret`` made outside the chart shows as ``<secret name/key>``)
    and ``$(VAR)`` references expanded, as Kubernetes does.
    """
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env: dict[str, str] = {}
    for source in container.get("envFrom") or []:
        name = source["configMapRef"]["name"]
        env.update({k: str(v) for k, v in rendered.get("ConfigMap", name).get("data", {}).items()})
    for item in container.get("env") or []:
        if "value" in item:
            value = str(item["value"])
            for key, known in env.items():
                value = value.replace(f"$({key})", known)
            env[item["name"]] = value
        else:
            ref = item["valueFrom"]["secretKeyRef"]
            try:
                env[item["name"]] = str(rendered.get("Secret", ref["name"])["stringData"][ref["key"]])
            except KeyError:
                env[item["name"]] = f"<secret {ref['name']}/{ref['key']}>"
    return env
