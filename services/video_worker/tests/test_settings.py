"""Worker settings refuse time limits that would let Redis hand a running job to a second worker."""

from __future__ import annotations

import pytest

from panorama.core.settings import SettingsError
from panorama.video_worker.settings import WorkerSettings


def test_visibility_timeout_shorter_than_the_hard_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PANORAMA_VIDEO_TIME_LIMIT", "600")
    monkeypatch.setenv("PANORAMA_VISIBILITY_TIMEOUT", "300")
    with pytest.raises(SettingsError, match="PANORAMA_VISIBILITY_TIMEOUT"):
        WorkerSettings.load()


def test_each_ffmpeg_gets_its_share_of_the_cpu_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PANORAMA_CPU_LIMIT", "4")
    assert WorkerSettings.load().concurrency() == 4
    assert WorkerSettings.load().threads_per_ffmpeg() == 1
    monkeypatch.setenv("PANORAMA_CELERY_CONCURRENCY", "2")
    assert WorkerSettings.load().threads_per_ffmpeg() == 2


def test_broker_url_must_be_amqp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PANORAMA_BROKER_URL", "redis://127.0.0.1:6379/0")
    with pytest.raises(SettingsError, match="PANORAMA_BROKER_URL"):
        WorkerSettings.load()
    monkeypatch.setenv("PANORAMA_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/")
    assert WorkerSettings.load().broker_url == "amqp://guest:guest@127.0.0.1:5672/"
    monkeypatch.setenv("PANORAMA_BROKER_URL", "")
    assert WorkerSettings.load().broker_url is None
