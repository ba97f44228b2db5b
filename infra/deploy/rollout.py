"""Wait for the release's workloads to roll out and print pod status (the kubernetes client)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from kubernetes import client, config

SELECTOR = "app.kubernetes.io/instance={release}"


@dataclass(frozen=True)
class Progress:
    kind: str
    name: str
    desired: int
    updated: int
    ready: int

    @property
    def done(self) -> bool:
        return self.updated >= self.desired and self.ready >= self.desired


def connect(context: str | None = None, kubeconfig: str | None = None) -> client.ApiClient:
    config.load_kube_config(config_file=kubeconfig, context=context)
    return client.ApiClient()


def progress(api: client.ApiClient, namespace: str, release: str) -> list[Progress]:
    apps = client.AppsV1Api(api)
    selector = SELECTOR.format(release=release)
    out = []
    for d in apps.list_namespaced_deployment(namespace, label_selector=selector).items:
        desired = d.spec.replicas or 0
        current = d.status.observed_generation == d.metadata.generation
        updated = (d.status.updated_replicas or 0) if current else 0
        out.append(Progress("Deployment", d.metadata.name, desired, updated, d.status.ready_replicas or 0))
    for s in apps.list_namespaced_stateful_set(namespace, label_selector=selector).items:
        desired = s.spec.replicas or 0
        out.append(
            Progress(
                "StatefulSet", s.metadata.name, desired, s.status.updated_replicas or 0, s.status.ready_replicas or 0
            )
        )
    return out


def wait(api: client.ApiClient, namespace: str, release: str, timeout: float = 300.0, interval: float = 3.0) -> bool:
    """True when every Deployment and StatefulSet of the release is updated and ready in time."""
    deadline = time.monotonic() + timeout
    while True:
        states = progress(api, namespace, release)
        pending = [s for s in states if not s.done]
        if states and not pending:
            return True
        if time.monotonic() >= deadline:
            for s in pending:
                print(f"  not ready: {s.kind}/{s.name} {s.ready}/{s.desired} ready, {s.updated} updated")
            return False
        time.sleep(interval)


def print_pods(api: client.ApiClient, namespace: str, release: str) -> None:
    core = client.CoreV1Api(api)
    pods = core.list_namespaced_pod(namespace, label_selector=SELECTOR.format(release=release)).items
    print(f"{'POD':<48} {'PHASE':<10} {'READY':<6} RESTARTS")
    for pod in sorted(pods, key=lambda p: p.metadata.name):
        statuses = pod.status.container_statuses or []
        ready = sum(1 for c in statuses if c.ready)
        restarts = sum(c.restart_count for c in statuses)
        print(f"{pod.metadata.name:<48} {pod.status.phase:<10} {ready}/{len(statuses):<4} {restarts}")
