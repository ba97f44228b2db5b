"""The gateway's container probe (hachoir, no ffmpeg): which uploads pass, which are 415 or 422.

Every sample is made here by ffmpeg's ``testsrc``/``sine`` sources in the container it names.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from panorama.core.errors import Problem
from panorama.gateway.probe import inspect, probe_video

SECONDS = 3
VIDEO = ["-f", "lavfi", "-i", f"testsrc=size=320x240:rate=25:duration={SECONDS}"]
AUDIO = ["-f", "lavfi", "-i", f"sine=frequency=440:duration={SECONDS}"]
# name -> (inputs, codec options); the container is the file's extension.
SAMPLES: dict[str, tuple[list[str], list[str]]] = {
    "clip.mp4": ([*VIDEO, *AUDIO], ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-c:a", "aac"]),
    "silent.mp4": (VIDEO, ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]),
    "clip.mov": ([*VIDEO, *AUDIO], ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"]),
    "clip.mkv": ([*VIDEO, *AUDIO], ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"]),
    "clip.webm": ([*VIDEO, *AUDIO], ["-c:v", "libvpx", "-deadline", "realtime", "-c:a", "libopus"]),
    "clip.avi": ([*VIDEO, *AUDIO], ["-c:v", "mpeg4", "-c:a", "libmp3lame"]),
    "clip.flv": ([*VIDEO, *AUDIO], ["-c:v", "flv1", "-c:a", "libmp3lame", "-ar", "44100"]),
    "clip.ts": ([*VIDEO, *AUDIO], ["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"]),
    "clip.mpg": ([*VIDEO, *AUDIO], ["-c:v", "mpeg2video", "-c:a", "mp2"]),
    "audio.m4a": (AUDIO, ["-c:a", "aac"]),
    "audio.mka": (AUDIO, ["-c:a", "aac"]),
    "audio.webm": (AUDIO, ["-c:a", "libopus"]),
    "audio.mp3": (AUDIO, ["-c:a", "libmp3lame"]),
    "audio.wav": (AUDIO, []),
    "still.png": (["-f", "lavfi", "-i", "testsrc=size=64x64"], ["-frames:v", "1"]),
    "still.jpg": (["-f", "lavfi", "-i", "testsrc=size=64x64"], ["-frames:v", "1"]),
}


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("probe")
    for name, (inputs, options) in SAMPLES.items():
        subprocess.run(["ffmpeg", "-v", "error", "-y", *inputs, *options, str(folder / name)], check=True)
    # Written without +faststart the index comes last: the first half of the file has none.
    data = (folder / "clip.mp4").read_bytes()
    (folder / "no-index.mp4").write_bytes(data[: len(data) // 2])
    (folder / "notes.mp4").write_text("these are meeting notes, not a video\n" * 50)
    (folder / "noise.mkv").write_bytes(bytes(range(256)) * 400)
    return {p.name: p for p in folder.iterdir()}


def probe(path: Path):
    return inspect(path, time.monotonic() + 10)


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("clip.mp4", "MP4File"),
        ("silent.mp4", "MP4File"),
        ("clip.mov", "MP4File"),
        ("clip.mkv", "MkvFile"),
        ("clip.webm", "MkvFile"),
        ("clip.avi", "RiffFile"),
        ("clip.flv", "FlvFile"),
    ],
)
def test_video_containers_pass_with_their_duration(samples: dict[str, Path], name: str, fmt: str) -> None:
    info = probe(samples[name])
    assert info.format == fmt
    assert info.duration is not None
    assert abs(info.duration - SECONDS) < 0.1


@pytest.mark.parametrize("name", ["clip.mp4", "clip.avi", "clip.flv"])
def test_picture_size_comes_from_the_header(samples: dict[str, Path], name: str) -> None:
    info = probe(samples[name])
    assert (info.width, info.height) == (320, 240)


@pytest.mark.parametrize(("name", "fmt"), [("clip.ts", "MPEG_TS"), ("clip.mpg", "MPEGVideoFile")])
def test_mpeg_streams_pass_on_a_video_packet_and_leave_the_duration_to_the_worker(
    samples: dict[str, Path], name: str, fmt: str
) -> None:
    info = probe(samples[name])
    assert info.format == fmt
    assert info.duration is None


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("notes.mp4", "not a video"),
        ("noise.mkv", "not a video"),
        ("still.png", "still image"),
        ("still.jpg", "still image"),
        ("audio.m4a", "no video stream"),
        ("audio.mka", "no video stream"),
        ("audio.webm", "no video stream"),
        ("audio.wav", "no video stream"),
        ("audio.mp3", "not a video container"),
    ],
)
def test_non_video_is_415_whatever_its_name(samples: dict[str, Path], name: str, words: str) -> None:
    with pytest.raises(Problem) as caught:
        probe(samples[name])
    assert caught.value.status == 415
    assert words in caught.value.detail


def _ts_packet(*, starts_unit: bool, control: int, rest: bytes, pid: int = 0x100) -> bytes:
    """An MPEG transport stream packet: sync byte, flags and PID, adaptation/payload control, then ``rest``."""
    return bytes([0x47, (0x40 if starts_unit else 0) | pid >> 8, pid & 0xFF, control << 4]) + rest


@pytest.mark.parametrize(
    ("control", "rest"),
    [
        (0b01, b""),  # a payload announced, none follows
        (0b01, b"\0"),  # a payload of one byte
        (0b11, b"\0"),  # adaptation field and payload announced, the packet ends in the adaptation field
        (0b11, bytes([183]) + bytes(183)),  # an adaptation field fills the packet, no payload left
    ],
)
def test_a_transport_stream_whose_packet_ends_before_its_payload_is_415(
    tmp_path: Path, control: int, rest: bytes
) -> None:
    # Random uploads found these (1 in ~300 of 50 KB): the stream passes hachoir's validation, and
    # the packet that starts a unit ends before the payload it announces. Not a video; not a 500.
    nulls = b"".join(_ts_packet(starts_unit=False, control=0b01, rest=b"\xff" * 184, pid=0x1FFF) for _ in range(8))
    upload = tmp_path / "damaged.ts"
    upload.write_bytes(nulls + _ts_packet(starts_unit=True, control=control, rest=rest))
    with pytest.raises(Problem) as caught:
        probe(upload)
    assert caught.value.status == 415
    assert "no video stream" in caught.value.detail


def test_mp4_cut_before_its_index_is_422(samples: dict[str, Path]) -> None:
    with pytest.raises(Problem) as caught:
        probe(samples["no-index.mp4"])
    assert caught.value.status == 422
    assert "moov" in caught.value.detail


async def test_probe_past_its_deadline_is_422_and_the_thread_stops_reading(samples: dict[str, Path]) -> None:
    # The deadline has passed by the parser's first read: the thread raises instead of parsing on.
    with pytest.raises(TimeoutError):
        inspect(samples["clip.mkv"], time.monotonic() - 1)
    with pytest.raises(Problem) as caught:
        await probe_video(samples["clip.mkv"], timeout=1e-6)
    assert caught.value.status == 422
    assert "could not be read within" in caught.value.detail


async def test_probe_video_answers_from_a_worker_thread(samples: dict[str, Path]) -> None:
    info = await probe_video(samples["clip.mkv"], timeout=10)
    assert info.format == "MkvFile"
