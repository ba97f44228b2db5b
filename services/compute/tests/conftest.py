"""Compute fixtures: the app in-process (real forkserver pool) and a real gunicorn compute."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from panorama.compute.app import create_app
from panorama.compute.settings import ComputeSettings
from panorama.testing import ServiceProcess, free_port, gunicorn_command, running

# Large enough that a full run takes seconds: a test that sees the core freed sooner proves the
# task stopped itself at its deadline.
SERVER_MAX_N = 200_000_000
LONG_N = SERVER_MAX_N


@dataclass(frozen=True)
class ComputeServer:
    url: str
    process: ServiceProcess
    span_file: Path

    def pool(self) -> dict:
        return httpx.get(self.url + "/debug/pool", timeout=5).json()

    def wait_idle(self, timeout: float = 15.0) -> dict:
        """Wait until no task is in flight, so one test's leftovers do not fill the next one's pool."""
        deadline = time.monotonic() + timeout
        while True:
            report = self.pool()
            if report["in_flight"] == 0 and report["thread"]["in_flight"] == 0:
                return report
            if time.monotonic() > deadline:
                raise TimeoutError(f"compute still busy after {timeout}s: {report}")
            time.sleep(0.05)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    """The app in this process with a real 2-child forkserver pool; anti-pattern demos off."""
    settings = ComputeSettings(cpu_limit=2, web_concurrency=1, log_level="WARNING")
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture(scope="module")
def compute_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComputeServer]:
    """A real gunicorn compute: one worker, CPU limit 2 (two pool children), spans to a file."""
    tmp = tmp_path_factory.mktemp("compute")
    port = free_port()
    span_file = tmp / "spans.jsonl"
    env = {
        "WEB_CONCURRENCY": "1",
        "PANORAMA_CPU_LIMIT": "2",
        "PANORAMA_MAX_N": str(SERVER_MAX_N),
        "PANORAMA_COMPUTE_SPAN_FILE": str(span_file),
        "PANORAMA_LOG_LEVEL": "WARNING",
    }
    url = f"http://127.0.0.1:{port}"
    cmd = gunicorn_command("panorama.compute.app:create_app()", port)
    with running(cmd, env, tmp / "compute.log", url=url, timeout=60) as process:
        yield ComputeServer(url=url, process=process, span_file=span_file)
