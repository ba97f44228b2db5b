"""The rendered chart run by `podman kube play` (needs `make images`; PANORAMA_KUBEPLAY_TEST=1, `make kubeplay`).

The transformation tests below run everywhere: they pin what the harness changes in the rendered
objects (infra/kubeplay/transform.py) and that it changes nothing else of what it plays.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from infra.deploy import chart
from infra.kubeplay import pods, transform

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rendered() -> chart.Rendered:
    return chart.render(pods.kubeplay_values("panorama_kp", 3, "ci", "k" * 32, "t" * 32), release="panorama")


@pytest.fixture(scope="module")
def played(rendered: chart.Rendered, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    hosts = tmp_path_factory.mktemp("kp") / "hosts"
    return transform.apply(rendered.objects, transform.Context(hosts, ("panorama-io",), 45678))


def test_only_what_podman_runs_is_played(played: list[dict[str, Any]]) -> None:
    kinds = sorted({o["kind"] for o in played})
    assert kinds == ["ConfigMap", "Deployment", "PersistentVolumeClaim", "Pod", "Secret"]
    assert [o["metadata"]["name"] for o in played if o["kind"] == "Pod"] == ["panorama-migrate"]


def test_every_pod_is_on_the_host_network_with_the_services_in_a_read_only_hosts_file(
    played: list[dict[str, Any]],
) -> None:
    for spec in transform.pod_specs(played):
        assert spec["hostNetwork"] is True
        assert spec["hostAliases"] == [{"ip": "127.0.0.1", "hostnames": ["panorama-io"]}]
        for container in spec["containers"]:
            assert {"name": transform.HOSTS_MOUNT, "mountPath": "/etc/hosts", "readOnly": True} in container[
                "volumeMounts"
            ]
            assert "ports" not in container


def test_secret_refs_are_inlined_with_the_rendered_values(rendered: chart.Rendered, played: list) -> None:
    for container in transform.containers(played):
        for item in container.get("env", []):
            assert "valueFrom" not in item, item
    io = next(o for o in played if o["kind"] == "Deployment" and transform.component(o) == "io")
    env = {e["name"]: e["value"] for e in io["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["PANORAMA_INTERNAL_TOKEN"] == "t" * 32
    for item in rendered.get("Deployment", "panorama-io")["spec"]["template"]["spec"]["containers"][0]["env"]:
        if "valueFrom" in item:
            ref = item["valueFrom"]["secretKeyRef"]
            assert env[item["name"]] == rendered.get("Secret", ref["name"])["stringData"][ref["key"]]


def test_only_compute_and_the_worker_read_their_cgroup(played: list[dict[str, Any]]) -> None:
    configmaps = {transform.component(o): o["data"] for o in played if o["kind"] == "ConfigMap"}
    assert "PANORAMA_CPU_LIMIT" not in configmaps["compute"]
    assert "PANORAMA_CPU_LIMIT" not in configmaps["video-worker"]
    assert configmaps["gateway"]["PANORAMA_CPU_LIMIT"] == "0.5"
    assert configmaps["io"]["PANORAMA_CPU_LIMIT"] == "1"
    assert configmaps["video-worker"]["PANORAMA_WORKER_METRICS_PORT"] == "45678"


def same_pod_spec_but_the_listed_changes(theirs: dict[str, Any], ours: dict[str, Any]) -> None:
    theirs, ours = json.loads(json.dumps(theirs)), json.loads(json.dumps(ours))
    assert ours.pop("hostNetwork") is True
    ours.pop("hostAliases")
    ours["volumes"] = [v for v in ours["volumes"] if v["name"] != transform.HOSTS_MOUNT]
    for mine, rendered_container in zip(ours["containers"], theirs["containers"], strict=True):
        mine["volumeMounts"] = [m for m in mine["volumeMounts"] if m["name"] != transform.HOSTS_MOUNT]
        rendered_container.pop("ports", None)
        for a, b in zip(mine.get("env", []), rendered_container.get("env", []), strict=True):
            assert a["name"] == b["name"]
            if "valueFrom" in b:  # inlined: the value itself is checked above
                a.pop("value"), b.pop("valueFrom")
    assert ours == theirs


def test_nothing_else_is_edited(rendered: chart.Rendered, played: list[dict[str, Any]]) -> None:
    """Every played object equals its rendered one once the listed changes are set aside."""
    originals = {(o["kind"], o["metadata"]["name"]): o for o in rendered.objects}
    for obj in played:
        name = obj["metadata"]["name"]
        if obj["kind"] == "Pod":
            job = originals[("Job", name)]
            assert obj["metadata"]["labels"] == job["spec"]["template"]["metadata"]["labels"]
            same_pod_spec_but_the_listed_changes(job["spec"]["template"]["spec"], obj["spec"])
        elif obj["kind"] == "Deployment":
            original = originals[("Deployment", name)]
            assert obj["metadata"] == original["metadata"]
            assert obj["spec"]["template"]["metadata"] == original["spec"]["template"]["metadata"]
            assert {k: v for k, v in obj["spec"].items() if k != "template"} == {
                k: v for k, v in original["spec"].items() if k != "template"
            }
            same_pod_spec_but_the_listed_changes(original["spec"]["template"]["spec"], obj["spec"]["template"]["spec"])
        elif obj["kind"] == "ConfigMap":
            original = originals[("ConfigMap", name)]
            listed = ("PANORAMA_CPU_LIMIT", "PANORAMA_WORKER_METRICS_PORT")
            assert {k: v for k, v in obj["data"].items() if k not in listed} == {
                k: v for k, v in original["data"].items() if k not in listed
            }
            assert obj["metadata"] == original["metadata"]
        else:
            assert obj == originals[(obj["kind"], name)]


@pytest.mark.slow
@pytest.mark.skipif(
    os.environ.get("PANORAMA_KUBEPLAY_TEST") != "1",
    reason="kube play runs after `make images` with PANORAMA_KUBEPLAY_TEST=1 (`make kubeplay`)",
)
def test_the_rendered_suite_runs_under_podman_kube_play() -> None:
    report = pods.run(
        tag=os.environ.get("PANORAMA_IMAGES_TAG", "ci"), redis_db=int(os.environ.get("PANORAMA_TEST_REDIS_DB", "15"))
    )
    out = ROOT / ".panorama" / "kubeplay-report.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"kube play: {report['seconds']} (report in {out})")

    assert report["transformations"] == [t.name for t in transform.TRANSFORMATIONS]
    assert report["pods"]["migrate"]["exit_code"] == 0
    for component, cpu in pods.CPU_LIMITS.items():
        pod = report["pods"][component]
        expected = pods.cpu_quantity(cpu)
        # The quota podman applied, the one the container reads, and the plan the service runs with.
        assert pod["cgroup"]["applied"] == expected, (component, pod["cgroup"])
        assert pod["cgroup"]["read"] == expected, (component, pod["cgroup"])
        assert float(pod["plan"]["cpu"]) == expected, (component, pod["plan"])
        assert pod["plan"] == pod["annotation"], component
    # compute and the worker had no override in their environment: their plans come from the cgroup.
    assert {c: report["pods"][c]["env_PANORAMA_CPU_LIMIT"] for c in pods.CPU_LIMITS} == {
        "gateway": "0.5",
        "io": "1",
        "compute": None,
        "video-worker": None,
    }
    assert report["pods"]["compute"]["plan"]["workers"] == "2"
    assert report["pods"]["io"]["plan"]["connections"] == "20/90"
    assert report["pods"]["video-worker"]["plan"]["celery"] == "1"
    for name, pod in report["pods"].items():
        security = pod["security"]
        assert security["user"] == "10001:0", name
        assert security["read_only_root"] is True, name
        assert security["changed_outside_mounts"] == [], name
        if name != "migrate":
            assert security["uid"] == "10001", name
            assert security["root_write_refused"] is True, name
    assert report["requests"]["gateway->io->postgres"]["row_in_postgres"] is True
    assert report["requests"]["gateway->compute->pool child"]["jobs_completed_by_pool_children"] == 1
    assert report["requests"]["upload->worker->ffmpeg->download"]["codecs"] == ["h264"]
