"""Why a job failed: permanent errors end the job, transient ones are retried with backoff.

The gateway never imports these classes: Celery stores the class name and the message, and the
message is what the user reads, so each one says what happened in plain words.
"""

from __future__ import annotations


class VideoError(Exception):
    """A job that cannot succeed however often it runs (bad input, over its time limit)."""


class InvalidVideo(VideoError):
    """ffmpeg could not decode the upload, or decoded less of it than its header promises."""


class TooManyAttempts(VideoError):
    """The job was delivered again and again (its worker kept dying); it stops here."""


class TranscodeTimeout(VideoError):
    """The transcode ran past the soft time limit and was stopped."""


class ToolFailed(VideoError):
    """The worker's own ffmpeg or ffprobe is missing or does not run: named, never a bare errno.

    Not the upload's fault, and not retried: another try on the same worker would fail the same way.
    """


class TransientError(Exception):
    """Worth another try later: storage hiccups, ffmpeg killed from outside."""
