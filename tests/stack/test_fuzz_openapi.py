"""schemathesis against the OpenAPI of gateway, io and compute, each a real gunicorn process.

Every documented operation gets generated requests (valid and invalid); each answer must be no
5xx and must match the schema the service publishes (status code, content type, body). The
timing demos (``/demo/*``, ``/safe``) are left out: their 504 at the budget is the behaviour, and
it is tested where it belongs (test_safe.py, test_demo.py, test_faults_stack.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi import checks as openapi_checks

from panorama.core.contract import DEADLINE_HEADER
from panorama.core.internal import INTERNAL_TOKEN_HEADER
from panorama.io import migrate
from panorama.testing import free_port, gunicorn_command, running

pytestmark = pytest.mark.slow

API_KEY = "fuzz-suite-key-0123456789"
TOKEN = "fuzz-internal-token-0123456789"
# Per operation (io twice, compute six times: fewer operations); at least 300 cases per service.
EXAMPLES = 30
EXCLUDED = r"^/(demo|safe|debug/locks)"
CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_schema_conformance,
]
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None
)


@pytest.fixture(scope="module")
def services(tmp_path_factory: pytest.TempPathFactory, database_url: str, redis_url: str) -> Iterator[dict[str, str]]:
    """io, compute and the gateway in front of them, on Postgres and Redis, one worker each."""
    migrate.upgrade(database_url)
    logs = Path(tmp_path_factory.mktemp("fuzz"))
    ports = {name: free_port() for name in ("io", "compute", "gateway")}
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    common = {"PANORAMA_LOG_JSON": "false", "PANORAMA_CPU_LIMIT": "1", "PANORAMA_INTERNAL_TOKEN": TOKEN}
    envs = {
        "io": {**common, "PANORAMA_DATABASE_URL": database_url, "PANORAMA_REDIS_URL": redis_url},
        "compute": {**common, "PANORAMA_MAX_N": "2000000"},
        "gateway": {
            **common, "PANORAMA_API_KEYS": API_KEY, "PANORAMA_IO_URL": urls["io"],
            "PANORAMA_COMPUTE_URL": urls["compute"], "PANORAMA_REDIS_URL": redis_url, "PANORAMA_RATE_LIMIT": "off",
            "PANORAMA_STORAGE_DIR": str(logs / "storage"), "PANORAMA_STATE_DIR": str(logs / "state"),
        },
    }  # fmt: skip

    def start(name: str) -> object:
        cmd = gunicorn_command(f"panorama.{name}.app:create_app()", ports[name])
        return running(cmd, envs[name], logs / f"{name}.log", url=urls[name])

    with start("io"), start("compute"), start("gateway"):
        yield urls


def run_cases(
    operation: schemathesis.APIOperation, url: str, headers: dict[str, str], seen: list, examples: int
) -> None:
    @given(case=operation.as_strategy())
    @settings(FUZZ, max_examples=examples)
    def check(case: schemathesis.Case) -> None:
        seen.append(case)
        deadline = (case.headers or {}).get(DEADLINE_HEADER)
        with contextlib.suppress(TypeError, ValueError):
            if 0 < float(deadline) < 1:
                # A deadline that runs out before the work starts is compute's documented 504; keep
                # fuzzing the header's validation, not the caller's impatience.
                case.headers[DEADLINE_HEADER] = "30"
        response = case.call(base_url=url, headers=headers, timeout=30)
        case.validate_response(response, checks=CHECKS)

    check()


def fuzz(url: str, headers: dict[str, str], examples: int = EXAMPLES) -> dict[str, int]:
    """Every operation of the service's schema, ``EXAMPLES`` generated cases each; cases run per operation."""
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", headers={INTERNAL_TOKEN_HEADER: TOKEN})
    ran: dict[str, int] = {}
    for result in schema.exclude(path_regex=EXCLUDED).get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        seen: list[schemathesis.Case] = []
        run_cases(operation, url, headers, seen, examples)
        ran[label] = len(seen)
    return ran


def test_gateway_answers_every_generated_request_within_its_schema(services: dict[str, str]) -> None:
    ran = fuzz(services["gateway"], {"X-API-Key": API_KEY})
    assert sum(ran.values()) >= 300, ran
    assert "POST /users" in ran


def test_io_answers_every_generated_request_within_its_schema(services: dict[str, str]) -> None:
    ran = fuzz(services["io"], {INTERNAL_TOKEN_HEADER: TOKEN}, examples=2 * EXAMPLES)
    assert sum(ran.values()) >= 300, ran
    assert "GET /proxy" in ran


def test_compute_answers_every_generated_request_within_its_schema(services: dict[str, str]) -> None:
    ran = fuzz(services["compute"], {INTERNAL_TOKEN_HEADER: TOKEN}, examples=6 * EXAMPLES)
    assert sum(ran.values()) >= 300, ran
    assert "POST /compute" in ran
