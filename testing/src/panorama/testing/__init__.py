"""Helpers for the services' tests: free ports and real service processes.

Imported by tests only; nothing at run time depends on it.
"""

from __future__ import annotations

import contextlib
import gzip
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], object],
    timeout: float,
    what: str,
    *,
    interval: float = 0.05,
    ignore: tuple[type[BaseException], ...] = (),
) -> float:
    """Seconds until ``predicate()`` held; AssertionError naming ``what`` after ``timeout``.

    Exceptions of the ``ignore`` types count as "not yet" (a server still starting refuses calls).
    """
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        try:
            if predicate():
                return time.monotonic() - start
        except ignore:
            pass
        time.sleep(interval)
    raise AssertionError(f"{what} not within {timeout}s")


def wait_port(port: int, timeout: float = 10.0) -> None:
    """Return once something accepts TCP connections on 127.0.0.1:``port``."""

    def listening() -> bool:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True

    wait_until(listening, timeout, f"a listener on 127.0.0.1:{port}", ignore=(OSError,))


def wait_http_ok(url: str, timeout: float, *, interval: float = 0.2, alive: Callable[[], None] | None = None) -> None:
    """Return once ``GET url`` answers 200; TimeoutError with the last answer after ``timeout``.

    ``alive`` is called before each try and raises if the server died (no point waiting on).
    """
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if alive is not None:
            alive()
        try:
            response = httpx.get(url, timeout=min(3.0, max(interval, 2.0)))
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:500]}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(interval)
    raise TimeoutError(f"{url} not ready after {timeout:g}s: {last}")


def metric_sum(exposition: str, sample: str, **labels: str) -> float:
    """The sum of the samples named ``sample`` whose labels include ``labels``, in a ``/metrics`` text:
    ``metric_sum(text, "panorama_cache_loads_total", cause="miss")``."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        point.value
        for family in text_string_to_metric_families(exposition)
        for point in family.samples
        if point.name == sample and labels.items() <= point.labels.items()
    )


def gunicorn_command(app: str, port: int, *, workers: int | None = 1) -> list[str]:
    cmd = [
        sys.executable, "-m", "gunicorn", "-c", "python:panorama.core.gunicorn_conf",
        "--bind", f"127.0.0.1:{port}", app,
    ]  # fmt: skip
    if workers is not None:
        cmd[5:5] = ["--workers", str(workers)]
    return cmd


def celery_worker_command(name: str) -> list[str]:
    """The video worker as the tests run it: node ``<name>-<random>@<host>``, alone (no mingle, no gossip)."""
    return [
        sys.executable, "-m", "celery", "-A", "panorama.video_worker.celery_app", "worker",
        "--loglevel", "INFO", "--hostname", f"{name}-{uuid.uuid4().hex[:6]}@%h", "--without-mingle",
        "--without-gossip",
    ]  # fmt: skip


def wait_worker_ready(worker: ServiceProcess, timeout: float = 30.0) -> None:
    """Until a started Celery worker logs that it is ready; its output in the failure if it exits first."""
    deadline = time.monotonic() + timeout
    while " ready." not in worker.output:
        assert worker.proc is not None
        assert worker.proc.poll() is None, worker.output[-3000:]
        assert time.monotonic() < deadline, f"worker not ready:\n{worker.output[-3000:]}"
        time.sleep(0.1)


class ServiceProcess:
    """A real process (gunicorn, celery) started for a test, with its output kept in a file."""

    def __init__(self, cmd: Sequence[str], env: Mapping[str, str], log_path: Path, *, url: str | None = None) -> None:
        self.cmd = list(cmd)
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.url = url
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return self

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, path: str = "/readyz", timeout: float = 30.0) -> None:
        assert self.url, "wait_ready needs a url"
        try:
            wait_http_ok(self.url + path, timeout, alive=self._check_alive)
        except TimeoutError as exc:
            raise TimeoutError(f"{exc}\n{self.output[-4000:]}") from None

    def _check_alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.cmd[:4]} exited with {self.proc.returncode}:\n{self.output[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(10)

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(
    cmd: Sequence[str],
    env: Mapping[str, str],
    log_path: Path,
    *,
    url: str | None = None,
    ready: str | None = "/readyz",
    timeout: float = 30.0,
) -> Iterator[ServiceProcess]:
    """Start a process, wait for ``url + ready`` to answer 200, stop it on exit (SIGTERM, then SIGKILL)."""
    service = ServiceProcess(cmd, env, log_path, url=url).start()
    try:
        if url and ready:
            service.wait_ready(ready, timeout)
        yield service
    finally:
        service.stop()


# --- an OTLP/HTTP traces receiver, for tests that assert on the spans real processes export.


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    kind: int
    attributes: dict[str, object]
    events: tuple[tuple[str, dict[str, object]], ...]


def _any_value(value: object) -> object:
    which = value.WhichOneof("value")  # type: ignore[attr-defined]
    if which == "array_value":
        return [_any_value(v) for v in value.array_value.values]  # type: ignore[attr-defined]
    return getattr(value, which) if which else None


def _attributes(items: Iterable[object]) -> dict[str, object]:
    return {item.key: _any_value(item.value) for item in items}  # type: ignore[attr-defined]


def decode_otlp_traces(body: bytes) -> list[ReceivedSpan]:
    """The spans in one OTLP/HTTP protobuf export request."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest.FromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        service = str(_attributes(resource_spans.resource.attributes).get("service.name", ""))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(
                    ReceivedSpan(
                        service=service,
                        name=span.name,
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex() or None,
                        kind=span.kind,
                        attributes=_attributes(span.attributes),
                        events=tuple((event.name, _attributes(event.attributes)) for event in span.events),
                    )
                )
    return spans


class OtlpReceiver:
    """``POST /v1/traces`` on 127.0.0.1 in a thread; set ``OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint``.

    ``decode=False`` only counts requests and bytes (a benchmark's collector must cost nothing);
    ``defer=True`` keeps each body and decodes it when ``received()`` is called, so a benchmark proves
    its spans without the decoding taking CPU from the load generator during the measured rounds.
    """

    def __init__(self, *, decode: bool = True, defer: bool = False) -> None:
        self.spans: list[ReceivedSpan] = []
        self.requests = 0
        self.bytes = 0
        self.decode = decode
        self.defer = defer
        self._pending: list[bytes] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            # Keep-alive, as a collector's OTLP/HTTP receiver does: HTTP/1.0 would close the connection
            # after every export and make each exporter open a new one (a cost users do not pay).
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                spans: list[ReceivedSpan] = []
                gzipped = self.headers.get("content-encoding") == "gzip"
                raw = gzip.decompress(body) if gzipped and receiver.decode else body
                if receiver.decode and not receiver.defer:
                    spans = decode_otlp_traces(raw)
                with receiver._lock:
                    receiver.spans.extend(spans)
                    if receiver.decode and receiver.defer:
                        receiver._pending.append(raw)
                    receiver.requests += 1
                    receiver.bytes += len(body)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # quiet: the spans are the output
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="otlp-receiver", daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def received(self) -> list[ReceivedSpan]:
        with self._lock:
            pending, self._pending = self._pending, []
            for raw in pending:
                self.spans.extend(decode_otlp_traces(raw))
            return list(self.spans)

    def wait_for(self, predicate: Callable[[list[ReceivedSpan]], bool], timeout: float = 10.0) -> list[ReceivedSpan]:
        """The spans so far once ``predicate(spans)`` holds; AssertionError with them after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            spans = self.received()
            if predicate(spans):
                return spans
            if time.monotonic() > deadline:
                raise AssertionError(f"spans never matched within {timeout}s: {[(s.service, s.name) for s in spans]}")
            time.sleep(0.05)

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class ThrowawayPostgres:
    """A Postgres cluster of a test's own (initdb + pg_ctl) on a free port: the shared server is never
    stopped. It lives outside pytest's tmp_path, which is private to root while the server may run as
    the postgres user, and a short path keeps the socket under its 107-byte limit."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="panorama-pg-"))
        self.root.chmod(0o755)
        self.data = self.root / "data"
        self.port = free_port()
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
        # initdb refuses to run as root; the cluster then runs as the postgres user.
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> None:
        subprocess.run([*self.prefix, *args], check=True, capture_output=True, timeout=60)

    def init(self) -> ThrowawayPostgres:
        if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
            raise RuntimeError("initdb/pg_ctl are not on PATH")
        if self.prefix:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")
        return self

    def start(self) -> ThrowawayPostgres:
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", opts, "-l", str(self.root / "log"), "-w", "-t", "30", "start")
        return self

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


class ThrowawayRedis:
    """A redis-server of a test's own on a free port, without persistence: the shared one is never stopped.

    Use it as a context manager: the process is reaped on every way out, a failed start included.
    An unreaped ``Popen`` is otherwise collected later, in whichever test runs then, as an
    unraisable "subprocess is still running" ResourceWarning (an error under ``-W error``).
    """

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ThrowawayRedis:
        if shutil.which("redis-server") is None:
            raise RuntimeError("redis-server is not on PATH")
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen(cmd, cwd=self.workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"redis-server on port {self.port} exited with {self.proc.returncode}")
                if self._pong():
                    return self
                time.sleep(0.05)
            raise TimeoutError(f"redis-server on port {self.port} did not start")
        except BaseException:
            self.kill()
            raise

    def _pong(self) -> bool:
        # A PING, not a bare connect: whatever else holds the port must not pass for our server.
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
        return False

    def kill(self) -> None:
        """SIGKILL (after SIGCONT, in case a test froze it) and reap; safe to call more than once."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
                self.proc.kill()
        self.proc.wait(10)

    def __enter__(self) -> ThrowawayRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()


@contextlib.contextmanager
def throwaway_database(admin_dsn: str, prefix: str = "panorama_test") -> Iterator[str]:
    """The name of a fresh database on ``admin_dsn``'s server (the shared one is fine), dropped on exit."""
    import psycopg  # dev dependency; only the helpers that touch Postgres need it

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def ffmpeg_running_for(job_id: str) -> bool:
    """Whether an ffmpeg process with ``job_id`` in its arguments runs on this machine (a video job mid-transcode)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"ffmpeg") and any(job_id.encode() in a for a in argv):
            return True
    return False


def make_clip(
    path: Path,
    seconds: float = 2.0,
    *,
    size: str = "320x240",
    rate: int = 25,
    audio: bool = False,
    faststart: bool = True,
    source: str = "testsrc",
) -> Path:
    """An H.264 MP4 test clip made by ffmpeg's ``testsrc`` (and a ``sine`` tone with ``audio``)."""
    from panorama.video_worker import tools  # the same ffmpeg the worker would run (system or wheel)

    cmd = [tools.ffmpeg(), "-v", "error", "-y", "-f", "lavfi", "-i", f"{source}=size={size}:rate={rate}"]
    if audio:
        cmd += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
    cmd += ["-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    if audio:
        cmd += ["-c:a", "aac"]
    if faststart:
        cmd += ["-movflags", "+faststart"]
    subprocess.run([*cmd, "-f", "mp4", str(path)], check=True, timeout=120)
    return path


@contextlib.contextmanager
def throwaway_rabbitmq_vhost() -> Iterator[str | None]:
    """``amqp://`` URL of a new vhost on the machine's RabbitMQ (deleted on exit); None without rabbitmqctl.

    The shared server is never reconfigured: only a vhost of the test's own comes and goes.
    """
    if shutil.which("rabbitmqctl") is None:
        yield None
        return
    vhost = f"panorama-test-{uuid.uuid4().hex[:8]}"

    def ctl(*args: str) -> int:
        return subprocess.run(["rabbitmqctl", *args], capture_output=True, timeout=60, check=False).returncode

    if ctl("add_vhost", vhost) != 0:
        yield None
        return
    try:
        ctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        yield f"{os.environ.get('PANORAMA_TEST_RABBITMQ', 'amqp://guest:guest@127.0.0.1:5672')}/{vhost}"
    finally:
        ctl("delete_vhost", vhost)
