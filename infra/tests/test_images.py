"""The built images, run with the chart's commands and env (needs `make images`; PANORAMA_IMAGES_TEST=1)."""

from __future__ import annotations

import os

import pytest

from infra import acceptance

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("PANORAMA_IMAGES_TEST") != "1",
        reason="container acceptance runs after `make images` with PANORAMA_IMAGES_TEST=1",
    ),
]


def test_images_serve_the_suite_with_the_chart_rendered_commands() -> None:
    offset = int(os.environ.get("PANORAMA_IMAGES_PORT_OFFSET", "0"))
    redis_db = int(os.environ.get("PANORAMA_TEST_REDIS_DB", "15"))
    report = acceptance.run(tag=os.environ.get("PANORAMA_IMAGES_TAG", "ci"), port_offset=offset, redis_db=redis_db)
    assert report["ready"] is True
    assert report["transcode"]["status"] == "SUCCESS"
    for component in ("gateway", "io", "compute"):
        assert report["images"][component]["ffmpeg"] is False
        assert report["images"][component]["ffprobe"] is False
        assert report["images"][component]["gcc"] is False
    assert report["images"]["video-worker"]["ffmpeg"] is True
