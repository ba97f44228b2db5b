"""ffmpeg as a child: progress from its own output, failures with reasons, death with its parent."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from panorama.testing import make_clip
from panorama.video_worker import ffmpeg
from panorama.video_worker.errors import InvalidVideo


def test_run_reports_rising_progress_and_output_matches_the_input(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4")
    out = tmp_path / "out.mp4"
    seen: list[float] = []
    cmd = ffmpeg.transcode_command(src, out, preset="medium", crf=23, threads=1, has_audio=False)
    ffmpeg.run(cmd, 2.0, seen.append)
    assert seen == sorted(seen)
    assert len(set(seen)) >= 2
    assert seen[-1] >= 85
    info = ffmpeg.probe(out, 10)
    assert info.video_codec == "h264"
    assert info.duration == pytest.approx(2.0, abs=0.1)


def test_probe_refuses_a_file_that_is_not_a_video(tmp_path: Path) -> None:
    notes = tmp_path / "notes.mp4"
    notes.write_text("not a video\n" * 100)
    with pytest.raises(InvalidVideo, match="ffprobe cannot read"):
        ffmpeg.probe(notes, 10)


def test_ffmpeg_dies_when_the_process_that_started_it_is_killed(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "in.mp4", seconds=30)
    pid_file = tmp_path / "ffmpeg.pid"
    # A stand-in for the pool child: starts a slow transcode, writes ffmpeg's pid, and waits.
    script = textwrap.dedent(f"""
        import subprocess
        from pathlib import Path
        from panorama.video_worker import ffmpeg
        real_popen = subprocess.Popen
        def popen(*args, **kwargs):
            proc = real_popen(*args, **kwargs)
            Path({str(pid_file)!r}).write_text(str(proc.pid))
            return proc
        subprocess.Popen = popen
        cmd = ffmpeg.transcode_command(Path({str(src)!r}), Path({str(tmp_path / "out.mp4")!r}),
                                       preset="veryslow", crf=23, threads=1, has_audio=False)
        ffmpeg.run(cmd, 30.0, lambda p: None)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script])
    child = 0
    try:
        deadline = time.monotonic() + 20
        while not pid_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        child = int(pid_file.read_text())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
            except OSError:
                break
            if state == "Z":
                break
            time.sleep(0.05)
        else:
            pytest.fail("ffmpeg outlived its parent")
    finally:
        parent.kill()
        if child:  # never leave an orphan behind when the assertion fails
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
