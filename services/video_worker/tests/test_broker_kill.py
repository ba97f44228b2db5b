"""Whole-worker SIGKILL mid-job, on each broker: how soon the job runs again, and that it completes once.

A worker pod that dies (OOM kill, node loss) leaves its job unacknowledged (``acks_late``). RabbitMQ
hands it to another consumer as soon as the dead one's connection is gone; Redis only once its
visibility timeout has passed (3,900 s by default; 30 s here). Both runs print their figures.

RabbitMQ runs on every developer and CI machine; this test makes a throwaway vhost with
``rabbitmqctl`` (and skips without it) so that it never touches another user's queues.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from celery import Celery

from panorama.core.queue import PROCESS_VIDEO_TASK, StorageLayout, celery_config
from panorama.testing import ServiceProcess, celery_worker_command, wait_worker_ready

pytestmark = pytest.mark.slow

RECOVERY_BUDGET = 30.0
WORKER_ENV = {
    "PANORAMA_VIDEO_PRESET": "veryslow",
    "PANORAMA_CELERY_CONCURRENCY": "1",
    "PANORAMA_CPU_LIMIT": "1",
    "PANORAMA_LOG_JSON": "false",
    "PANORAMA_WORKER_METRICS_PORT": "0",
    # Short limits so that the Redis run (redelivery after the visibility timeout) fits a test.
    "PANORAMA_VIDEO_SOFT_TIME_LIMIT": "20",
    "PANORAMA_VIDEO_TIME_LIMIT": "25",
    "PANORAMA_VISIBILITY_TIMEOUT": "30",
}


# Ten seconds at `veryslow`: the doomed worker's ffmpeg must still be running once the standby is up,
# which under load takes seconds (a 4 s clip was sometimes done before the test could look).
@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=640x480:rate=30",
         "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-t", "10",
         "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    return path


def start_worker(name: str, env: dict[str, str], logs: Path) -> ServiceProcess:
    worker = ServiceProcess(celery_worker_command(name), env, logs / f"{name}.log").start()
    wait_worker_ready(worker, 60)
    return worker


def events(layout: StorageLayout, job_id: str) -> list[dict]:
    try:
        text = layout.events(job_id).read_text()
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def wait_for(layout: StorageLayout, job_id: str, event: str, count: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in events(layout, job_id) if e["event"] == event]
        if len(found) >= count:
            return found[count - 1]
        time.sleep(0.05)
    raise AssertionError(f"no {event} #{count} for {job_id} after {timeout}s: {events(layout, job_id)}")


def ffmpeg_running(job_id: str) -> bool:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                argv = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if (argv.startswith(b"ffmpeg") or b"/ffmpeg\0" in argv) and job_id.encode() in argv:
                return True
    return False


def kill_mid_job(
    env: dict[str, str], tmp_path: Path, clip: Path, budget: float, acked: Callable[[], bool]
) -> dict[str, float]:
    """Run a job, SIGKILL its whole worker mid-transcode with a standby worker up; the figures."""
    layout = StorageLayout(Path(env["PANORAMA_STORAGE_DIR"]))
    layout.ensure()
    doomed = start_worker("doomed", env, tmp_path)
    standby: ServiceProcess | None = None
    publisher = Celery("broker-kill-test", set_as_current=False)
    config = celery_config(
        env.get("PANORAMA_REDIS_URL"),
        Path(env["PANORAMA_STATE_DIR"]),
        broker_url=env.get("PANORAMA_BROKER_URL"),
        visibility_timeout=int(env["PANORAMA_VISIBILITY_TIMEOUT"]),
    )
    publisher.conf.update({k: v for k, v in config.items() if not k.startswith("result_backend")})
    try:
        job_id = uuid.uuid4().hex
        shutil.copyfile(clip, layout.source(job_id))
        publisher.send_task(PROCESS_VIDEO_TASK, args=[job_id], task_id=job_id)
        wait_for(layout, job_id, "started", 1, timeout=30)
        standby = start_worker("standby", env, tmp_path)
        deadline = time.monotonic() + 15
        while not ffmpeg_running(job_id):
            assert time.monotonic() < deadline, "ffmpeg never started"
            time.sleep(0.05)
        time.sleep(0.5)
        assert layout.completion(job_id).exists() is False, "the job finished before it could be killed"
        assert doomed.proc is not None
        killed_at = time.time()
        os.killpg(doomed.proc.pid, signal.SIGKILL)  # the whole worker: parent, pool child and ffmpeg
        doomed.proc.wait(10)
        restarted = wait_for(layout, job_id, "started", 2, timeout=budget)
        completed = wait_for(layout, job_id, "completed", 1, timeout=budget + 60)
        time.sleep(1.0)  # any late duplicate would show up now
        history = [e["event"] for e in events(layout, job_id)]
        assert history.count("completed") == 1, history
        assert history.count("started") == 2, history
        assert layout.output(job_id).stat().st_size > 0
        # acks_late: the message leaves the broker only once the standby acknowledged it.
        deadline = time.monotonic() + 30
        while not acked():
            assert time.monotonic() < deadline, "the completed job was never acknowledged"
            time.sleep(0.2)
        figures = {
            "restarted_after_s": round(restarted["at"] - killed_at, 2),
            "completed_after_s": round(completed["at"] - killed_at, 2),
            "load_1m": round(os.getloadavg()[0], 2),
        }
        return figures
    finally:
        publisher.close()
        doomed.stop(signal.SIGKILL)
        if standby is not None:
            standby.stop()


def worker_env(tmp_path: Path, redis_url: str) -> dict[str, str]:
    return {
        **WORKER_ENV,
        "PANORAMA_REDIS_URL": redis_url,
        "PANORAMA_STORAGE_DIR": str(tmp_path / "storage"),
        "PANORAMA_STATE_DIR": str(tmp_path / "state"),
    }


def test_rabbitmq_reruns_a_killed_workers_job_within_seconds_and_completes_it_once(
    tmp_path: Path, clip: Path, redis_url: str, rabbitmq_vhost: str
) -> None:
    env = {**worker_env(tmp_path, redis_url), "PANORAMA_BROKER_URL": rabbitmq_vhost}
    vhost = rabbitmq_vhost.rsplit("/", 1)[1]

    def acked() -> bool:
        # messages = ready + unacknowledged: 0 once the standby acknowledged the job.
        out = subprocess.run(
            ["rabbitmqctl", "list_queues", "-p", vhost, "name", "messages"], capture_output=True, text=True, check=False
        ).stdout
        return any(line.split() == ["video", "0"] for line in out.splitlines())

    figures = kill_mid_job(env, tmp_path, clip, budget=RECOVERY_BUDGET, acked=acked)
    print(f"\nRabbitMQ broker, whole worker SIGKILLed mid-job: {figures}")
    assert figures["restarted_after_s"] < RECOVERY_BUDGET
    # The job really went through RabbitMQ (not a Redis fallback): acked() read its queue in the vhost.


def test_redis_reruns_a_killed_workers_job_only_after_the_visibility_timeout(
    tmp_path: Path, clip: Path, redis_url: str
) -> None:
    env = worker_env(tmp_path, redis_url)
    client = redis.Redis.from_url(redis_url)

    def acked() -> bool:
        return client.hlen("unacked") == 0 and client.llen("video") == 0

    figures = kill_mid_job(env, tmp_path, clip, budget=30 + 30, acked=acked)
    print(f"\nRedis broker (visibility timeout 30 s), whole worker SIGKILLed mid-job: {figures}")
    # The visibility timeout is the floor: nothing comes back before it (3,900 s by default).
    assert figures["restarted_after_s"] > 10  # timed from the delivery, not the kill (the standby boots between)
