"""Wait for the release's workloads to roll out, the way ``kubectl rollout status`` decides, and print pods.

A Deployment is rolled out when the controller has seen the latest spec (``observedGeneration >=
generation``), every desired replica is updated, no old replica is left (``status.replicas ==
updatedReplicas``) and every updated replica is available. ``readyReplicas`` alone is not enough:
it counts old pods too, so with ``maxSurge: 1, maxUnavailable: 0`` (the chart's strategy) it reaches
the desired count while the new pod is still starting. A StatefulSet is rolled out when its latest
spec is observed, every replica is ready, the updated count reaches the partition and the current
revision is the update revision. The rules read the objects as the API serves them (camelCase JSON).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

SELECTOR = "app.kubernetes.io/instance={release}"

Object = Mapping[str, Any]


@dataclass(frozen=True)
class Verdict:
    kind: str
    name: str
    done: bool
    message: str
    failed: bool = False


def _status(obj: Object, field: str) -> int:
    return int((obj.get("status") or {}).get(field) or 0)


def deployment_status(obj: Object) -> Verdict:
    """kubectl's DeploymentStatusViewer: observed generation, updated, total and available replicas."""
    name = obj["metadata"]["name"]
    status = obj.get("status") or {}
    verdict = functools.partial(Verdict, "Deployment", name)
    if obj["metadata"].get("generation", 0) > status.get("observedGeneration", 0):
        return verdict(False, "waiting for the deployment spec update to be observed")
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return verdict(False, "exceeded its progress deadline", failed=True)
    desired = (obj.get("spec") or {}).get("replicas")
    updated = _status(obj, "updatedReplicas")
    if desired is not None and updated < desired:
        return verdict(False, f"{updated} out of {desired} new replicas have been updated")
    total = _status(obj, "replicas")
    if total > updated:
        return verdict(False, f"{total - updated} old replicas are pending termination")
    available = _status(obj, "availableReplicas")
    if available < updated:
        return verdict(False, f"{available} of {updated} updated replicas are available")
    return verdict(True, "successfully rolled out")


def statefulset_status(obj: Object) -> Verdict:
    """kubectl's StatefulSetStatusViewer: observed generation, ready replicas, partition, revisions."""
    name = obj["metadata"]["name"]
    status = obj.get("status") or {}
    spec = obj.get("spec") or {}
    verdict = functools.partial(Verdict, "StatefulSet", name)
    strategy = spec.get("updateStrategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return verdict(True, f"rollout status is only available for RollingUpdate (not {strategy['type']})")
    observed = status.get("observedGeneration", 0)
    if observed == 0 or obj["metadata"].get("generation", 0) > observed:
        return verdict(False, "waiting for the statefulset spec update to be observed")
    desired = spec.get("replicas")
    ready = _status(obj, "readyReplicas")
    if desired is not None and ready < desired:
        return verdict(False, f"{ready} of {desired} pods are ready")
    partition = ((strategy.get("rollingUpdate") or {}).get("partition")) or 0
    if desired is not None and partition > 0:
        updated = _status(obj, "updatedReplicas")
        if updated < desired - partition:
            return verdict(False, f"{updated} of {desired - partition} pods updated (partition {partition})")
        return verdict(True, f"partitioned roll out complete: {updated} new pods")
    if status.get("updateRevision") != status.get("currentRevision"):
        updated = _status(obj, "updatedReplicas")
        return verdict(False, f"{updated} pods at revision {status.get('updateRevision')}")
    return verdict(True, f"rolling update complete at revision {status.get('currentRevision')}")


def rollout_status(obj: Object) -> Verdict:
    return deployment_status(obj) if obj["kind"] == "Deployment" else statefulset_status(obj)


def connect(context: str | None = None, kubeconfig: str | None = None) -> Any:
    from kubernetes import client, config

    config.load_kube_config(config_file=kubeconfig, context=context)
    return client.ApiClient()


def fetch(api: Any, namespace: str, release: str) -> list[Object]:
    """The release's Deployments and StatefulSets, as the API serves them (camelCase JSON)."""
    from kubernetes import client

    apps = client.AppsV1Api(api)
    selector = SELECTOR.format(release=release)
    out = []
    for kind, items in (
        ("Deployment", apps.list_namespaced_deployment(namespace, label_selector=selector).items),
        ("StatefulSet", apps.list_namespaced_stateful_set(namespace, label_selector=selector).items),
    ):
        for item in items:
            out.append({**api.sanitize_for_serialization(item), "kind": kind})
    return out


def wait(
    objects: Callable[[], list[Object]],
    timeout: float = 300.0,
    interval: float = 3.0,
    echo: Callable[[str], None] = print,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """True when every workload has rolled out; prints each workload's progress whenever it changes.

    False on timeout or when a Deployment exceeds its progress deadline.
    """
    deadline = clock() + timeout
    started = clock()
    said: dict[str, str] = {}
    while True:
        verdicts = [rollout_status(obj) for obj in objects()]
        for v in verdicts:
            key = f"{v.kind}/{v.name}"
            if said.get(key) != v.message:
                said[key] = v.message
                echo(f"  [{clock() - started:5.0f}s] {key}: {v.message}")
        failed = [v for v in verdicts if v.failed]
        if failed:
            return False
        pending = [v for v in verdicts if not v.done]
        if verdicts and not pending:
            return True
        if clock() >= deadline:
            for v in pending:
                echo(f"  not rolled out: {v.kind}/{v.name}: {v.message}")
            return False
        sleep(interval)


def print_pods(api: Any, namespace: str, release: str) -> None:
    from kubernetes import client

    core = client.CoreV1Api(api)
    pods = core.list_namespaced_pod(namespace, label_selector=SELECTOR.format(release=release)).items
    print(f"{'POD':<48} {'PHASE':<10} {'READY':<6} RESTARTS")
    for pod in sorted(pods, key=lambda p: p.metadata.name):
        statuses = pod.status.container_statuses or []
        ready = sum(1 for c in statuses if c.ready)
        restarts = sum(c.restart_count for c in statuses)
        print(f"{pod.metadata.name:<48} {pod.status.phase:<10} {ready}/{len(statuses):<4} {restarts}")
