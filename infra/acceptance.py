"""Container acceptance: the built images, run with exactly the command and env the chart renders.

    python infra/acceptance.py [--tag ci] [--port-offset 0]      (after `make images`)

The four containers run on the host network with the chart's service names (panorama-io,
panorama-postgresql, ...) added as hosts pointing to 127.0.0.1, against the machine's Postgres
(a throwaway database) and Redis (its own database number), with the chart's security settings
(read-only root, tmpfs /tmp, no capabilities, non-root user). The io migration runs first, like the
chart's hook Job. Then every container must pass its readiness probe, and requests through the
gateway must reach io (users), compute (the process pool) and the worker (an upload that transcodes).

``--port-offset`` shifts the chart's fixed ports (8000-8002) consistently in commands and URLs, for
machines where those ports are taken; CI runs with 0, i.e. the chart's commands unchanged.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

from panorama.core.contract import PORTS
from panorama.testing import make_clip, throwaway_database, wait_http_ok

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from infra import images
from infra.deploy import chart

HTTP_PORTS = PORTS
HOSTS = ("panorama-gateway", "panorama-io", "panorama-compute", "panorama-postgresql", "panorama-redis")
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
API_KEY = "acceptance-key-0123456789abcdef"


def podman(*args: str, check: bool = True, capture: bool = True) -> subprocess.CompletedProcess[str]:
    """The container tool `make images` built with (podman or docker, see infra/images.py)."""
    return subprocess.run([images.container_tool(), *args], capture_output=capture, text=True, check=check)


def acceptance_values(database: str, redis_db: int) -> dict[str, Any]:
    """kind's values, pointed at this machine's servers (under the chart's own host names)."""
    return chart.merge(
        chart.load_values([chart.CI_VALUES_DIR / "kind-values.yaml"]),
        {
            "apiKeys": {"keys": API_KEY},
            "database": {"name": database, "username": "postgres", "password": "acceptance-password"},
            "redis": {"enabled": False},
            "externalRedis": {"url": f"redis://panorama-redis:6379/{redis_db}"},
            "jaeger": {"enabled": False},
        },
    )


def shift_ports(text: str, offset: int) -> str:
    for port in HTTP_PORTS.values():
        text = text.replace(f":{port}", f":{port + offset}")
    return text


@dataclass(frozen=True)
class Workload:
    command: list[str]
    env: dict[str, str]
    scratch: list[str]  # mount paths of the pod's emptyDir volumes: tmpfs in the container


def workload(rendered: chart.Rendered, kind: str, name: str, offset: int) -> Workload:
    obj = rendered.get(kind, name)
    pod = obj["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {k: shift_ports(v, offset) for k, v in chart.container_env(rendered, obj).items()}
    empty_dirs = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
    scratch = [m["mountPath"] for m in container.get("volumeMounts", []) if m["name"] in empty_dirs]
    return Workload([shift_ports(c, offset) for c in container["command"]], env, scratch)


def probe_command(rendered: chart.Rendered, name: str, probe: str) -> list[str]:
    container = rendered.get("Deployment", name)["spec"]["template"]["spec"]["containers"][0]
    return container[probe]["exec"]["command"]


def run_args(name: str, image: str, work: Workload, storage: Path | None) -> list[str]:
    """`podman run` flags that mirror the pod: host names, env, read-only root, its emptyDirs as tmpfs,
    no capabilities."""
    command, env = work.command, work.env
    args = ["--name", name, "--network", "host", "--read-only", "--cap-drop", "ALL"]
    for path in work.scratch or ["/tmp"]:  # noqa: S108 - the pod's own scratch dirs
        args += ["--tmpfs", f"{path}:rw,mode=1777"]
    args += ["--security-opt", "no-new-privileges", "--user", "10001:0"]
    for host in HOSTS:
        args += ["--add-host", f"{host}:127.0.0.1"]
    for key, value in env.items():
        args += ["-e", f"{key}={value}"]
    if storage is not None:
        args += ["-v", f"{storage}:/data/videos"]
    return [*args, "--entrypoint", command[0], image, *command[1:]]


class AcceptanceFailed(Exception):
    """A step of the acceptance did not hold; the message names it (and carries the containers' logs)."""


def check(condition: object, message: str) -> None:
    if not condition:
        raise AcceptanceFailed(message)


def wait_ready(url: str, timeout: float) -> None:
    try:
        wait_http_ok(url, timeout, interval=1.0)
    except TimeoutError as exc:
        raise AcceptanceFailed(str(exc)) from None


def container_logs(name: str, lines: int = 40) -> str:
    result = podman("logs", "--tail", str(lines), name, check=False)
    return result.stdout + result.stderr


def image_tools(image: str) -> dict[str, bool]:
    """Which of a compiler, ffmpeg and ffprobe the image carries."""
    found = {}
    for tool in ("gcc", "cc", "ffmpeg", "ffprobe"):
        result = podman("run", "--rm", "--entrypoint", "sh", image, "-c", f"command -v {tool}", check=False)
        found[tool] = result.returncode == 0
    return found


def wait_for(predicate: Callable[[], bool], timeout: float, message: str, interval: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        check(time.monotonic() < deadline, message)
        time.sleep(interval)


def image_report(tag: str) -> dict[str, Any]:
    """Size and tools of each image: no compiler or ffmpeg in the HTTP images, ffmpeg in the worker's."""
    report: dict[str, Any] = {}
    for component in images.SERVICES:
        image = images.image_name(component, tag)
        report[component] = {"size_mb": round(images.size_bytes(component, tag) / 1e6, 1), **image_tools(image)}
    for component in HTTP_PORTS:
        carried = [tool for tool, present in report[component].items() if present and tool != "size_mb"]
        check(carried == [], f"the {component} image carries {carried}")
    check(report["video-worker"]["ffmpeg"], "the video worker image has no ffmpeg")
    return report


def start_release(
    rendered: chart.Rendered, tag: str, storage: Path, suffix: str, port_offset: int, started: list[str]
) -> None:
    """Run the migration Job, then each Deployment's container as the chart renders it (named in ``started``)."""
    work = workload(rendered, "Job", "panorama-migrate", port_offset)
    image = images.image_name("io", tag)
    migrate = podman("run", "--rm", *run_args(f"accept-migrate-{suffix}", image, work, None)[2:], check=False)
    check(migrate.returncode == 0, f"migration failed:\n{migrate.stdout}\n{migrate.stderr}")
    for component in ("io", "compute", "gateway", "video-worker"):
        work = workload(rendered, "Deployment", f"panorama-{component}", port_offset)
        name = f"accept-{component}-{suffix}"
        mount = storage if component in ("gateway", "video-worker") else None
        podman("run", "-d", *run_args(name, images.image_name(component, tag), work, mount))
        started.append(name)


def wait_release_ready(rendered: chart.Rendered, suffix: str, port_offset: int, timeout: float) -> None:
    for port in HTTP_PORTS.values():
        wait_ready(f"http://127.0.0.1:{port + port_offset}/readyz", timeout)
    ping = probe_command(rendered, "panorama-video-worker", "readinessProbe")
    worker = f"accept-video-worker-{suffix}"
    answered = lambda: podman("exec", worker, *ping, check=False).returncode == 0  # noqa: E731
    wait_for(answered, timeout, "video worker never answered its readiness probe", 2)


def exercise_gateway(url: str, workdir: Path, suffix: str, timeout: float) -> dict[str, Any]:
    """A user, a computation and a transcode through the gateway; the transcode's final status."""
    with httpx.Client(base_url=url, headers={"X-API-Key": API_KEY}, timeout=30) as client:
        created = client.post("/users", json={"name": "Ada", "email": f"ada-{suffix}@example.com"})
        check(created.status_code == 201, created.text)
        fetched = client.get(f"/users/{created.json()['id']}")
        check(fetched.status_code == 200, fetched.text)
        computed = client.post("/compute", json={"n": 1000})
        check(computed.status_code == 200, computed.text)
        check(computed.json()["result"] == 499500, computed.text)
        clip = make_clip(workdir / "sample.mp4", 2.0, rate=15, faststart=False)
        with clip.open("rb") as video:
            upload = client.post("/upload-video", files={"file": ("sample.mp4", video, "video/mp4")})
        check(upload.status_code == 202, upload.text)
        task_id = upload.json()["task_id"]
        status: dict[str, Any] = {}

        def finished() -> bool:
            status.update(client.get(f"/task/{task_id}").json())
            return status["status"] in ("SUCCESS", "FAILURE")

        wait_for(finished, timeout, f"transcode not finished after {timeout:.0f}s", 1)
        check(status["status"] == "SUCCESS", str(status))
        return status


def run(tag: str = "ci", port_offset: int = 0, redis_db: int = 15, timeout: float = 120.0) -> dict[str, Any]:
    """Run the acceptance; raises AcceptanceFailed with the failing step and the containers' logs."""
    report: dict[str, Any] = {"images": image_report(tag)}
    suffix = uuid.uuid4().hex[:6]
    started: list[str] = []
    with throwaway_database(PG_ADMIN, prefix="panorama_accept") as database, tempfile.TemporaryDirectory() as tmp:
        storage = Path(tmp) / "videos"
        storage.mkdir()
        subprocess.run(["chown", "10001:0", str(storage)], check=True)
        rendered = chart.render(acceptance_values(database, redis_db))
        try:
            start_release(rendered, tag, storage, suffix, port_offset, started)
            wait_release_ready(rendered, suffix, port_offset, timeout)
            report["ready"] = True
            gateway = f"http://127.0.0.1:{PORTS['gateway'] + port_offset}"
            report["transcode"] = exercise_gateway(gateway, Path(tmp), suffix, timeout)
        except AcceptanceFailed as exc:
            logs = "\n".join(f"--- {n}\n{container_logs(n)}" for n in started)
            raise AcceptanceFailed(f"{exc}\n{logs}") from None
        finally:
            for name in started:
                podman("rm", "-f", "-t", "5", name, check=False)
            with suppress(redis.RedisError):
                redis.Redis.from_url(f"redis://127.0.0.1:6379/{redis_db}").flushdb()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tag", default="ci")
    parser.add_argument("--port-offset", type=int, default=0)
    parser.add_argument("--redis-db", type=int, default=15)
    args = parser.parse_args(argv)
    try:
        report = run(args.tag, args.port_offset, args.redis_db)
    except AcceptanceFailed as exc:
        print(f"acceptance FAILED: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2))
    print("acceptance passed: " + shlex.join(["images", *report["images"]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
