"""Upload pace on a real gunicorn gateway: a trickling or endless upload gets 408 and leaves no file."""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from panorama.testing import free_port, gunicorn_command, running

API_KEY = "upload-pace-key-0123456789"
BOUNDARY = "paceboundary0123"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    root = tmp_path_factory.mktemp("pace")
    port = free_port()
    env = {
        "PANORAMA_STORAGE_DIR": str(root / "storage"),
        "PANORAMA_STATE_DIR": str(root / "state"),
        "PANORAMA_API_KEYS": API_KEY,
        "PANORAMA_CPU_LIMIT": "1",
        "PANORAMA_LOG_JSON": "false",
        "PANORAMA_UPLOAD_TIMEOUT": "3",
        "PANORAMA_UPLOAD_MIN_RATE": "32768",
        "PANORAMA_UPLOAD_RATE_GRACE": "1",
    }
    cmd = gunicorn_command("panorama.gateway.app:create_app()", port)
    with running(cmd, env, root / "gateway.log", url=f"http://127.0.0.1:{port}", ready="/healthz"):
        yield port, root / "storage"


def trickle(port: int, chunk: int, every: float, total: int, give_up: float) -> tuple[bytes, float, int]:
    """Send a multipart upload of ``total`` bytes, ``chunk`` bytes every ``every`` s; the answer, when, bytes sent."""
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="v.mp4"\r\n'
        "Content-Type: video/mp4\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    request = (
        f"POST /upload-video HTTP/1.1\r\nHost: gateway\r\nX-API-Key: {API_KEY}\r\n"
        f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n"
        f"Content-Length: {len(head) + total + len(tail)}\r\n\r\n"
    ).encode()
    started = time.monotonic()
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=give_up) as sock:
        sock.sendall(request + head)
        sock.setblocking(False)
        answer = b""
        while time.monotonic() - started < give_up:
            try:
                data = sock.recv(65536)
                if not data:
                    break
                answer += data
                if b"\r\n\r\n" in answer:
                    break
            except BlockingIOError:
                pass
            if sent < total:
                with contextlib.suppress(BlockingIOError, BrokenPipeError, ConnectionResetError):
                    sent += sock.send(b"\0" * min(chunk, total - sent))
            time.sleep(every)
    return answer, time.monotonic() - started, sent


def test_a_trickling_upload_is_408_after_the_grace_period_and_leaves_no_file(gateway: tuple[int, Path]) -> None:
    port, storage = gateway
    # 800 KB at ~16 KiB/s: under the 32 KiB/s minimum, so refused soon after the 1 s grace.
    answer, elapsed, sent = trickle(port, 4096, 0.25, 800_000, give_up=20)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert elapsed < 4
    assert sent < 100_000
    time.sleep(0.2)
    assert not list((storage / "tmp").glob("*.part"))
    assert not list((storage / "uploads").iterdir())


def test_an_upload_fast_enough_but_endless_hits_the_total_deadline(gateway: tuple[int, Path]) -> None:
    port, storage = gateway
    # ~80 KiB/s is fast enough, but 50 MB would take far longer than the 3 s deadline.
    answer, elapsed, _ = trickle(port, 8192, 0.1, 50_000_000, give_up=20)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert 2.5 < elapsed < 6
    time.sleep(0.2)
    assert not list((storage / "tmp").glob("*.part"))
