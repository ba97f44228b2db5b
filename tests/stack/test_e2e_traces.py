"""One trace per request across real processes: gateway, io, compute and the video worker.

Every service runs as in production (gunicorn; a Celery prefork worker; ffmpeg; Postgres; Redis)
and exports OTLP/HTTP to a receiver inside this test. The assertions are on the trace trees: who
is whose parent, in which service, with which attributes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from panorama.io import migrate
from panorama.testing import (
    OtlpReceiver,
    ReceivedSpan,
    ServiceProcess,
    celery_worker_command,
    free_port,
    gunicorn_command,
    make_clip,
    running,
    wait_worker_ready,
)

pytestmark = pytest.mark.slow

API_KEY = "e2e-traces-key-0123456789"
SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5  # OTLP SpanKind values
PROCESS_VIDEO = "panorama.video_worker.process_video"


@dataclass
class Suite:
    gateway: str
    io: str
    compute: str
    receiver: OtlpReceiver
    worker: ServiceProcess
    worker_metrics: str

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.gateway, headers={"X-API-Key": API_KEY, **headers}, timeout=60.0)

    def trace(
        self, trace_id: str, done: Callable[[list[ReceivedSpan]], bool], timeout: float = 20.0
    ) -> list[ReceivedSpan]:
        """The spans of one trace, once ``done(spans)`` holds and they form one tree.

        Each process exports on its own schedule: a span can arrive before its parent does.
        """

        def complete(spans: list[ReceivedSpan]) -> bool:
            ids = {s.span_id for s in spans}
            return done(spans) and len([s for s in spans if s.parent_span_id not in ids]) == 1

        spans = self.receiver.wait_for(lambda all_: complete([s for s in all_ if s.trace_id == trace_id]), timeout)
        return [s for s in spans if s.trace_id == trace_id]


def traceparent() -> tuple[str, dict[str, str]]:
    """A fresh sampled trace id and the header that starts the gateway's trace under it."""
    trace_id = uuid.uuid4().hex
    return trace_id, {"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01"}


def one(spans: list[ReceivedSpan], service: str, predicate: Callable[[ReceivedSpan], bool]) -> ReceivedSpan:
    found = [s for s in spans if s.service == service and predicate(s)]
    assert len(found) == 1, f"expected one {service} span, got {[(s.name, s.kind) for s in found]} in {names(spans)}"
    return found[0]


def names(spans: list[ReceivedSpan]) -> list[tuple[str, str]]:
    return [(s.service, s.name) for s in spans]


def parent_of(span: ReceivedSpan, spans: list[ReceivedSpan]) -> ReceivedSpan:
    parents = [s for s in spans if s.span_id == span.parent_span_id]
    assert parents, f"parent of {span.service}/{span.name} not recorded; trace: {names(spans)}"
    return parents[0]


def ancestors(span: ReceivedSpan, spans: list[ReceivedSpan]) -> list[ReceivedSpan]:
    by_id = {s.span_id: s for s in spans}
    chain = []
    while span.parent_span_id in by_id:
        span = by_id[span.parent_span_id]
        chain.append(span)
    return chain


def is_server(name: str) -> Callable[[ReceivedSpan], bool]:
    return lambda s: s.kind == SERVER and s.name == name


def is_http_client(span: ReceivedSpan) -> bool:
    return span.kind == CLIENT and "http.method" in span.attributes


def is_sql(span: ReceivedSpan) -> bool:
    return span.attributes.get("db.system") == "postgresql"


def is_redis(span: ReceivedSpan) -> bool:
    return span.attributes.get("db.system") == "redis"


def has(service: str, predicate: Callable[[ReceivedSpan], bool]) -> Callable[[list[ReceivedSpan]], bool]:
    return lambda spans: any(s.service == service and predicate(s) for s in spans)


def all_of(*checks: Callable[[list[ReceivedSpan]], bool]) -> Callable[[list[ReceivedSpan]], bool]:
    return lambda spans: all(check(spans) for check in checks)


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory, database_url: str, redis_url: str) -> Iterator[Suite]:
    root = tmp_path_factory.mktemp("e2e-traces")
    migrate.upgrade(database_url)
    ports = {name: free_port() for name in ("gateway", "io", "compute")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    metrics_port = free_port()
    with OtlpReceiver() as receiver:
        env = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: spans reach the receiver within the test's patience
            "PANORAMA_DATABASE_URL": database_url,
            "PANORAMA_REDIS_URL": redis_url,
            "PANORAMA_API_KEYS": API_KEY,
            "PANORAMA_IO_URL": urls["io"],
            "PANORAMA_COMPUTE_URL": urls["compute"],
            "PANORAMA_STORAGE_DIR": str(root / "storage"),
            "PANORAMA_STATE_DIR": str(root / "state"),
            "PANORAMA_DEMO_ANTIPATTERNS": "true",
            "PANORAMA_CPU_LIMIT": "1",
            "PANORAMA_LOG_JSON": "true",
            "PANORAMA_CELERY_CONCURRENCY": "1",
            "PANORAMA_VIDEO_PRESET": "ultrafast",
            "PANORAMA_WORKER_METRICS_PORT": str(metrics_port),
        }
        services = [
            running(gunicorn_command(f"panorama.{name}.app:create_app()", ports[name]), env, root / f"{name}.log",
                    url=urls[name], ready="/readyz" if name != "gateway" else "/healthz", timeout=60)
            for name in ("io", "compute", "gateway")
        ]  # fmt: skip
        worker_cmd = celery_worker_command("traces")
        with services[0], services[1], services[2], ServiceProcess(worker_cmd, env, root / "worker.log") as worker:
            wait_worker_ready(worker, 30)
            yield Suite(
                urls["gateway"], urls["io"], urls["compute"], receiver, worker, f"http://127.0.0.1:{metrics_port}"
            )


def test_post_users_is_gateway_then_io_then_an_sql_insert(suite: Suite) -> None:
    trace_id, headers = traceparent()
    with suite.client(**headers) as client:
        response = client.post("/users", json={"name": "Ada", "email": f"ada-{uuid.uuid4().hex[:8]}@example.com"})
    assert response.status_code == 201, response.text
    insert = lambda s: is_sql(s) and s.name.startswith("INSERT")  # noqa: E731
    spans = suite.trace(trace_id, all_of(has("gateway", is_server("POST /users")), has("io", insert)))

    gateway = one(spans, "gateway", is_server("POST /users"))
    upstream = one(spans, "gateway", is_http_client)
    io = one(spans, "io", is_server("POST /users"))
    sql = one(spans, "io", insert)
    assert parent_of(upstream, spans) == gateway
    assert parent_of(io, spans) == upstream  # traceparent crossed the aiohttp call
    assert io in ancestors(sql, spans)
    assert "INSERT INTO users" in str(sql.attributes.get("db.statement"))


def test_second_get_user_is_a_redis_hit_without_sql(suite: Suite) -> None:
    with suite.client() as client:
        created = client.post("/users", json={"name": "Grace", "email": f"grace-{uuid.uuid4().hex[:8]}@example.com"})
    user_id = created.json()["id"]
    traces = []
    for expected in ("miss", "hit"):
        trace_id, headers = traceparent()
        with suite.client(**headers) as client:
            response = client.get(f"/users/{user_id}")
        assert response.status_code == 200, response.text
        assert response.headers.get("x-cache") == expected
        # The gateway's server span ends last: once it is here, every span of that request is.
        route = is_server("GET /users/{user_id}")
        traces.append(suite.trace(trace_id, all_of(has("gateway", route), has("io", route))))
    miss, hit = traces

    assert [s.name for s in miss if is_sql(s)], f"the miss read no row: {names(miss)}"
    assert not [s for s in hit if is_sql(s)], f"the hit still ran SQL: {names(hit)}"
    io = one(hit, "io", is_server("GET /users/{user_id}"))
    redis_get = one(hit, "io", lambda s: is_redis(s) and s.name == "GET")
    assert io in ancestors(redis_get, hit)
    assert parent_of(io, hit).service == "gateway"


def test_compute_runs_under_the_gateway_trace_in_a_pool_child(suite: Suite) -> None:
    trace_id, headers = traceparent()
    with suite.client(**headers) as client:
        response = client.post("/compute", json={"n": 10_000})
    assert response.json() == {"result": sum(range(10_000))}
    spans = suite.trace(
        trace_id,
        all_of(has("compute", lambda s: s.name == "compute.sum_below"), has("gateway", is_server("POST /compute"))),
    )

    child = one(spans, "compute", lambda s: s.name == "compute.sum_below")
    compute_server = one(spans, "compute", is_server("POST /compute"))
    gateway = one(spans, "gateway", is_server("POST /compute"))
    chain = ancestors(child, spans)
    assert compute_server in chain
    assert gateway in chain
    assert parent_of(compute_server, spans).kind == CLIENT
    assert parent_of(parent_of(compute_server, spans), spans) == gateway
    assert child.attributes["compute.n"] == 10_000
    # Recorded in a process-pool child, not in the web worker that serves compute's requests.
    assert child.attributes["process.pid"] in httpx.get(f"{suite.compute}/debug/pool", timeout=5).json()["pids"]


def test_upload_trace_runs_from_the_gateway_through_celery_to_ffmpeg(suite: Suite, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4")
    trace_id, headers = traceparent()
    with suite.client(**headers) as client, clip.open("rb") as body:
        response = client.post("/upload-video", files={"file": ("clip.mp4", body, "video/mp4")})
    assert response.status_code == 202, response.text
    run_name = f"run/{PROCESS_VIDEO}"
    spans = suite.trace(trace_id, has("video-worker", lambda s: s.name == run_name), timeout=60)

    gateway = one(spans, "gateway", is_server("POST /upload-video"))
    publish = one(spans, "gateway", lambda s: s.kind == PRODUCER)
    run = one(spans, "video-worker", lambda s: s.name == run_name)
    transcode = one(spans, "video-worker", lambda s: s.name == "ffmpeg transcode")
    assert publish.name == f"apply_async/{PROCESS_VIDEO}"
    assert gateway in ancestors(publish, spans)
    assert run.kind == CONSUMER
    assert parent_of(run, spans) == publish  # the context crossed the broker
    assert parent_of(transcode, spans) == run
    facts = transcode.attributes
    assert facts["process.exit.code"] == 0
    assert facts["ffmpeg.preset"] == "ultrafast"
    assert facts["ffmpeg.input.size_bytes"] == clip.stat().st_size
    assert abs(float(facts["ffmpeg.input.duration_s"]) - 2.0) < 0.2  # type: ignore[arg-type]
    assert facts["ffmpeg.output.codec"] == "h264"
    assert abs(float(facts["ffmpeg.output.duration_s"]) - 2.0) < 0.2  # type: ignore[arg-type]
    assert int(facts["ffmpeg.output.size_bytes"]) > 0  # type: ignore[call-overload]


def test_blocking_demo_on_io_is_reported_on_its_request_span(suite: Suite) -> None:
    trace_id, headers = traceparent()
    response = httpx.get(f"{suite.io}/demo/blocking", params={"delay": 0.5}, headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    spans = suite.trace(trace_id, has("io", is_server("GET /demo/blocking")))

    server = one(spans, "io", is_server("GET /demo/blocking"))
    reports = [attrs for name, attrs in server.events if name == "panorama.event_loop_blocked"]
    assert reports, f"no blocking report on the request span: {server.events}"
    assert reports[0]["code.function"] == "demo_blocking"
    assert str(reports[0]["code.filepath"]).endswith("panorama/io/routes/demo.py")


def test_synthetic_requests_are_marked_on_the_gateway_server_span(suite: Suite) -> None:
    marked, headers = traceparent()
    with suite.client(**headers, **{"X-Panorama-Synthetic": "1"}) as client:
        assert client.get("/users", params={"limit": 1}).status_code == 200
    plain, headers = traceparent()
    with suite.client(**headers) as client:
        assert client.get("/users", params={"limit": 1}).status_code == 200
    synthetic = one(suite.trace(marked, has("gateway", is_server("GET /users"))), "gateway", is_server("GET /users"))
    normal = one(suite.trace(plain, has("gateway", is_server("GET /users"))), "gateway", is_server("GET /users"))
    assert synthetic.attributes.get("panorama.synthetic") is True
    assert "panorama.synthetic" not in normal.attributes


def test_sync_engine_statements_are_spans_too(suite: Suite) -> None:
    trace_id, headers = traceparent()
    with suite.client(**headers) as client:
        assert client.get("/demo/sync", params={"delay": 0}).status_code == 200
    route = is_server("GET /demo/sync")
    spans = suite.trace(trace_id, all_of(has("gateway", route), has("io", route)))

    io = one(spans, "io", route)
    sleep = one(spans, "io", lambda s: is_sql(s) and "pg_sleep" in str(s.attributes.get("db.statement")))
    assert io in ancestors(sleep, spans)  # psycopg in a worker thread, still under the request


def test_worker_metrics_show_task_durations_and_queue_depth(suite: Suite, tmp_path: Path) -> None:
    clip = make_clip(tmp_path / "clip.mp4")
    with suite.client() as client, clip.open("rb") as body:
        task_id = client.post("/upload-video", files={"file": ("clip.mp4", body, "video/mp4")}).json()["task_id"]
        deadline = time.monotonic() + 60
        while client.get(f"/task/{task_id}").json()["status"] not in ("SUCCESS", "FAILURE"):
            assert time.monotonic() < deadline, "the job never finished"
            time.sleep(0.2)
    text = httpx.get(f"{suite.worker_metrics}/metrics", timeout=10).text
    count = f'panorama_celery_task_duration_seconds_count{{state="SUCCESS",task="{PROCESS_VIDEO}"}}'
    samples = dict(line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#"))
    assert float(samples[count]) >= 1, text
    assert samples['panorama_celery_queue_depth{queue="video"}'] == "0.0"
