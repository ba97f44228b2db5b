"""Video worker: what the queue adds to a transcode, and how many jobs a minute the pool finishes.

    .venv/bin/python loadtests/bench_video.py [--quick] [--out results.json]

Starts its own redis-server on a free port (the embedded filesystem queue if there is none) and
one Celery video worker with ``PANORAMA_CPU_LIMIT=2`` (two pool children, one ffmpeg thread each),
makes a 720p test pattern with ffmpeg, then in one run:

- overhead: in alternating rounds, the worker's ``transcode_command`` run directly with
  ``subprocess`` beside the same job through the queue (publish -> worker -> probe, transcode,
  verify, rename, record -> result), one job at a time; medians kept. Goal: under 10 %.
- throughput: ``2 x concurrency`` jobs published at once; jobs per minute until the last is done.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from celery import Celery
from celery.result import AsyncResult
from lib.output import emit
from lib.stack import redis_server

from panorama.core.queue import PROCESS_VIDEO_TASK, StorageLayout, celery_config, ensure_queue_dirs
from panorama.testing import ServiceProcess, make_clip
from panorama.video_worker.ffmpeg import probe, transcode_command

GOAL_OVERHEAD = 0.10
POLL_S = 0.02
CPU_LIMIT = 2
PRESET = "veryfast"
CRF = 23


def wait_ready(worker: ServiceProcess, client: Celery, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.proc is not None and worker.proc.poll() is not None:
            raise RuntimeError(f"worker exited:\n{worker.output[-3000:]}")
        if client.control.ping(timeout=0.5):
            return
    raise TimeoutError(f"worker not ready:\n{worker.output[-3000:]}")


class Bench:
    def __init__(self, root: Path, redis_url: str | None, clip: Path, duration: float) -> None:
        self.duration = duration
        self.layout = StorageLayout(root / "storage")
        self.layout.ensure()
        self.clip = clip
        ensure_queue_dirs(root / "state")
        config = celery_config(redis_url, root / "state")
        # As in the gateway: publish through an app without a result backend (no per-task result
        # subscription), poll results through another.
        self.publisher = Celery("bench", set_as_current=False)
        self.publisher.conf.update({k: v for k, v in config.items() if not k.startswith("result_backend")})
        self.results = Celery("bench-results", set_as_current=False)
        self.results.conf.update(config)
        self.env = {
            "PANORAMA_STORAGE_DIR": str(self.layout.root),
            "PANORAMA_STATE_DIR": str(root / "state"),
            "PANORAMA_CPU_LIMIT": str(CPU_LIMIT),
            "PANORAMA_VIDEO_PRESET": PRESET,
            "PANORAMA_VIDEO_CRF": str(CRF),
            "PANORAMA_LOG_JSON": "false",
            "PANORAMA_LOG_LEVEL": "WARNING",
            **({"PANORAMA_REDIS_URL": redis_url} if redis_url else {}),
        }
        self.threads = 1  # what the worker computes for CPU limit 2 and concurrency 2

    def new_job(self) -> str:
        job_id = uuid.uuid4().hex
        os.link(self.clip, self.layout.source(job_id))
        return job_id

    def direct(self) -> float:
        out = self.layout.tmp / f"direct-{uuid.uuid4().hex}.mp4"
        cmd = transcode_command(self.clip, out, preset=PRESET, crf=CRF, threads=self.threads, has_audio=True)
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        elapsed = time.perf_counter() - start
        out.unlink()
        return elapsed

    def submit(self, job_id: str) -> None:
        # What the gateway sends: its own probe of the upload, so the worker skips one.
        hint = {"duration": self.duration, "has_audio": True}
        self.publisher.send_task(PROCESS_VIDEO_TASK, args=[job_id], kwargs={"source": hint}, task_id=job_id)

    def wait(self, job_id: str, timeout: float = 600) -> dict[str, Any]:
        result = AsyncResult(job_id, app=self.results)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if result.state == "SUCCESS":
                return result.result
            if result.state == "FAILURE":
                raise RuntimeError(f"job {job_id} failed: {result.result}")
            time.sleep(POLL_S)
        raise TimeoutError(f"job {job_id} not done after {timeout}s")

    def queued(self) -> tuple[float, float, float]:
        """(publish-to-result, the task's own, ffmpeg inside the task) seconds for one job."""
        job_id = self.new_job()
        start = time.perf_counter()
        self.submit(job_id)
        record = self.wait(job_id)
        return time.perf_counter() - start, float(record["seconds"]), float(record["ffmpeg_seconds"])

    def throughput(self, jobs: int) -> float:
        ids = [self.new_job() for _ in range(jobs)]
        start = time.perf_counter()
        for job_id in ids:
            self.submit(job_id)
        for job_id in ids:
            self.wait(job_id)
        return jobs / (time.perf_counter() - start) * 60


def run(quick: bool = False) -> dict[str, Any]:
    rounds = 3 if quick else 9
    seconds = 5.0 if quick else 10.0
    with tempfile.TemporaryDirectory(prefix="panorama-bench-video-") as tmp:
        root = Path(tmp)
        clip = root / "clip.mp4"
        make_clip(clip, seconds, size="1280x720", rate=30, audio=True, faststart=False, source="testsrc2")
        with redis_server(root) as redis_url:
            bench = Bench(root, redis_url, clip, probe(clip, 30).duration)
            cmd = [sys.executable, "-m", "celery", "-A", "panorama.video_worker.celery_app", "worker",
                   "--hostname", "bench@%h", "--without-mingle", "--without-gossip"]  # fmt: skip
            with ServiceProcess(cmd, bench.env, root / "worker.log") as worker:
                wait_ready(worker, bench.results)
                bench.queued()  # warm-up: pool child imports, broker connections
                direct, e2e, in_task, in_ffmpeg = [], [], [], []
                for _ in range(rounds):
                    direct.append(bench.direct())
                    total, task, ffmpeg_s = bench.queued()
                    e2e.append(total)
                    in_task.append(task)
                    in_ffmpeg.append(ffmpeg_s)
                concurrency = CPU_LIMIT
                jobs_per_minute = bench.throughput(2 * concurrency)
    d, q, t, f = (statistics.median(x) for x in (direct, e2e, in_task, in_ffmpeg))
    fixed = statistics.median(total - ff for total, ff in zip(e2e, in_ffmpeg, strict=True))
    return {
        "transport": "redis" if redis_url else "filesystem",
        "clip": f"1280x720 30 fps {seconds:g}s, x264 {PRESET} crf {CRF}, 1 thread",
        "rounds": rounds,
        "direct_median_s": round(d, 3),
        "worker_end_to_end_median_s": round(q, 3),
        "worker_in_task_median_s": round(t, 3),
        "worker_ffmpeg_median_s": round(f, 3),
        "overhead_end_to_end": round(q / d - 1, 4),
        # Per job, publish-to-result minus ffmpeg's own run: what the queue and checks cost,
        # unaffected by how fast ffmpeg happened to run that round on a noisy machine.
        "queue_and_checks_median_s": round(fixed, 3),
        "overhead_fixed_share": round(fixed / d, 4),
        "overhead_end_to_end_vs_worker_ffmpeg": round(q / f - 1, 4),
        "overhead_in_task": round(t / d - 1, 4),
        "goal_overhead": GOAL_OVERHEAD,
        "meets_goal": q / d - 1 < GOAL_OVERHEAD,
        "concurrency": concurrency,
        "jobs_per_minute": round(jobs_per_minute, 2),
        "direct_samples_s": [round(x, 3) for x in direct],
        "worker_samples_s": [round(x, 3) for x in e2e],
        "worker_ffmpeg_samples_s": [round(x, 3) for x in in_ffmpeg],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter clip, fewer rounds")
    parser.add_argument("--out", type=Path, help="write the JSON result here (default: stdout)")
    args = parser.parse_args()
    result = run(quick=args.quick)
    rows = [
        ("direct ffmpeg (median)", f"{result['direct_median_s']:.3f} s"),
        ("through the worker, publish to result", f"{result['worker_end_to_end_median_s']:.3f} s"),
        ("inside the task", f"{result['worker_in_task_median_s']:.3f} s"),
        ("ffmpeg inside the task", f"{result['worker_ffmpeg_median_s']:.3f} s"),
        ("overhead (end to end)", f"{result['overhead_end_to_end']:+.1%} (goal < {GOAL_OVERHEAD:.0%})"),
        ("queue + checks per job (median)", f"{result['queue_and_checks_median_s']:.3f} s"),
        ("  as a share of the direct run", f"{result['overhead_fixed_share']:.1%}"),
        (f"jobs per minute (concurrency {result['concurrency']})", f"{result['jobs_per_minute']:.1f}"),
    ]
    print(f"video worker bench: {result['clip']}, {result['transport']} transport", file=sys.stderr)
    for name, value in rows:
        print(f"  {name:<42} {value}", file=sys.stderr)
    emit(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
