"""Video worker settings: where the files are, how ffmpeg encodes, and how long a job may take."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import Field, model_validator

from panorama.core.queue import BrokerUrl
from panorama.core.settings import PanoramaSettings

Preset = Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow"]


class WorkerSettings(PanoramaSettings):
    redis_url: str | None = Field(default=None, description="broker and results; unset: embedded filesystem queue")
    broker_url: BrokerUrl = Field(
        default=None,
        description="Celery broker, amqp://user:pass@host:5672/vhost (RabbitMQ); unset: Redis or the embedded queue",
    )
    storage_dir: Path = Field(
        default=Path(".panorama/storage"),
        description="shared directory for uploaded and transcoded videos (the gateway's too)",
    )
    state_dir: Path = Field(
        default=Path(".panorama"), description="local state: the embedded Celery queue (must match the gateway)"
    )
    celery_concurrency: int | None = Field(default=None, ge=1, description="overrides the CPU-derived concurrency")
    # x264 settings of the rendition; a slower preset is a smaller file for more CPU.
    video_preset: Preset = Field(default="veryfast", description="x264 preset of the rendition")
    video_crf: int = Field(default=23, ge=0, le=51, description="x264 constant rate factor (lower: better and larger)")
    ffmpeg_threads: int | None = Field(default=None, ge=1, description="per ffmpeg; default: CPU limit / concurrency")
    ffprobe_timeout: float = Field(default=30.0, gt=0, description="seconds ffprobe may take on an input or output")
    # Soft: the task stops ffmpeg and fails with a reason. Hard: the pool kills the child (and
    # with it ffmpeg, through PDEATHSIG). The visibility timeout must exceed both, or Redis would
    # hand a job that is still running to a second worker.
    video_soft_time_limit: int = Field(
        default=3300, ge=1, description="seconds before the task stops ffmpeg and fails with a reason"
    )
    video_time_limit: int = Field(
        default=3600, ge=1, description="seconds before the pool kills the child (and ffmpeg with it)"
    )
    visibility_timeout: int = Field(
        default=3900, ge=1, description="seconds Redis waits before redelivering an unacked job (> both limits)"
    )
    # Deliveries of one job (worker deaths and transient retries together) before it fails for good:
    # a file that kills its worker every time must end as FAILURE, not a crash loop.
    video_max_attempts: int = Field(
        default=5, ge=1, description="deliveries of one job (crashes and retries) before it fails for good"
    )
    video_max_retries: int = Field(default=3, ge=0, description="retries of transient errors (storage hiccups)")
    # Retention (panorama.video_worker.retention): storage must not only grow.
    rendition_retention: float = Field(
        default=7 * 24 * 3600, gt=0, description="seconds a rendition (and its job's records) is kept"
    )
    upload_retention: float = Field(
        default=2 * 24 * 3600, gt=0, description="seconds a failed or abandoned job's upload is kept"
    )
    retention_interval: float = Field(default=3600, gt=0, description="seconds between retention sweeps")
    # /metrics of the whole worker pod, served by the prefork parent (see observability.py); 0: off.
    worker_metrics_port: int = Field(
        default=9100, ge=0, le=65535, description="port of the worker pod's /metrics (0: off)"
    )
    worker_metrics_addr: str = Field(default="0.0.0.0", description="address the worker's /metrics listens on")

    @model_validator(mode="after")
    def _limits_are_ordered(self) -> Self:
        if not self.video_soft_time_limit < self.video_time_limit < self.visibility_timeout:
            raise ValueError(
                "need PANORAMA_VIDEO_SOFT_TIME_LIMIT < PANORAMA_VIDEO_TIME_LIMIT < PANORAMA_VISIBILITY_TIMEOUT "
                f"(got {self.video_soft_time_limit} < {self.video_time_limit} < {self.visibility_timeout})"
            )
        return self

    def concurrency(self) -> int:
        return self.celery_concurrency or self.sizing().celery_concurrency

    def threads_per_ffmpeg(self) -> int:
        """Each of the pool's ffmpeg processes gets its share of the CPU limit, at least one thread."""
        if self.ffmpeg_threads is not None:
            return self.ffmpeg_threads
        cores = max(1, round(self.effective_cpu_limit()))
        return max(1, cores // self.concurrency())
