"""Is this upload really a video? Ask ffprobe, never the file name or the content type.

ffprobe runs as an asyncio subprocess under a timeout (killed when it runs out) and decodes the
first frames, so a file with a plausible header but no picture is caught here, not in the worker.
Answers: 415 when the bytes are not a video at all (unknown data, audio only, a still image),
422 when they are a container ffprobe recognises but cannot read (a truncated MP4 without its
index, no decodable frame, no duration).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from panorama.core.errors import Problem

FFPROBE = os.environ.get("PANORAMA_FFPROBE", "ffprobe")
# ffprobe prefixes a demuxer's complaints with "[mov,mp4,... @ 0x...]": the format was recognised.
RECOGNISED = re.compile(r"^\[[\w,]+ @ 0x[0-9a-f]+\]", re.MULTILINE)
# Picture demuxers (image2 and every "*_pipe" one): a single picture is not a video.
STILL_FORMATS = frozenset({"image2"})


@dataclass(frozen=True)
class VideoInfo:
    format: str
    duration: float
    codec: str
    width: int
    height: int
    has_audio: bool


def _command(path: Path) -> list[str]:
    return [
        FFPROBE, "-v", "error", "-print_format", "json", "-show_format", "-show_streams",
        "-count_frames", "-read_intervals", "%+#2", str(path),
    ]  # fmt: skip


async def probe_video(path: Path, timeout: float) -> VideoInfo:
    """ffprobe's view of ``path``, or a 415/422 :class:`Problem` saying why it is not a usable video."""
    pipe = asyncio.subprocess.PIPE
    devnull = asyncio.subprocess.DEVNULL
    proc = await asyncio.create_subprocess_exec(*_command(path), stdin=devnull, stdout=pipe, stderr=pipe)
    try:
        async with asyncio.timeout(timeout):
            out, err = await proc.communicate()
    except TimeoutError:
        raise Problem(422, f"the upload could not be read within {timeout:g}s", title="Unreadable video") from None
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
    errors = err.decode(errors="replace").replace(str(path), "upload")
    if proc.returncode != 0:
        reason = errors.strip().splitlines()[-1] if errors.strip() else f"ffprobe exit status {proc.returncode}"
        if RECOGNISED.search(errors):
            raise Problem(422, f"the video cannot be read: {reason}", title="Unreadable video")
        raise Problem(415, f"the upload is not a video: {reason}", title="Not a video")
    return classify(json.loads(out or b"{}"))


def classify(data: dict[str, Any]) -> VideoInfo:
    """Turn ffprobe's JSON into :class:`VideoInfo`, or raise 415/422."""
    fmt = data.get("format", {})
    format_name = str(fmt.get("format_name", ""))
    streams = data.get("streams", [])
    videos = [s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")]
    if not videos:
        raise Problem(415, f"the upload has no video stream (format {format_name or 'unknown'})", title="Not a video")
    if format_name in STILL_FORMATS or format_name.endswith("_pipe"):
        raise Problem(415, f"the upload is a still image ({format_name}), not a video", title="Not a video")
    video = videos[0]
    duration = _float(fmt.get("duration")) or _float(video.get("duration"))
    if not duration or duration <= 0:
        raise Problem(422, "the video has no duration", title="Unreadable video")
    if not int(video.get("nb_read_frames") or 0):
        raise Problem(422, "no frame of the video could be decoded", title="Unreadable video")
    return VideoInfo(
        format=format_name,
        duration=duration,
        codec=str(video.get("codec_name", "")),
        width=int(video.get("width") or 0),
        height=int(video.get("height") or 0),
        has_audio=any(s.get("codec_type") == "audio" for s in streams),
    )


def _float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
