"""The task refuses anything but a well-formed job id before touching storage."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from panorama.video_worker.errors import InvalidVideo
from panorama.video_worker.settings import WorkerSettings
from panorama.video_worker.tasks import process


@pytest.mark.parametrize("suffix", ["\n", "\r\n", "/../x"])
def test_an_id_with_a_trailing_newline_or_path_is_refused_before_any_file_is_written(
    tmp_path: Path, suffix: str
) -> None:
    settings = WorkerSettings(storage_dir=tmp_path / "storage", state_dir=tmp_path, cpu_limit=1.0)
    with pytest.raises(InvalidVideo, match="not a job id"):
        process(uuid.uuid4().hex + suffix, settings, lambda percent: None)
    assert not (tmp_path / "storage").exists()
