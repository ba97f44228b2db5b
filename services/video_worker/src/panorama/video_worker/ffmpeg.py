"""ffprobe and ffmpeg as child processes: the transcode command, its progress, and its death.

ffmpeg reports its own progress with ``-progress pipe:1`` (``out_time_us=...`` lines); that,
against the probed duration, is the job's progress. ffmpeg runs in its own session (a Ctrl-C or
a signal to the worker's group must go through the task, which cleans up) and with
``PR_SET_PDEATHSIG``: when the pool child running it dies (SIGKILL, hard time limit), the kernel
kills ffmpeg too, so no orphan keeps burning CPU or writing a file nobody will rename.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import os
import signal
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from opentelemetry import trace

from panorama.video_worker import tools
from panorama.video_worker.errors import InvalidVideo, TransientError

PR_SET_PDEATHSIG = 1
# ffmpeg's own words for a full or failing disk: retry later, the input is not to blame.
TRANSIENT_MARKERS = ("No space left on device", "Input/output error", "Stale file handle")
_libc = ctypes.CDLL(None, use_errno=True)


@dataclass(frozen=True)
class MediaInfo:
    duration: float
    video_codec: str
    width: int
    height: int
    has_audio: bool

    def as_dict(self) -> dict[str, object]:
        return {
            "duration": self.duration,
            "codec": self.video_codec,
            "width": self.width,
            "height": self.height,
            "has_audio": self.has_audio,
        }


def probe(path: Path, timeout: float) -> MediaInfo:
    """Duration and streams of ``path``; :class:`InvalidVideo` if ffprobe cannot read a video in it."""
    binary = tools.ffprobe()
    cmd = [binary, "-v", "error", "-print_format", "json", "-show_format", "-show_streams", str(path)]
    try:
        done = subprocess.run(cmd, capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise InvalidVideo(f"ffprobe could not read the file within {timeout:g}s") from None
    except OSError as exc:
        raise (tools.start_failed(binary, exc) or exc) from exc
    if failed := tools.exit_failed(binary, done.returncode, done.stderr.decode(errors="replace")):
        raise failed
    if done.returncode != 0:
        raise InvalidVideo(f"ffprobe cannot read the file: {last_line(done.stderr.decode(errors='replace'))}")
    data = json.loads(done.stdout or b"{}")
    streams = data.get("streams", [])
    video = next(
        (s for s in streams if s.get("codec_type") == "video" and not s.get("disposition", {}).get("attached_pic")),
        None,
    )
    if video is None:
        raise InvalidVideo("the file has no video stream")
    duration = _float(data.get("format", {}).get("duration")) or _float(video.get("duration"))
    if not duration or duration <= 0:
        raise InvalidVideo("the file has no duration (a still image?)")
    return MediaInfo(
        duration=duration,
        video_codec=str(video.get("codec_name", "")),
        width=int(video.get("width", 0)),
        height=int(video.get("height", 0)),
        has_audio=any(s.get("codec_type") == "audio" for s in streams),
    )


def transcode_command(
    src: Path, dst: Path, *, preset: str, crf: int, threads: int, has_audio: bool, progress: bool = True
) -> list[str]:
    """The one ffmpeg command of a job: H.264 + AAC in MP4, moov first so playback starts at once.

    The benchmark runs this very command directly to measure what the queue adds.
    """
    cmd = [tools.ffmpeg(), "-hide_banner", "-nostdin", "-v", "error", "-nostats"]
    if progress:
        cmd += ["-progress", "pipe:1"]
    cmd += ["-y", "-i", str(src), "-map", "0:v:0"]
    if has_audio:
        cmd += ["-map", "0:a:0"]
    cmd += [
        "-c:v", "libx264", "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p", "-threads", str(threads),
    ]  # fmt: skip
    if has_audio:
        cmd += ["-c:a", "aac", "-b:a", "128k"]
    cmd += ["-movflags", "+faststart", "-f", "mp4", str(dst)]
    return cmd


def _die_with_parent(parent: int) -> None:
    """Runs in the forked child before exec: SIGKILL me when my parent (the pool child) dies."""
    if _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
        os._exit(126)
    # The parent may have died between fork and prctl; then nobody would ever kill us.
    if os.getppid() != parent:
        os._exit(126)


def _start(cmd: Sequence[str], stderr: IO[bytes]) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
            preexec_fn=functools.partial(_die_with_parent, os.getpid()),  # prefork child: no threads to deadlock
        )
    except OSError as exc:
        raise (tools.start_failed(cmd[0], exc) or exc) from exc


def run(cmd: Sequence[str], duration: float, on_progress: Callable[[float], None]) -> str:
    """Run ffmpeg, calling ``on_progress(0..100)`` as it reports; raise on failure.

    Returns ffmpeg's last complaint, if any: a truncated input often exits 0 with a warning.

    Whatever interrupts the wait (the soft time limit, a worker shutdown) kills ffmpeg's whole
    process group before this returns.
    """
    with tempfile.TemporaryFile() as stderr, _start(cmd, stderr) as proc:
        try:
            assert proc.stdout is not None
            for raw in proc.stdout:
                key, _, value = raw.decode(errors="replace").strip().partition("=")
                if key == "out_time_us" and value.lstrip("-").isdigit() and duration > 0:
                    on_progress(max(0.0, min(100.0, int(value) / 1e6 / duration * 100)))
            returncode = proc.wait()
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        stderr.seek(0)
        errors = stderr.read().decode(errors="replace")
    trace.get_current_span().set_attribute("process.exit.code", returncode)  # the ffmpeg span, when traced
    if failed := tools.exit_failed(cmd[0], returncode, errors):
        raise failed
    if returncode < 0:
        raise TransientError(f"ffmpeg was killed by {signal.Signals(-returncode).name}")
    if returncode != 0:
        reason = last_line(errors) or f"exit status {returncode}"
        if any(marker in errors for marker in TRANSIENT_MARKERS):
            raise TransientError(f"ffmpeg could not write its output: {reason}")
        raise InvalidVideo(f"ffmpeg could not transcode the upload: {reason}")
    return last_line(errors)


def last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
