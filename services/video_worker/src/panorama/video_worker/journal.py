"""A job's history on the shared volume: every attempt, and the one completion record.

Redelivery is normal here (``acks_late``: a job whose worker died runs again), so the journal is
what makes completion exactly-once: the record is made by ``os.link`` of a fully written temp
file, which fails if the name exists, so of two attempts that both finish only one completes the
job, and a later delivery finds the record and returns it without transcoding again.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from typing import Any

from panorama.core.queue import StorageLayout


class Journal:
    """Events and completion of one job. Building it does no I/O."""

    def __init__(self, layout: StorageLayout, job_id: str) -> None:
        self.layout = layout
        self.job_id = job_id

    def append(self, event: str, **fields: Any) -> None:
        line = json.dumps({"event": event, "at": time.time(), "pid": os.getpid(), **fields}) + "\n"
        # One write() on an O_APPEND descriptor: lines from concurrent attempts never interleave.
        fd = os.open(self.layout.events(self.job_id), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def events(self) -> list[dict[str, Any]]:
        try:
            text = self.layout.events(self.job_id).read_text()
        except FileNotFoundError:
            return []
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def attempts(self) -> int:
        return sum(1 for e in self.events() if e["event"] == "started")

    def completion(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.layout.completion(self.job_id).read_text())
        except FileNotFoundError:
            return None

    def complete(self, record: dict[str, Any]) -> bool:
        """Store ``record`` as the job's completion; False if another attempt got there first."""
        tmp = self.layout.tmp / f"{self.job_id}.{uuid.uuid4().hex[:8]}.done.part"
        tmp.write_text(json.dumps(record))
        try:
            os.link(tmp, self.layout.completion(self.job_id))
        except FileExistsError:
            return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        return True
