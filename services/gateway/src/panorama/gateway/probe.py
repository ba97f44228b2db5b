"""Is this upload really a video container? Read its bytes, never the file name or the content type.

The gateway image carries no ffmpeg, so the check is hachoir, a pure-Python parser: it recognises
the container from its structure and reads the header's facts (duration, picture size, streams).
hachoir blocks, so it runs in a worker thread under the probe timeout; every read it makes passes
through a deadline check, so a file that keeps the parser busy stops it soon after the timeout
instead of holding a thread.
Answers: 415 when the bytes are not a video container (unknown data, a still image, audio only),
422 when they are a video container whose header cannot be read (an MP4 cut before its ``moov``
index, no duration). Decoding is the worker's job: it runs the real ffprobe/ffmpeg, so a file
with a good header and damaged data ends as a FAILURE with a reason, not here.
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from hachoir.core import config as hachoir_config
from hachoir.field import FieldError
from hachoir.metadata import extractMetadata
from hachoir.metadata.metadata import Metadata, MultipleMetadata
from hachoir.parser import ValidateError, guessParser
from hachoir.parser.parser import Parser
from hachoir.parser.video.mpeg_ts import MPEG_TS
from hachoir.stream import InputIOStream

from panorama.core.errors import Problem

# Parsers of containers that hold video (MPEG-PS is hachoir's "MPEGVideoFile"). Ogg, RealMedia,
# SWF and the rest are left out: hachoir cannot tell whether they hold a picture stream.
VIDEO_PARSERS = frozenset({"MP4File", "MkvFile", "RiffFile", "FlvFile", "AsfFile", "MPEGVideoFile", "MPEG_TS"})
# MPEG program and transport streams: hachoir reads no metadata, so look for a video PES packet
# (stream ids 0xE0-0xEF) among the first packets. A transport stream has no magic number (hachoir
# picks it by file extension only), so it is tried last and accepted only with a video PES in it.
SCANNED_PACKETS = 2000
PES_VIDEO_IDS = range(0xE0, 0xF0)


class ProbeTimeout(Exception):
    """The parser read past its deadline."""


@dataclass(frozen=True)
class VideoInfo:
    format: str
    mime_type: str
    duration: float | None
    width: int
    height: int


class _DeadlineFile(io.RawIOBase):
    """A read-only file whose reads fail once the deadline has passed (hachoir reads through it)."""

    def __init__(self, raw: io.BufferedReader, deadline: float) -> None:
        self.raw = raw
        self.deadline = deadline
        self.expired = False

    def _check(self) -> None:
        if time.monotonic() > self.deadline:
            self.expired = True
            raise ProbeTimeout

    def read(self, size: int = -1) -> bytes:
        self._check()
        return self.raw.read(size)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check()
        return self.raw.seek(offset, whence)

    def tell(self) -> int:
        return self.raw.tell()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        self.raw.close()
        super().close()


async def probe_video(path: Path, timeout: float) -> VideoInfo:
    """The container facts of ``path``, or a 415/422 :class:`Problem` saying why it is not a usable video."""
    try:
        with anyio.fail_after(timeout):
            # Abandoned on timeout: the thread's next read raises, so it ends on its own soon after.
            return await anyio.to_thread.run_sync(inspect, path, time.monotonic() + timeout, abandon_on_cancel=True)
    except TimeoutError:
        raise Problem(422, f"the upload could not be read within {timeout:g}s", title="Unreadable video") from None


def inspect(path: Path, deadline: float) -> VideoInfo:
    """Blocking: parse ``path``'s container header (see :func:`probe_video`)."""
    hachoir_config.quiet = True  # hachoir reports parse trouble on stderr; the Problem says it instead
    with path.open("rb") as raw:
        source = _DeadlineFile(raw, deadline)
        try:
            # "file:" + a name without .m2ts: hachoir then reads 188-byte transport stream packets.
            stream = InputIOStream(source, source="file:upload", tags=[])
            parser = guessParser(stream) or _transport_stream(stream)
            if parser is None:
                raise Problem(415, "the upload is not a video: unknown data", title="Not a video")
            return _classify(parser)
        except ProbeTimeout:
            raise TimeoutError from None
        finally:
            # hachoir swallows parse errors, our deadline's included: an expired read is a timeout.
            if source.expired:
                raise TimeoutError


def _transport_stream(stream: InputIOStream) -> Parser | None:
    try:
        return MPEG_TS(stream, validate=True)
    except ValidateError:
        return None


def _classify(parser: Parser) -> VideoInfo:
    name = type(parser).__name__
    mime = str(parser.mime_type or "")
    category = parser.PARSER_TAGS.get("category")
    if category == "image":
        raise Problem(415, f"the upload is a still image ({mime or name}), not a video", title="Not a video")
    if name not in VIDEO_PARSERS:
        raise Problem(415, f"the upload is not a video container ({parser.description})", title="Not a video")
    if name in {"MPEG_TS", "MPEGVideoFile"}:
        if not _mpeg_has_video(parser):
            raise Problem(415, f"the upload has no video stream ({parser.description})", title="Not a video")
        # No duration in an MPEG stream's header: the worker's ffprobe measures it.
        return VideoInfo(format=name, mime_type=mime, duration=None, width=0, height=0)
    if name == "MP4File" and not any(atom["tag"].value == "moov" for atom in parser):
        # Written without +faststart, an MP4's index comes last: an upload cut short has none.
        raise Problem(422, "the MP4 has no 'moov' index (the file is truncated?)", title="Unreadable video")
    metadata = extractMetadata(parser)
    if metadata is None or not (metadata.has("duration") or metadata.has("width") or _groups(metadata)):
        raise Problem(422, f"the video's header cannot be read ({parser.description})", title="Unreadable video")
    width = int(metadata.get("width", 0) or 0)
    height = int(metadata.get("height", 0) or 0)
    has_video_stream = any(group.header == "Video stream" for group in _groups(metadata))
    if not (width and height) and not has_video_stream:
        raise Problem(415, f"the upload has no video stream ({mime or name}, audio only?)", title="Not a video")
    duration = metadata.get("duration", None)
    seconds = duration.total_seconds() if duration is not None else 0.0
    if seconds <= 0:
        raise Problem(422, "the video has no duration", title="Unreadable video")
    return VideoInfo(format=name, mime_type=mime, duration=seconds, width=width, height=height)


def _groups(metadata: Metadata) -> list[Metadata]:
    # Matroska and AVI list their streams as groups; MP4 and FLV give the picture size instead.
    return list(metadata.iterGroups()) if isinstance(metadata, MultipleMetadata) else []


def _mpeg_has_video(parser: Parser) -> bool:
    for index, field in enumerate(parser):
        if index >= SCANNED_PACKETS:
            return False
        if field.name.startswith("video["):  # MPEG-PS: hachoir names video packets itself
            return True
        if field.name.startswith("packet[") and _pes_is_video(field):
            return True
    return False


def _pes_is_video(packet: Any) -> bool:
    """A transport stream packet that starts a video PES. A damaged packet (random bytes that passed
    the stream's validation: a payload flag with no payload after it, or a payload hachoir cannot
    read, whose value is then None) is not one."""
    try:
        if not (packet["payload_unit_start"].value and packet["has_payload"].value):
            return False
        payload = packet["payload"].value
    except FieldError:  # MissingField included: the packet ends before the field it announces
        return False
    return isinstance(payload, bytes) and payload[:3] == b"\0\0\1" and len(payload) > 3 and payload[3] in PES_VIDEO_IDS
