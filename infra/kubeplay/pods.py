"""The rendered suite under ``podman kube play``: play, readiness, requests, plans, security.

Rendered for external Postgres (a throwaway database on this host's server) and Redis (its own
database number), with different CPU limits per component, transformed as infra/kubeplay/transform.py
lists, then played: the PVC, the migration (as a Pod, waited for), then the ConfigMaps, Secrets and
Deployments. Checked: every container passes its own rendered readiness probe; a request crosses
gateway -> io -> Postgres, one gateway -> compute -> a pool child, one upload -> worker -> ffmpeg ->
download, with the API key of the rendered Secret; each pod's plan (``/debug/plan``, the worker's
logged plan) matches the CFS quota of its own cgroup; every container runs as the non-root user
with a read-only root and changed nothing outside its mounted volumes.
"""

from __future__ import annotations

import json
import re
import secrets
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import httpx
import psycopg
import redis

from infra import acceptance
from infra.deploy import chart
from infra.kubeplay import engine, transform
from panorama.testing import make_clip, throwaway_database

Object = dict[str, Any]
# Different limits per component; compute and the worker size themselves from their cgroup.
CPU_LIMITS = {"gateway": "500m", "io": "1", "compute": "1500m", "video-worker": "750m"}
VALUES_KEY = {"gateway": "gateway", "io": "io", "compute": "compute", "video-worker": "videoWorker"}
HTTP = ("gateway", "io", "compute")
INTERNAL_TOKEN_HEADER = "x-panorama-internal-token"  # noqa: S105 - a header name
PLAN_LINE = re.compile(r"video worker plan (\{.*\})")


def cpu_quantity(text: str) -> float:
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def kubeplay_values(database: str, redis_db: int, tag: str, api_key: str, token: str) -> dict[str, Any]:
    """kind's values, with this host's Postgres and Redis as the external servers."""
    overrides: dict[str, Any] = {
        "apiKeys": {"keys": api_key},
        "internalToken": {"token": token},
        "database": {"name": database, "username": "postgres", "password": secrets.token_hex(12)},
        "postgresql": {"enabled": False},
        "externalDatabase": {"host": "127.0.0.1", "port": 5432},
        "redis": {"enabled": False},
        "externalRedis": {"url": f"redis://127.0.0.1:6379/{redis_db}"},
        "jaeger": {"enabled": False},
        "image": {"tag": tag, "pullPolicy": "IfNotPresent"},
    }
    for component, cpu in CPU_LIMITS.items():
        overrides[VALUES_KEY[component]] = {"resources": {"limits": {"cpu": cpu}}}
    return chart.merge(chart.load_values([chart.CI_VALUES_DIR / "kind-values.yaml"]), overrides)


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def by_component(rendered: chart.Rendered, kind: str) -> dict[str, Object]:
    return {transform.component(o): o for o in rendered.of_kind(kind)}


def first_container(obj: Object) -> Object:
    spec = obj["spec"]["template"]["spec"] if obj["kind"] != "Pod" else obj["spec"]
    return spec["containers"][0]


def http_port(obj: Object) -> int:
    ports = {p["name"]: p["containerPort"] for p in first_container(obj).get("ports", [])}
    return int(ports["http"])


def probe_passes(rendered_obj: Object, container: str) -> tuple[bool, str]:
    """Run the rendered readinessProbe once, as the kubelet would (named ports from the rendered object)."""
    probe = first_container(rendered_obj)["readinessProbe"]
    timeout = probe.get("timeoutSeconds", 1)
    if "httpGet" in probe:
        get = probe["httpGet"]
        port = get["port"]
        if isinstance(port, str):
            ports = {p["name"]: p["containerPort"] for p in first_container(rendered_obj).get("ports", [])}
            port = ports[port]
        url = f"http://127.0.0.1:{port}{get.get('path', '/')}"
        try:
            response = httpx.get(url, timeout=timeout)
        except httpx.HTTPError as exc:
            return False, f"GET {url}: {exc!r}"
        return 200 <= response.status_code < 400, f"GET {url}: {response.status_code} {response.text[:200]}"
    result = engine.exec_(container, *probe["exec"]["command"], timeout=timeout + 10)
    return result.returncode == 0, f"exec: {result.returncode} {result.stderr[-300:]}"


def wait_for(check: Callable[[], tuple[bool, str]], timeout: float, what: str, interval: float = 1.0) -> float:
    started = time.monotonic()
    last = ""
    while time.monotonic() - started < timeout:
        ok, last = check()
        if ok:
            return time.monotonic() - started
        time.sleep(interval)
    raise AssertionError(f"{what} not ready after {timeout:.0f}s: {last}")


def plan_annotation(obj: Object) -> dict[str, str]:
    """``panorama.dev/plan`` (``cpu=1 workers=1 ... connections=20/90``) as a dict."""
    text = obj["spec"]["template"]["metadata"]["annotations"]["panorama.dev/plan"]
    return dict(item.split("=", 1) for item in text.split())


def plan_summary(plan: dict[str, Any]) -> dict[str, str]:
    """A served plan in the annotation's terms."""
    return {
        "cpu": f"{plan['cpu_limit']:g}",
        "workers": str(plan["workers"]),
        "process_pool": str(plan["process_pool_size"]),
        "celery": str(plan["celery_concurrency"]),
        "thread_tokens": str(plan["thread_tokens"]),
        "connections": f"{plan['connections_total']}/{plan['connection_budget']}",
    }


def cgroup_seen(container: str) -> dict[str, Any]:
    """The CFS quota podman applied (inspect) and what the container reads in its own cgroup files."""
    host_config = engine.inspect(container)["HostConfig"]
    quota, period = host_config["CpuQuota"], host_config["CpuPeriod"] or 100000
    inside = engine.exec_(
        container, "sh", "-c",
        "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us 2>/dev/null"
        " || cat /sys/fs/cgroup/cpu.max",
    ).stdout.split()  # fmt: skip
    return {
        "applied": quota / period if quota > 0 else None,
        "files": " ".join(inside),
        "read": int(inside[0]) / int(inside[1]) if inside and inside[0].lstrip("-").isdigit() else None,
    }


def env_value(container: str, name: str) -> str | None:
    """An environment variable of the running container (None when unset)."""
    result = engine.exec_(container, "printenv", name)
    return result.stdout.strip() if result.returncode == 0 else None


def security_check(container: str) -> dict[str, Any]:
    """The user the container runs as, its read-only root, and what it changed outside its mounts.

    A running container is also asked directly: ``id -u`` and a write to / that must be refused.
    """
    info = engine.inspect(container)
    mounts = {m["Destination"] for m in info["Mounts"]}
    changed = engine.diff(container)
    outside = [p for p in changed if not any(p == m or p.startswith(m + "/") or m.startswith(p + "/") for m in mounts)]
    report = {
        "user": info["Config"]["User"],
        "read_only_root": info["HostConfig"]["ReadonlyRootfs"],
        "changed_outside_mounts": outside,
        "mounts": sorted(mounts),
    }
    if info["State"]["Status"] == "running":
        report["uid"] = engine.exec_(container, "id", "-u").stdout.strip()
        report["root_write_refused"] = (
            engine.exec_(container, "sh", "-c", "echo x > /kubeplay-write-test").returncode != 0
        )
    return report


def sample_video(directory: Path) -> Path:
    # The container acceptance's sample: a 2 s H.264 clip made by the resolved ffmpeg.
    return make_clip(directory / "sample.mp4", 2.0, rate=15, faststart=False)


def run(tag: str = "ci", redis_db: int = 15, timeout: float = 240.0, echo: Callable[[str], None] = print) -> dict:
    """Play the rendered suite and check it; raises AssertionError (with the pods' logs) on failure."""
    started = time.monotonic()
    report: dict[str, Any] = {"podman": engine.version(), "pods": {}, "transformations": []}
    release = f"panorama-kp{uuid.uuid4().hex[:4]}"
    api_key, token = secrets.token_hex(16), secrets.token_hex(16)
    with ExitStack() as stack:
        database = stack.enter_context(throwaway_database(acceptance.PG_ADMIN, prefix="panorama_kubeplay"))
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="kubeplay-")))
        rendered = chart.render(kubeplay_values(database, redis_db, tag, api_key, token), release=release)
        deployments = by_component(rendered, "Deployment")
        ports = host_ports(deployments)
        objects = transform.apply(rendered.objects, transform_context(rendered, workdir))
        report["transformations"] = [t.name for t in transform.TRANSFORMATIONS]
        report["release"] = release

        pvcs = [o for o in objects if o["kind"] == "PersistentVolumeClaim"]
        migration = [o for o in objects if o["kind"] == "Pod"]
        rest = [o for o in objects if o["kind"] in ("ConfigMap", "Secret", "Deployment")]
        for secret in (o["metadata"]["name"] for o in rest if o["kind"] == "Secret"):
            stack.callback(engine.remove_secret, secret)
        for pvc in pvcs:
            stack.callback(engine.remove_volume, pvc["metadata"]["name"])

        t0 = time.monotonic()
        play_volumes(
            pvcs, workdir, group=deployments["gateway"]["spec"]["template"]["spec"]["securityContext"]["runAsGroup"]
        )
        migrate = play_migration(migration, workdir, stack, timeout)
        report["seconds"] = {"migration": round(time.monotonic() - t0, 1)}
        report["pods"]["migrate"] = {"container": migrate, "exit_code": 0}

        t1 = time.monotonic()
        suite_file = engine.play(rest, workdir, "suite")
        stack.callback(engine.down, suite_file)
        names = {c: engine.container_name(deployments[c], first_container(deployments[c])["name"]) for c in deployments}
        try:
            for component, obj in deployments.items():
                ready_s = wait_ready(component, obj, names[component], timeout)
                report["pods"][component] = {"container": names[component], "ready_after_s": round(ready_s, 1)}
            report["seconds"]["all_ready"] = round(time.monotonic() - t1, 1)
            report["requests"] = requests(rendered, ports, database, api_key, token, workdir, timeout)
            for component, obj in deployments.items():
                report["pods"][component].update(
                    pod_checks(rendered, component, obj, names[component], ports, api_key, token)
                )
            report["pods"]["migrate"]["security"] = security_check(migrate)
        except AssertionError as exc:
            logs = "\n".join(f"--- {c}\n{engine.logs(n, tail=40)}" for c, n in names.items())
            raise AssertionError(f"{exc}\n{logs}") from None
        finally:
            with suppress(redis.RedisError):
                redis.Redis.from_url(f"redis://127.0.0.1:6379/{redis_db}").flushdb()
    report["seconds"]["total"] = round(time.monotonic() - started, 1)
    return report


def host_ports(deployments: dict[str, Object]) -> dict[str, int]:
    """Each HTTP component's port, which its pod binds on the host network: all must be free here."""
    ports = {c: http_port(deployments[c]) for c in HTTP}
    taken = [p for p in ports.values() if not port_free(p)]
    assert not taken, f"ports {taken} are taken on this host; the pods bind the chart's ports on the host network"
    return ports


def transform_context(rendered: chart.Rendered, workdir: Path) -> transform.Context:
    """A hosts file naming every rendered Service on 127.0.0.1 (the pods share the host network)."""
    services = tuple(sorted(o["metadata"]["name"] for o in rendered.of_kind("Service")))
    hosts = workdir / "hosts"
    hosts.write_text("127.0.0.1 localhost\n" + "".join(f"127.0.0.1 {name}\n" for name in services))
    hosts.chmod(0o644)
    return transform.Context(hosts, services, free_port())


def play_volumes(pvcs: list[Object], workdir: Path, group: int) -> None:
    """Step 1: the PVCs, made group-writable for the pods' group as fsGroup would."""
    if not pvcs:
        return
    engine.play(pvcs, workdir, "pvc")
    for pvc in pvcs:
        mountpoint = engine.volume_mountpoint(pvc["metadata"]["name"])
        subprocess.run(["chown", f"0:{group}", str(mountpoint)], check=True)
        mountpoint.chmod(0o2775)


def play_migration(migration: list[Object], workdir: Path, stack: ExitStack, timeout: float) -> str:
    """Step 2: the migration Pod, waited for as Helm runs its hook before the release is used; its container."""
    migrate_file = engine.play(migration, workdir, "migrate")
    stack.callback(engine.down, migrate_file)
    migrate = engine.container_name(migration[0], first_container(migration[0])["name"])

    def migrated() -> tuple[bool, str]:
        current = engine.state(migrate)
        return current["Status"] == "exited", current["Status"]

    wait_for(migrated, timeout, "the migration Pod")
    exit_code = engine.state(migrate)["ExitCode"]
    assert exit_code == 0, f"migration exited {exit_code}:\n{engine.logs(migrate)}"
    return migrate


def wait_ready(component: str, obj: Object, container: str, timeout: float) -> float:
    """Step 3: seconds until the container passes its own rendered readiness probe."""
    return wait_for(lambda: probe_passes(obj, container), timeout, f"{component}'s readiness probe", interval=2)


def pod_checks(
    rendered: chart.Rendered,
    component: str,
    obj: Object,
    container: str,
    ports: dict[str, int],
    api_key: str,
    token: str,
) -> dict[str, Any]:
    """A running component's plan beside its cgroup, its CPU limit's source, and its security."""
    plan = served_plan(component, container, ports, api_key, token)
    cgroup = cgroup_seen(container)
    configmap = by_component(rendered, "ConfigMap")[component]
    checks = {
        "cpu_limit": CPU_LIMITS[component],
        "cgroup": cgroup,
        "cpu_from": "cgroup" if component in transform.CGROUP_READERS else "PANORAMA_CPU_LIMIT",
        "env_PANORAMA_CPU_LIMIT": env_value(container, "PANORAMA_CPU_LIMIT"),
        "plan": plan_summary(plan),
        "annotation": plan_annotation(obj),
    }
    assert "PANORAMA_CPU_LIMIT" in configmap["data"], f"{component}: the chart sets no CPU limit env"
    checks["security"] = security_check(container)
    return checks


def served_plan(component: str, container: str, ports: dict[str, int], api_key: str, token: str) -> dict[str, Any]:
    if component == "video-worker":
        found = PLAN_LINE.findall(engine.logs(container))
        assert found, f"the video worker logged no plan:\n{engine.logs(container, tail=30)}"
        return json.loads(found[-1])
    if component == "gateway":  # public: no /debug routes; each worker logs its plan at start
        logged = [json.loads(line) for line in engine.logs(container).splitlines() if line.startswith("{")]
        plans = [r["plan"] for r in logged if r.get("message") == "gateway starting" and "plan" in r]
        assert plans, f"the gateway logged no plan:\n{engine.logs(container, tail=30)}"
        assert all(p == plans[0] for p in plans), plans
        return plans[0]
    headers = {"X-API-Key": api_key, INTERNAL_TOKEN_HEADER: token}
    response = httpx.get(f"http://127.0.0.1:{ports[component]}/debug/plan", headers=headers, timeout=10)
    assert response.status_code == 200, f"{component} /debug/plan: {response.status_code} {response.text}"
    return response.json()


def pool_completed(url: str, headers: dict[str, str], workers: int) -> dict[tuple[int, ...], int]:
    """Jobs completed by each gunicorn worker's process pool (keyed by its children's pids): the
    workers share the port, so /debug/pool is asked until every worker has answered."""
    seen: dict[tuple[int, ...], int] = {}
    for _ in range(200):
        report = httpx.get(url, headers=headers, timeout=10).json()
        seen[tuple(sorted(report["pids"]))] = report["completed"]
        if len(seen) == workers:
            return seen
    raise AssertionError(f"only {len(seen)} of {workers} compute workers answered /debug/pool: {seen}")


def requests(
    rendered: chart.Rendered,
    ports: dict[str, int],
    database: str,
    api_key: str,
    token: str,
    workdir: Path,
    timeout: float,
) -> dict[str, Any]:
    """The three paths through the suite, through the gateway with the rendered Secret's API key."""
    secret = next(o for o in rendered.of_kind("Secret") if "api-keys" in o.get("stringData", {}))
    key = secret["stringData"]["api-keys"].split(",")[0]
    assert key == api_key
    with httpx.Client(base_url=f"http://127.0.0.1:{ports['gateway']}", headers={"X-API-Key": key}, timeout=60) as gw:
        return {
            "gateway->io->postgres": user_in_postgres(gw, database),
            "gateway->compute->pool child": computed_by_a_pool_child(gw, rendered, ports, token),
            "upload->worker->ffmpeg->download": video_transcoded(gw, workdir, timeout),
        }


def user_in_postgres(gw: httpx.Client, database: str) -> dict[str, Any]:
    """A user created and read through the gateway is a row in the release's database."""
    email = f"ada-{uuid.uuid4().hex[:6]}@example.com"
    created = gw.post("/users", json={"name": "Ada", "email": email})
    assert created.status_code == 201, created.text
    fetched = gw.get(f"/users/{created.json()['id']}")
    assert fetched.status_code == 200, fetched.text
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{database}") as conn:
        row = conn.execute("SELECT name FROM users WHERE email = %s", (email,)).fetchone()
    assert row == ("Ada",), row
    return {"user_id": created.json()["id"], "row_in_postgres": True}


def computed_by_a_pool_child(
    gw: httpx.Client, rendered: chart.Rendered, ports: dict[str, int], token: str
) -> dict[str, Any]:
    """A /compute through the gateway is one job more completed by compute's process-pool children."""
    internal = {INTERNAL_TOKEN_HEADER: token}
    pool_url = f"http://127.0.0.1:{ports['compute']}/debug/pool"
    workers = int(plan_annotation(by_component(rendered, "Deployment")["compute"])["workers"])
    before = pool_completed(pool_url, internal, workers)
    computed = gw.post("/compute", json={"n": 1000})
    assert computed.status_code == 200, computed.text
    assert computed.json()["result"] == 499500
    after = pool_completed(pool_url, internal, workers)
    completed = sum(after.values()) - sum(before.values())
    assert completed == 1, (before, after)
    return {
        "result": 499500,
        "jobs_completed_by_pool_children": completed,
        "children": sorted(pid for pids in after for pid in pids),
    }


def video_transcoded(gw: httpx.Client, workdir: Path, timeout: float) -> dict[str, Any]:
    """An upload through the gateway is transcoded by the worker and downloads as a playable file."""
    with sample_video(workdir).open("rb") as video:
        upload = gw.post("/upload-video", files={"file": ("sample.mp4", video, "video/mp4")})
    assert upload.status_code == 202, upload.text
    task_id = upload.json()["task_id"]
    deadline = time.monotonic() + timeout
    while True:
        status = gw.get(f"/task/{task_id}").json()
        if status["status"] in ("SUCCESS", "FAILURE"):
            break
        assert time.monotonic() < deadline, f"transcode still {status} after {timeout:.0f}s"
        time.sleep(1)
    assert status["status"] == "SUCCESS", status
    video_id = status["result"].get("video_id", task_id)
    download = gw.get(f"/videos/{video_id}")
    assert download.status_code == 200, download.text[:300]
    mp4 = workdir / "download.mp4"
    mp4.write_bytes(download.content)
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", str(mp4)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {
        "task": task_id,
        "bytes": len(download.content),
        "codecs": probe.stdout.split(),
        "result": status["result"],
    }
