"""`make up`: run gateway, io, compute and the video worker as local processes (honcho).

With no ``PANORAMA_DATABASE_URL`` / ``PANORAMA_REDIS_URL`` the services use embedded defaults
(SQLite, the filesystem Celery transport, an in-process cache) under ``.panorama/``. An API key is
generated once into ``.panorama/api-key`` unless ``PANORAMA_API_KEYS`` is set. Ctrl-C stops all.
"""

from __future__ import annotations

import os
import secrets
import shlex
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import honcho.manager
from dotenv import dotenv_values
from honcho.manager import Manager

from panorama.core.contract import PORTS
from panorama.core.settings import env_file
from panorama.video_worker import tools

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # infra.local.* from the checkout
from infra.local import live, prometheus

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".panorama"
PY = shlex.quote(sys.executable)
HTTP_SERVICES = PORTS
WORKER_METRICS_PORT = 9100  # the worker's default PANORAMA_WORKER_METRICS_PORT
PROMETHEUS_LISTEN = "127.0.0.1:9090"
# Ctrl-C: honcho sends each process group SIGTERM, then SIGKILL after this many seconds (its own
# default, 5, is too short). The video worker's pool children die with the group's SIGTERM, and the
# job one was running goes back to the queue only when the worker's main process closes its broker
# channel, about 10 s later with make up's filesystem broker (kombu polls it; billiard waits a
# second for each child): killed before that, the job was lost (a transcode stopped at 58 % never
# ran again). gunicorn's graceful timeout (PANORAMA_GRACEFUL_TIMEOUT, 25 s) fits in it too.
STOP_WAIT = 30


def environment() -> dict[str, str]:
    """This environment over the checkout's ``.env`` (or ``PANORAMA_ENV_FILE``): the services get both,
    including what their settings do not read themselves (``OTEL_*``, ``PANORAMA_FFMPEG``)."""
    path = env_file()
    from_file = dotenv_values(path) if path is not None and path.is_file() else {}
    return {**{k: v for k, v in from_file.items() if v is not None}, **os.environ}


def api_key(environ: dict[str, str]) -> str:
    if environ.get("PANORAMA_API_KEYS"):
        return environ["PANORAMA_API_KEYS"].split(",")[0]
    path = STATE / "api-key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(24) + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def listen_host() -> str:
    """Where make up's services listen, their /metrics ports included (``PANORAMA_HOST``)."""
    return os.environ.get("PANORAMA_HOST", "127.0.0.1")


def gunicorn(service: str, port: int) -> str:
    host = listen_host()
    return (
        f"{PY} -m gunicorn -c python:panorama.core.gunicorn_conf --bind {host}:{port} "
        f"'panorama.{service}.app:create_app()'"
    )


def announce_when_ready(key: str, extras: list[str], timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    pending = dict(HTTP_SERVICES)
    while pending and time.monotonic() < deadline:
        for name, port in list(pending.items()):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        del pending[name]
            except OSError:
                pass
        time.sleep(0.5)
    if pending:
        print(f"\n!! not ready after {timeout:.0f}s: {', '.join(pending)} (see the log above)\n", flush=True)
        return
    print(
        "\n"
        "Panorama is up.\n"
        f"  gateway  http://127.0.0.1:{PORTS['gateway']}   (docs: http://127.0.0.1:{PORTS['gateway']}/docs)\n"
        f"  io       http://127.0.0.1:{PORTS['io']}   (internal: /debug/pool, /debug/loop)\n"
        f"  compute  http://127.0.0.1:{PORTS['compute']}   (internal: /debug/pool, /debug/loop)\n"
        + "".join(f"  {line}\n" for line in extras)
        + f"  API key  {key}\n"
        f"  try:     curl -H 'X-API-Key: {key}' -X POST localhost:8000/compute -H 'content-type: application/json' "
        "-d '{\"n\": 1000000}'\n"
        "Ctrl-C stops everything.\n",
        flush=True,
    )


JAEGER_OTLP = ("127.0.0.1", 4318)
JAEGER_HINT = (
    "traces: no collector configured and none on 127.0.0.1:4318, so none are exported. To view them:\n"
    "  podman run --rm -p 16686:16686 -p 4318:4318 jaegertracing/jaeger:latest   (then UI at http://127.0.0.1:16686)\n"
    "  and restart `make up`; or set OTEL_EXPORTER_OTLP_ENDPOINT to your collector."
)


def local_tracing(environ: dict[str, str]) -> dict[str, str]:
    """Send traces to a local Jaeger (OTLP/HTTP on :4318) when one runs and nothing else is configured."""
    if any(environ.get(name) for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")):
        return {}
    try:
        socket.create_connection(JAEGER_OTLP, timeout=0.3).close()
    except OSError:
        print(JAEGER_HINT, flush=True)
        return {}
    endpoint = f"http://{JAEGER_OTLP[0]}:{JAEGER_OTLP[1]}"
    print(f"traces: exporting to {endpoint} (Jaeger UI: http://127.0.0.1:16686)", flush=True)
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint}


def service_env(base: dict[str, str], gateway_metrics_port: str) -> dict[str, dict[str, str]]:
    """What each HTTP service gets beyond the common environment ``base``.

    Each service's /metrics adds up all its workers, as in the chart (``PROMETHEUS_MULTIPROC_DIR``,
    cleared by the master at start): without it a scrape of io's or compute's port answers for
    whichever of the two workers took it, and every counter seems to jump back and forth. The
    gateway's master serves its /metrics on a port of its own, never the public one, on the host
    the services listen on (the setting's default, every interface, is the chart's).
    """
    own = {name: {"PROMETHEUS_MULTIPROC_DIR": str(STATE / "metrics" / name)} for name in HTTP_SERVICES}
    own["gateway"]["PANORAMA_METRICS_PORT"] = gateway_metrics_port
    own["gateway"]["PANORAMA_METRICS_ADDR"] = base.get("PANORAMA_METRICS_ADDR", listen_host())
    return own


def video_tools(environ: dict[str, str]) -> bool:
    """The worker's own check, before anything starts: it would refuse to start without ffmpeg/ffprobe."""
    try:
        found = tools.resolve(environ)
    except tools.ToolsMissing as exc:
        print(f"\n!! {exc}\nNothing started.\n", file=sys.stderr, flush=True)
        return False
    for tool in found.values():
        print(f"{tool.name} {tool.version}: {tool.path} (from {tool.source})", flush=True)
    return True


def main() -> int:
    base = environment()
    if not video_tools(base):
        return tools.EXIT_NO_TOOLS
    STATE.mkdir(exist_ok=True)
    key = api_key(base)
    env = {
        **base,
        "PANORAMA_API_KEYS": base.get("PANORAMA_API_KEYS", key),
        "PANORAMA_STORAGE_DIR": base.get("PANORAMA_STORAGE_DIR", str(STATE / "storage")),
        "PANORAMA_STATE_DIR": base.get("PANORAMA_STATE_DIR", str(STATE)),
        "PANORAMA_LOG_JSON": base.get("PANORAMA_LOG_JSON", "false"),
        # The worker's /metrics (port 9100) listens where the services do, not on every interface.
        "PANORAMA_WORKER_METRICS_ADDR": base.get("PANORAMA_WORKER_METRICS_ADDR", listen_host()),
        "PYTHONUNBUFFERED": "1",
    }
    env.update(local_tracing(env))
    # Migrations run once, before io starts: io's workers never migrate (they would race).
    migrated = subprocess.run([sys.executable, "-m", "panorama.io.migrate"], cwd=ROOT, env=env, check=False)
    if migrated.returncode != 0:
        print(f"\n!! io migrations failed (exit {migrated.returncode}); not starting\n", flush=True)
        return migrated.returncode
    honcho.manager.KILL_WAIT = STOP_WAIT  # a module setting, read by Manager.loop each time round
    manager = Manager()
    # The gateway's /metrics is never on its public port: its gunicorn master serves it here
    # (the worker's own /metrics keeps its default 9100).
    gateway_metrics_port = os.environ.get("PANORAMA_GATEWAY_METRICS_PORT", "9101")
    own_env = service_env(base, gateway_metrics_port)
    for service, port in HTTP_SERVICES.items():
        manager.add_process(service, gunicorn(service, port), cwd=str(ROOT), env={**env, **own_env.get(service, {})})
    manager.add_process(
        "video-worker",
        f"{PY} -m celery -A panorama.video_worker.celery_app worker --loglevel INFO --hostname video@%h",
        cwd=str(ROOT),
        env=env,
    )
    extras = []
    if prometheus.binary():
        # The same scrape targets and alert rules as monitoring/prometheus.yml says.
        data = STATE / "prometheus"
        cmd = prometheus.command(prometheus.LOCAL_CONFIG, data, PROMETHEUS_LISTEN)
        manager.add_process("prometheus", shlex.join(cmd), cwd=str(ROOT), env=env)
        extras.append(f"metrics  http://{PROMETHEUS_LISTEN}   (Prometheus: alerts at /alerts, rules at /rules)")
    else:
        print(prometheus.HINT, flush=True)
    live_port = live.port_from_env()
    if live_port:
        urls = {name: f"http://127.0.0.1:{port}" for name, port in HTTP_SERVICES.items()}
        urls["video-worker"] = f"http://127.0.0.1:{WORKER_METRICS_PORT}"
        sources = live.Sources(
            urls,
            api_key=env["PANORAMA_API_KEYS"].split(",")[0],
            internal_token=env.get("PANORAMA_INTERNAL_TOKEN") or None,
            storage_dir=Path(env["PANORAMA_STORAGE_DIR"]),
            metrics_urls={"gateway": f"http://127.0.0.1:{gateway_metrics_port}"},
        )
        try:
            server = live.serve(sources, live_port)
            extras.append(f"live     http://127.0.0.1:{server.server_address[1]}   (every pool, refreshed each second)")
        except OSError as exc:
            print(f"live page: port {live_port} unavailable ({exc}); set PANORAMA_LIVE_PORT", flush=True)
    threading.Thread(target=announce_when_ready, args=(key, extras), daemon=True).start()
    manager.loop()
    return manager.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
