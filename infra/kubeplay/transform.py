"""Every change made to the rendered objects before ``podman kube play`` runs them, with why.

This list is the one place where the harness departs from what ``helm install`` would send. Each
entry names what it changes and why podman (4.3, Debian) needs it; nothing else is edited. The
objects podman has no engine for (Services, NetworkPolicies, PodDisruptionBudgets, HPAs, Ingress,
the ``helm test`` Pod) are not played at all: they are what only a real cluster can show.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Object = dict[str, Any]
PLAYED_KINDS = ("PersistentVolumeClaim", "Secret", "ConfigMap", "Job", "Deployment")
# Components whose ConfigMap loses PANORAMA_CPU_LIMIT, so the service reads its cgroup itself.
CGROUP_READERS = ("compute", "video-worker")
HOSTS_MOUNT = "kubeplay-etc-hosts"


@dataclass(frozen=True)
class Context:
    """What the transformations need to know about this run."""

    hosts_file: Path  # written by the harness: every Service name of the release as 127.0.0.1
    service_names: tuple[str, ...]
    worker_metrics_port: int  # a free port of this host


@dataclass(frozen=True)
class Transformation:
    name: str
    what: str
    why: str
    apply: Callable[[list[Object], Context], None] = field(repr=False)


def component(obj: Object) -> str:
    return obj["metadata"].get("labels", {}).get("app.kubernetes.io/component", "")


def pod_specs(objects: list[Object]) -> Iterator[Object]:
    for obj in objects:
        if obj["kind"] in ("Deployment", "Job"):
            yield obj["spec"]["template"]["spec"]
        elif obj["kind"] == "Pod":
            yield obj["spec"]


def containers(objects: list[Object]) -> Iterator[Object]:
    for spec in pod_specs(objects):
        yield from spec.get("containers", [])


def _job_as_pod(objects: list[Object], ctx: Context) -> None:
    for i, obj in enumerate(objects):
        if obj["kind"] == "Job":
            template = obj["spec"]["template"]
            objects[i] = {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": obj["metadata"]["name"],
                    "labels": template["metadata"].get("labels", {}),
                    "annotations": obj["metadata"].get("annotations", {}),
                },
                "spec": template["spec"],
            }


def _host_network(objects: list[Object], ctx: Context) -> None:
    for spec in pod_specs(objects):
        spec["hostNetwork"] = True


def _hosts_file(objects: list[Object], ctx: Context) -> None:
    for spec in pod_specs(objects):
        spec["hostAliases"] = [{"ip": "127.0.0.1", "hostnames": list(ctx.service_names)}]
        spec.setdefault("volumes", []).append(
            {"name": HOSTS_MOUNT, "hostPath": {"path": str(ctx.hosts_file), "type": "File"}}
        )
        for container in spec["containers"]:
            container.setdefault("volumeMounts", []).append(
                {"name": HOSTS_MOUNT, "mountPath": "/etc/hosts", "readOnly": True}
            )


def _remove_container_ports(objects: list[Object], ctx: Context) -> None:
    for container in containers(objects):
        container.pop("ports", None)


def _inline_secret_refs(objects: list[Object], ctx: Context) -> None:
    secrets = {o["metadata"]["name"]: o.get("stringData", {}) for o in objects if o["kind"] == "Secret"}
    for container in containers(objects):
        for item in container.get("env", []):
            ref = item.get("valueFrom", {}).get("secretKeyRef")
            if ref is not None:
                item.pop("valueFrom")
                item["value"] = str(secrets[ref["name"]][ref["key"]])


def _cgroup_cpu(objects: list[Object], ctx: Context) -> None:
    for obj in objects:
        if obj["kind"] == "ConfigMap" and component(obj) in CGROUP_READERS:
            obj.get("data", {}).pop("PANORAMA_CPU_LIMIT", None)


def _pvc_group_writable(objects: list[Object], ctx: Context) -> None:
    """Done by the engine (pods.prepare_volume): the object itself is unchanged."""


def _worker_metrics_port(objects: list[Object], ctx: Context) -> None:
    for obj in objects:
        if obj["kind"] == "ConfigMap" and component(obj) == "video-worker":
            obj["data"]["PANORAMA_WORKER_METRICS_PORT"] = str(ctx.worker_metrics_port)


TRANSFORMATIONS: tuple[Transformation, ...] = (
    Transformation(
        "job-as-pod",
        "the migration Job (a Helm hook) becomes a Pod with the same pod spec, played and waited for first",
        "podman 4.3 plays Pods, Deployments and PVCs, not Jobs; Helm runs the hook before the release "
        "is used, so the harness does the same",
        _job_as_pod,
    ),
    Transformation(
        "host-network",
        "hostNetwork: true on every pod",
        "podman has no Services or cluster network: the pods reach each other, Postgres and Redis on this "
        "host's loopback, at the ports the chart renders",
        _host_network,
    ),
    Transformation(
        "etc-hosts",
        "hostAliases naming every Service of the release as 127.0.0.1, and the same list as a read-only "
        "/etc/hosts (a hostPath file mounted over the one podman would write)",
        "the rendered URLs name Services (panorama-io:8001, ...) that only cluster DNS resolves; podman 4.3 "
        "ignores hostAliases on the host network, so the file is mounted as well",
        _hosts_file,
    ),
    Transformation(
        "no-container-ports",
        "containerPort entries removed",
        "podman 4.3 turns containerPorts into port mappings and refuses them on the host network ('PortMappings "
        "can only be used with Bridge or slirp4netns networking'); the probes' named ports are resolved by the "
        "harness from the rendered object",
        _remove_container_ports,
    ),
    Transformation(
        "inline-secret-refs",
        "env valueFrom.secretKeyRef replaced by the value of the rendered Secret",
        "podman 4.3 stores a played Secret but fails to read it back for secretKeyRef "
        "('secret ... is not valid JSON'); the Secrets are still played, the values are the same",
        _inline_secret_refs,
    ),
    Transformation(
        "cgroup-cpu",
        "PANORAMA_CPU_LIMIT removed from the compute and video-worker ConfigMaps",
        "so those two size themselves from the CFS quota of their own cgroup (the CPU limit podman applied), "
        "which is what runs on a cluster without the override",
        _cgroup_cpu,
    ),
    Transformation(
        "pvc-group-writable",
        "the PVC's volume is made group-owned by the pods' group (runAsGroup 0, which podman applies) and "
        "group-writable with setgid, before the pods start",
        "the kubelet does this for the pod's fsGroup so that every pod sharing the volume can write to it; podman "
        "ignores fsGroup and only chowns a new volume to the user of the first container that mounts it",
        _pvc_group_writable,
    ),
    Transformation(
        "worker-metrics-port",
        "PANORAMA_WORKER_METRICS_PORT in the video-worker ConfigMap set to a free port of this host",
        "on the host network the chart's 9100 may already be taken on this machine",
        _worker_metrics_port,
    ),
)


def played(objects: list[Object] | tuple[Object, ...]) -> list[Object]:
    """The rendered objects podman can run (copies): PVCs, Secrets, ConfigMaps, the Job, Deployments."""
    return [copy.deepcopy(o) for o in objects if o["kind"] in PLAYED_KINDS]


def apply(objects: list[Object] | tuple[Object, ...], ctx: Context) -> list[Object]:
    """The rendered objects podman can run, with every transformation applied in order."""
    out = played(objects)
    for transformation in TRANSFORMATIONS:
        transformation.apply(out, ctx)
    return out


def describe() -> str:
    return "\n".join(f"- {t.name}: {t.what} ({t.why})" for t in TRANSFORMATIONS)
