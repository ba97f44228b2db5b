"""What an outside probe throws at the public port: every answer a clear 4xx (or a 2xx), never a 5xx.

A real gunicorn gateway in front of the real io (Postgres, Redis). 64 KB of headers: uvicorn's
httptools parser takes them and the request is served (200); the cluster's ingress bounds header
size before the gateway (nginx: 4 x 8 KB by default), so the gateway does not add a limit of its own.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator

import httpx
import pytest

from panorama.testing import free_port, gunicorn_command, running

pytestmark = pytest.mark.slow

KEY = "hostile-input-key-0123456789"
JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def gateway(io_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    root = tmp_path_factory.mktemp("hostile")
    port = free_port()
    env = {
        "PANORAMA_API_KEYS": KEY,
        "PANORAMA_IO_URL": io_url,
        "PANORAMA_COMPUTE_URL": f"http://127.0.0.1:{free_port()}",
        "PANORAMA_STORAGE_DIR": str(root / "storage"),
        "PANORAMA_STATE_DIR": str(root / "state"),
        "PANORAMA_LOG_JSON": "false",
        "PANORAMA_CPU_LIMIT": "1",
        "PANORAMA_AUTH_FAILURE_LIMIT": "5",
    }
    url = f"http://127.0.0.1:{port}"
    with (
        running(
            gunicorn_command("panorama.gateway.app:create_app()", port), env, root / "gw.log", url=url, ready="/healthz"
        ),
        httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=30) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def videos(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    clip = tmp_path_factory.mktemp("hostile-clip") / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x64:rate=10", "-t", "1",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(clip)],
        check=True,
    )  # fmt: skip
    data = clip.read_bytes()
    return {"truncated": data[: len(data) // 3], "random": os.urandom(50_000), "empty-ish": b"\0" * 10}


def no_5xx(response: httpx.Response) -> int:
    assert response.status_code < 500, f"{response.request.method} {response.request.url}: {response.text[:300]}"
    return response.status_code


BAD_BODIES = [
    pytest.param(b'{"value": "\xff\xfe\xfa"}', id="invalid-utf8"),
    pytest.param(b'{"value": "a\\u0000b"}', id="nul-escaped"),
    pytest.param(b'{"value": "a\x00b"}', id="nul-raw"),
    pytest.param(b'{"value": ' + b"[" * 300 + b"]" * 300 + b"}", id="depth-300"),
    pytest.param(b'{"value": ' + b"{" * 5000, id="unterminated-depth"),
    pytest.param(b'{"value": 1e999999}', id="huge-number"),
    pytest.param(b"\x00" * 1000, id="nul-bytes"),
    pytest.param(os.urandom(5000), id="random-bytes"),
    pytest.param(b'{"value": "' + "é".encode() * 600_000 + b'"}', id="over-1mib"),
]


@pytest.mark.parametrize("body", BAD_BODIES)
def test_malformed_json_bodies_are_4xx_and_store_nothing(gateway: httpx.Client, body: bytes) -> None:
    key = f"hostile-{uuid.uuid4().hex[:8]}"
    status = no_5xx(gateway.put(f"/cached/{key}", content=body, headers=JSON))
    if status == 200:  # only the harmless ones may be stored (escaped NUL, 1e999999 is refused as inf)
        assert no_5xx(gateway.get(f"/cached/{key}")) == 200
    else:
        assert status in (400, 413, 422)
        assert gateway.get(f"/cached/{key}").status_code == 404
    user = gateway.post("/users", content=body, headers=JSON)
    assert no_5xx(user) in (400, 413, 422)  # 400: FastAPI's "error parsing the body" (not UTF-8 JSON)


@pytest.mark.parametrize(
    "path",
    [
        "/videos/..%2F..%2Fetc%2Fpasswd", "/task/..%2F..%2Fetc%2Fpasswd", "/videos/%2e%2e/%2e%2e/etc/passwd",
        f"/videos/{uuid.uuid4().hex}%0a", f"/task/{uuid.uuid4().hex}%0a", f"/videos/{uuid.uuid4().hex}%00",
        "/cached/..%2F..%2Fetc", "/cached/a%00b", "/cached/%ff%fe", "/users/%00", "/users/1%0a", "/users/-1",
        "/users/99999999999999999999999", "/proxy?url=file:///etc/passwd", "/proxy?url=http://%00/",
        "/static/../../etc/passwd",
    ],
)  # fmt: skip
def test_traversal_nul_and_newline_in_paths_are_4xx(gateway: httpx.Client, path: str) -> None:
    assert 400 <= no_5xx(gateway.get(path)) < 500


def test_64kb_of_headers_is_not_a_5xx(gateway: httpx.Client) -> None:
    headers = {f"x-padding-{i}": "p" * 1000 for i in range(64)}
    no_5xx(gateway.get("/healthz", headers=headers))
    no_5xx(gateway.get("/cached/some-key", headers={"x-big": "b" * 65_536}))


def test_hostile_headers_are_4xx(gateway: httpx.Client) -> None:
    for value in ("Bearer \udcff".encode("utf-8", "surrogateescape"), b"\xff\xfe", b"k" * 10_000):
        no_5xx(gateway.get("/cached/k", headers={"Authorization": value}))  # type: ignore[dict-item]
    # Content-Length that lies, and a content type with no boundary.
    assert no_5xx(gateway.post("/upload-video", content=b"x", headers={"content-type": "multipart/form-data"})) == 415


@pytest.mark.parametrize("kind", ["truncated", "random", "empty-ish"])
def test_truncated_and_random_bytes_videos_are_refused_or_queued_never_5xx(
    gateway: httpx.Client, videos: dict[str, bytes], kind: str
) -> None:
    response = gateway.post("/upload-video", files={"file": ("clip.mp4", videos[kind], "video/mp4")})
    # The gateway's probe refuses what is not a video (415/422); a truncated one may pass the probe
    # (its header is intact) and then fails in the worker with a reason.
    assert no_5xx(response) in (202, 413, 415, 422)


def test_garbage_multipart_is_4xx(gateway: httpx.Client) -> None:
    boundary = "xyz"
    for body in (b"--xyz\r\nnonsense", os.urandom(2000), b"--xyz--\r\n", b"--xyz\r\n\r\n\r\n--xyz--"):
        response = gateway.post(
            "/upload-video", content=body, headers={"content-type": f"multipart/form-data; boundary={boundary}"}
        )
        assert 400 <= no_5xx(response) < 500


def test_wrong_keys_end_in_429_not_5xx(gateway: httpx.Client) -> None:
    codes = [no_5xx(gateway.get("/cached/k", headers={"X-API-Key": f"wrong-{i:020d}"})) for i in range(8)]
    assert set(codes) == {401, 429}  # 5 wrong keys a minute from this client (earlier tests may have spent some)
    assert codes[-3:] == [429] * 3
