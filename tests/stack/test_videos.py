"""The video pipeline end to end: a real gateway (gunicorn), a real Celery worker, Redis and ffmpeg.

Test videos are made by ffmpeg's ``testsrc`` here, never downloaded. The worker encodes with
``-preset veryslow`` so a few seconds of small video take long enough to watch progress rise and
to kill a worker in the middle of a transcode.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis

from panorama.testing import (
    ServiceProcess,
    celery_worker_command,
    free_port,
    gunicorn_command,
    running,
    wait_worker_ready,
)
from panorama.testing import make_clip as clip

pytestmark = pytest.mark.slow

API_KEY = "video-tests-key-0123456789"
MAX_UPLOAD = 2_000_000
CLIP_SECONDS = 4.0
WORKER_ENV = {
    "PANORAMA_VIDEO_PRESET": "veryslow",
    "PANORAMA_CELERY_CONCURRENCY": "1",
    # Short limits so that a job lost with a SIGKILLed worker comes back within the test.
    "PANORAMA_VIDEO_SOFT_TIME_LIMIT": "20",
    "PANORAMA_VIDEO_TIME_LIMIT": "25",
    "PANORAMA_VISIBILITY_TIMEOUT": "30",
}


make_clip = functools.partial(clip, seconds=CLIP_SECONDS, size="640x480", rate=30, audio=True)


def ffprobe(path: Path) -> dict:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)],
        check=True,
        capture_output=True,
    ).stdout
    return json.loads(out)


@dataclass
class Stack:
    url: str
    storage: Path
    env: dict[str, str]
    logs: Path
    redis_url: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": API_KEY}, timeout=30.0)

    def upload(self, path: Path) -> httpx.Response:
        with self.client() as client, path.open("rb") as body:
            return client.post("/upload-video", files={"file": ("clip.mp4", body, "video/mp4")})

    def status(self, task_id: str) -> dict:
        with self.client() as client:
            response = client.get(f"/task/{task_id}")
            assert response.status_code == 200, response.text
            return response.json()

    def wait_for(self, task_id: str, statuses: set[str], timeout: float, *, min_progress: int = 0) -> list[dict]:
        """Poll until the task is in one of ``statuses``; return every status seen on the way."""
        seen: list[dict] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen.append(self.status(task_id))
            if seen[-1]["status"] in statuses and seen[-1]["progress"] >= min_progress:
                return seen
            time.sleep(0.1)
        raise AssertionError(f"task {task_id} not in {statuses} after {timeout}s; last {seen[-1:]}")

    def worker(self, name: str) -> ServiceProcess:
        return ServiceProcess(celery_worker_command(name), self.env, self.logs / f"{name}.log").start()

    def events(self, job_id: str) -> list[dict]:
        lines = (self.storage / "jobs" / f"{job_id}.events.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    def files(self, folder: str) -> list[str]:
        return sorted(p.name for p in (self.storage / folder).iterdir())


@pytest.fixture
def worker_factory(stack: Stack) -> Iterator:
    started: list[ServiceProcess] = []

    def start(name: str = "worker") -> ServiceProcess:
        worker = stack.worker(name)
        started.append(worker)
        wait_worker_ready(worker)
        return worker

    yield start
    for worker in started:
        worker.stop()


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    clip = make_clip(folder / "clip.mp4")
    data = clip.read_bytes()
    (folder / "truncated.mp4").write_bytes(data[: len(data) // 2])
    no_index = make_clip(folder / "no-index.mp4", faststart=False)
    (folder / "no-index-truncated.mp4").write_bytes(no_index.read_bytes()[: no_index.stat().st_size // 2])
    (folder / "notes.mp4").write_text("these are meeting notes, not a video\n" * 50)
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=64x64", "-frames:v", "1",
         str(folder / "still.png")],
        check=True,
    )  # fmt: skip
    (folder / "big.bin").write_bytes(os.urandom(MAX_UPLOAD + 500_000))
    return {p.stem: p for p in folder.iterdir()}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("videos")
    port = free_port()
    env = {
        "PANORAMA_REDIS_URL": redis_url,
        "PANORAMA_STORAGE_DIR": str(root / "storage"),
        "PANORAMA_STATE_DIR": str(root / "state"),
        "PANORAMA_API_KEYS": API_KEY,
        "PANORAMA_CPU_LIMIT": "2",
        "PANORAMA_MAX_UPLOAD_BYTES": str(MAX_UPLOAD),
        "PANORAMA_LOG_JSON": "false",
        **WORKER_ENV,
    }
    cmd = gunicorn_command("panorama.gateway.app:create_app()", port)
    with running(cmd, env, root / "gateway.log", url=f"http://127.0.0.1:{port}", ready="/healthz"):
        yield Stack(f"http://127.0.0.1:{port}", root / "storage", env, root, redis_url)


def test_upload_reports_rising_progress_then_success_and_the_download_plays(
    stack: Stack, clips: dict[str, Path], worker_factory, tmp_path: Path
) -> None:
    worker_factory()
    response = stack.upload(clips["clip"])
    assert response.status_code == 202, response.text
    body = response.json()
    task_id = body["task_id"]
    assert body["status_url"] == f"/task/{task_id}"

    seen = stack.wait_for(task_id, {"SUCCESS", "FAILURE"}, timeout=60)
    final = seen[-1]
    assert final["status"] == "SUCCESS", final
    progress = [s["progress"] for s in seen if s["status"] == "PROGRESS"]
    assert len(set(progress)) >= 2, f"progress never rose: {seen}"
    assert progress == sorted(progress)
    assert final["progress"] == 100
    assert final["result"]["download_url"] == f"/videos/{task_id}"

    with stack.client() as client:
        video = client.get(final["result"]["download_url"])
        assert video.status_code == 200
        assert video.headers["content-type"] == "video/mp4"
        partial = client.get(final["result"]["download_url"], headers={"Range": "bytes=100-199"})
    assert partial.status_code == 206
    assert partial.content == video.content[100:200]
    assert partial.headers["content-range"] == f"bytes 100-199/{len(video.content)}"
    downloaded = tmp_path / "out.mp4"
    downloaded.write_bytes(video.content)
    info = ffprobe(downloaded)
    codecs = {s["codec_type"]: s["codec_name"] for s in info["streams"]}
    assert codecs == {"video": "h264", "audio": "aac"}
    assert abs(float(info["format"]["duration"]) - CLIP_SECONDS) <= 0.1
    events = [e["event"] for e in stack.events(task_id)]
    assert events == ["started", "completed"]
    # Retention: a succeeded job's upload is deleted at once; the rendition stays.
    assert f"{task_id}.src" not in stack.files("uploads")
    assert f"{task_id}.mp4" in stack.files("outputs")


def test_oversize_upload_is_413_and_leaves_no_file(stack: Stack, clips: dict[str, Path]) -> None:
    before = {d: stack.files(d) for d in ("tmp", "uploads", "jobs")}
    response = stack.upload(clips["big"])
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"

    # Without a Content-Length the limit is enforced while the body streams in.
    def chunks() -> Iterator[bytes]:
        yield b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="a.mp4"\r\n\r\n'
        for _ in range(MAX_UPLOAD // 65536 + 10):
            yield os.urandom(65536)
        yield b"\r\n--b0undary--\r\n"

    with stack.client() as client:
        streamed = client.post(
            "/upload-video", content=chunks(), headers={"content-type": "multipart/form-data; boundary=b0undary"}
        )
    assert streamed.status_code == 413, streamed.text
    assert {d: stack.files(d) for d in ("tmp", "uploads", "jobs")} == before


@pytest.mark.parametrize(("clip", "status"), [("notes", 415), ("still", 415), ("no-index-truncated", 422)])
def test_non_video_upload_is_refused_whatever_its_name(
    stack: Stack, clips: dict[str, Path], clip: str, status: int
) -> None:
    before = {d: stack.files(d) for d in ("tmp", "uploads", "jobs")}
    response = stack.upload(clips[clip])
    assert response.status_code == status, response.text
    assert response.json()["detail"]
    assert {d: stack.files(d) for d in ("tmp", "uploads", "jobs")} == before


def test_upload_without_a_file_field_is_422(stack: Stack) -> None:
    with stack.client() as client:
        response = client.post("/upload-video", files={"other": ("a.txt", b"hello", "text/plain")})
    assert response.status_code == 422
    assert "'file'" in response.json()["detail"]


def test_truncated_video_ends_as_failure_with_a_reason(stack: Stack, clips: dict[str, Path], worker_factory) -> None:
    worker_factory()
    response = stack.upload(clips["truncated"])
    assert response.status_code == 202, response.text
    final = stack.wait_for(response.json()["task_id"], {"SUCCESS", "FAILURE"}, timeout=60)[-1]
    assert final["status"] == "FAILURE"
    assert "truncated" in final["error"] or "could not" in final["error"], final


def test_unknown_task_and_video_are_404(stack: Stack) -> None:
    with stack.client() as client:
        assert client.get(f"/task/{uuid.uuid4().hex}").status_code == 404
        assert client.get("/task/..%2F..%2Fetc%2Fpasswd").status_code == 404
        assert client.get(f"/videos/{uuid.uuid4().hex}").status_code == 404


def test_queued_job_is_pending_until_a_worker_takes_it(stack: Stack, clips: dict[str, Path]) -> None:
    response = stack.upload(clips["clip"])
    assert response.status_code == 202
    task_id = response.json()["task_id"]
    assert stack.status(task_id) == {
        "task_id": task_id, "status": "PENDING", "progress": 0, "result": None, "error": None,
    }  # fmt: skip
    redis.Redis.from_url(stack.redis_url).delete("video")  # leave no job for the next test's worker


def test_upload_is_503_and_writes_nothing_when_the_broker_is_down(
    tmp_path: Path, stack: Stack, clips: dict[str, Path]
) -> None:
    port = free_port()
    env = {**stack.env, "PANORAMA_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    env["PANORAMA_STORAGE_DIR"] = str(tmp_path / "storage")
    with running(
        gunicorn_command("panorama.gateway.app:create_app()", port), env, tmp_path / "gw.log",
        url=f"http://127.0.0.1:{port}", ready="/healthz",
    ):  # fmt: skip
        down = Stack(f"http://127.0.0.1:{port}", tmp_path / "storage", env, tmp_path, stack.redis_url)
        start = time.monotonic()
        response = down.upload(clips["clip"])
        assert response.status_code == 503, response.text
        assert time.monotonic() - start < 15
        assert [down.files(d) for d in ("tmp", "uploads", "jobs", "outputs")] == [[], [], [], []]


# --- a worker killed in the middle of a transcode -------------------------------------------------


def ffmpeg_for(job_id: str) -> tuple[int, int]:
    """(pid, parent pid) of the ffmpeg transcoding ``job_id``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if argv and argv[0].endswith(b"ffmpeg") and any(job_id.encode() in a for a in argv):
            return int(entry.name), int(stat.rsplit(")", 1)[1].split()[1])
    raise AssertionError(f"no ffmpeg running for {job_id}")


def gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def assert_completed_exactly_once(stack: Stack, job_id: str, tmp_path: Path) -> None:
    final = stack.status(job_id)
    assert final["status"] == "SUCCESS", final
    events = [e["event"] for e in stack.events(job_id)]
    assert events.count("started") >= 2, events
    assert events.count("completed") == 1, events
    assert not [n for n in stack.files("tmp") if n.startswith(job_id)]
    client = redis.Redis.from_url(stack.redis_url)
    assert client.llen("video") == 0
    # SUCCESS shows as soon as the completion record is written; the late ack follows the task's
    # return (result stored, spans ended), so give it a moment before saying a delivery is left over.
    deadline = time.monotonic() + 10
    while client.hlen("unacked") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.hlen("unacked") == 0
    with stack.client() as http:
        video = http.get(f"/videos/{job_id}")
    (tmp_path / "out.mp4").write_bytes(video.content)
    info = ffprobe(tmp_path / "out.mp4")
    assert abs(float(info["format"]["duration"]) - CLIP_SECONDS) <= 0.1


def test_sigkill_of_the_pool_child_mid_transcode_reruns_the_job_once(
    stack: Stack, clips: dict[str, Path], worker_factory, tmp_path: Path
) -> None:
    worker = worker_factory("child-kill")
    job_id = stack.upload(clips["clip"]).json()["task_id"]
    stack.wait_for(job_id, {"PROGRESS"}, timeout=30, min_progress=1)
    ffmpeg_pid, child = ffmpeg_for(job_id)
    assert worker.proc is not None
    assert child != worker.proc.pid

    os.kill(child, signal.SIGKILL)
    assert gone(ffmpeg_pid), "ffmpeg outlived the pool child that ran it"
    stack.wait_for(job_id, {"SUCCESS", "FAILURE"}, timeout=60)
    assert_completed_exactly_once(stack, job_id, tmp_path)


def test_sigkill_of_the_whole_worker_mid_transcode_completes_once_after_restart(
    stack: Stack, clips: dict[str, Path], worker_factory, tmp_path: Path
) -> None:
    worker = worker_factory("doomed")
    job_id = stack.upload(clips["clip"]).json()["task_id"]
    stack.wait_for(job_id, {"PROGRESS"}, timeout=30, min_progress=1)
    ffmpeg_pid, child = ffmpeg_for(job_id)

    assert worker.proc is not None
    os.kill(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait(10)
    assert gone(child), "the pool child outlived its worker"
    assert gone(ffmpeg_pid), "ffmpeg outlived its worker"

    worker_factory("restarted")
    # The unacknowledged job comes back once the visibility timeout (30 s here) has passed.
    stack.wait_for(job_id, {"SUCCESS", "FAILURE"}, timeout=90)
    assert_completed_exactly_once(stack, job_id, tmp_path)
