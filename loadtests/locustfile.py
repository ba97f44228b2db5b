"""Mixed traffic through the gateway, for Locust headless runs or its web UI.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 --api-key KEY            # web UI on :8089
    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 --api-key KEY \\
        --headless -u 50 -r 10 -t 1m --weight-read 6 --weight-write 1 --weight-cache 3 \\
        --weight-compute 1 --weight-upload 1

Users (``-u``) and spawn rate (``-r``) are Locust's own options; each task's weight is an option
here (0 switches it off). Every request carries ``X-Panorama-Synthetic: locust`` and W3C baggage
``synthetic=true`` (propagated by OpenTelemetry's default propagators into every downstream span),
so that load-test traffic can be told apart from real traffic in traces and logs.

Failures are what a client would call failures: any status but the one the API promises
(201 for a create, 200 for reads, 202 for an upload), or a body without the promised fields.
"""

from __future__ import annotations

import os
import random
import subprocess
import tempfile
import uuid
from pathlib import Path

from locust import FastHttpUser, between, events
from locust.env import Environment

from panorama.video_worker import tools

SYNTHETIC_HEADERS = {"X-Panorama-Synthetic": "locust", "baggage": "synthetic=true"}
WEIGHTS = {"read": 6, "write": 1, "cache": 3, "compute": 1, "upload": 0}
CACHE_KEYS = 100
_sample_video: bytes | None = None


@events.init_command_line_parser.add_listener
def _arguments(parser) -> None:
    parser.add_argument("--api-key", default=os.environ.get("PANORAMA_API_KEY", ""), help="gateway API key")
    for name, default in WEIGHTS.items():
        parser.add_argument(f"--weight-{name}", type=int, default=default, help=f"relative weight of {name}")


def sample_video() -> bytes:
    """A 2-second test pattern made by ffmpeg once per process (never downloaded)."""
    global _sample_video
    if _sample_video is None:
        with tempfile.TemporaryDirectory(prefix="panorama-locust-") as tmp:
            path = Path(tmp) / "sample.mp4"
            subprocess.run(
                [tools.ffmpeg(), "-v", "error", "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=2",
                 "-pix_fmt", "yuv420p", str(path)],
                check=True,
            )  # fmt: skip
            _sample_video = path.read_bytes()
    return _sample_video


def multipart(field: str, filename: str, content: bytes, content_type: str) -> tuple[bytes, str]:
    """A multipart/form-data body with one file field (FastHttpUser has no ``files=``)."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    ).encode()
    return head + content + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class GatewayUser(FastHttpUser):
    """A client of the public API, with tasks weighted from the command line."""

    wait_time = between(0.05, 0.5)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.headers = {**SYNTHETIC_HEADERS, "X-API-Key": getattr(options, "api_key", "") if options else ""}
        self.user_ids: list[int] = []

    def _expect(self, response, status: int, *fields: str) -> None:
        if response.status_code != status:
            response.failure(f"expected {status}, got {response.status_code}: {response.text[:200]}")
            return
        body = response.json()
        missing = [f for f in fields if f not in body]
        if missing:
            response.failure(f"answer without {missing}: {response.text[:200]}")
        else:
            response.success()

    def read(self) -> None:
        if not self.user_ids:
            self.write()
            return
        user_id = random.choice(self.user_ids)
        with self.client.get(f"/users/{user_id}", headers=self.headers, name="/users/{id}", catch_response=True) as r:
            self._expect(r, 200, "id", "name", "email", "created_at")
        with self.client.get("/users?limit=20&offset=0", headers=self.headers, name="/users", catch_response=True) as r:
            self._expect(r, 200, "items", "limit", "offset", "total")

    def write(self) -> None:
        email = f"load-{uuid.uuid4().hex}@example.com"
        body = {"name": "Load Test", "email": email}
        with self.client.post("/users", json=body, headers=self.headers, catch_response=True) as response:
            self._expect(response, 201, "id", "name", "email", "created_at")
            if response.status_code == 201:
                self.user_ids.append(response.json()["id"])

    def cache(self) -> None:
        key = f"load-{random.randrange(CACHE_KEYS)}"
        value = {"n": random.randrange(1000)}
        with self.client.put(f"/cached/{key}", json={"value": value}, headers=self.headers, name="/cached/{key} PUT",
                             catch_response=True) as r:  # fmt: skip
            self._expect(r, 200, "key", "value", "ttl_s")
        # Another user may have written the key since: any value, but it must be there (TTL 60 s).
        with self.client.get(f"/cached/{key}", headers=self.headers, name="/cached/{key}", catch_response=True) as r:
            self._expect(r, 200, "key", "value")

    def compute(self) -> None:
        n = random.randint(10_000, 200_000)
        with self.client.post("/compute", json={"n": n}, headers=self.headers, catch_response=True) as response:
            self._expect(response, 200, "result")
            if response.status_code == 200 and response.json()["result"] != n * (n - 1) // 2:
                response.failure(f"wrong sum for n={n}")

    def upload(self) -> None:
        body, content_type = multipart("file", "sample.mp4", sample_video(), "video/mp4")
        headers = {**self.headers, "Content-Type": content_type}
        with self.client.post("/upload-video", data=body, headers=headers, catch_response=True) as response:
            self._expect(response, 202, "task_id")
            if response.status_code != 202:
                return
            task_id = response.json()["task_id"]
        with self.client.get(f"/task/{task_id}", headers=self.headers, name="/task/{id}", catch_response=True) as r:
            self._expect(r, 200, "status", "progress")


@events.init.add_listener
def _weighted_tasks(environment: Environment, **_: object) -> None:
    options = environment.parsed_options
    tasks = []
    for name, default in WEIGHTS.items():
        weight = getattr(options, f"weight_{name}", default) if options else default
        tasks += [getattr(GatewayUser, name)] * max(0, weight)
    if not tasks:
        raise ValueError("every --weight-* is 0: give at least one task a weight")
    GatewayUser.tasks = tasks
