"""What the shared storage keeps, and for how long: storage must not only grow.

- An upload is deleted by the task as soon as its job succeeded (the rendition is the product).
  A failed or abandoned job's upload is kept for ``upload_retention`` (to look at, or to submit
  again), then swept; so are leftovers under ``tmp/`` (a gateway or worker that died mid-write).
- A rendition is served for ``rendition_retention`` after it was made; then it is swept with its
  job's records, and ``/task`` and ``/videos`` answer 404 for it like for any unknown id. A failed
  job's records go after the same time.

The sweep runs in every worker's main process every ``retention_interval`` seconds (a daemon
thread started once the worker is ready); several workers sweeping one volume is harmless, every
deletion tolerates a file already gone.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from panorama.core.queue import StorageLayout

log = logging.getLogger(__name__)
DAY = 24 * 3600


@dataclass
class SweepReport:
    uploads: int = 0
    renditions: int = 0
    jobs: int = 0
    tmp: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"uploads": self.uploads, "renditions": self.renditions, "jobs": self.jobs, "tmp": self.tmp}


def _older(path: Path, cutoff: float) -> bool:
    try:
        return path.stat().st_mtime < cutoff
    except FileNotFoundError:
        return False


def _remove(path: Path) -> bool:
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def sweep(
    layout: StorageLayout, *, upload_retention: float, rendition_retention: float, now: float | None = None
) -> SweepReport:
    """Delete what the policy no longer keeps; return how many files of each kind went."""
    now = time.time() if now is None else now
    report = SweepReport()
    upload_cutoff, rendition_cutoff = now - upload_retention, now - rendition_retention
    for upload in _listing(layout.uploads, "*.src"):
        if _older(upload, upload_cutoff) and _remove(upload):
            report.uploads += 1
    for part in _listing(layout.tmp, "*"):
        if _older(part, upload_cutoff) and _remove(part):
            report.tmp += 1
    for output in _listing(layout.outputs, "*.mp4"):
        if _older(output, rendition_cutoff) and _remove(output):
            report.renditions += 1
            report.jobs += _forget(layout, output.stem)
    for record in _listing(layout.jobs, "*.json"):
        job_id = record.name.removesuffix(".json")
        if "." in job_id or not _older(record, rendition_cutoff) or layout.output(job_id).exists():
            continue
        report.jobs += _forget(layout, job_id)
    return report


def _listing(folder: Path, pattern: str) -> list[Path]:
    try:
        return [p for p in folder.glob(pattern) if p.is_file()]
    except FileNotFoundError:
        return []


def _forget(layout: StorageLayout, job_id: str) -> int:
    """Remove a job's record, completion and events (the record last: while it exists, the job is known)."""
    gone = sum(_remove(p) for p in (layout.completion(job_id), layout.events(job_id), layout.source(job_id)))
    return gone + _remove(layout.record(job_id))


@dataclass
class RetentionTimer:
    """Runs :func:`sweep` every ``interval`` seconds in a daemon thread until :meth:`stop`."""

    layout: StorageLayout
    upload_retention: float
    rendition_retention: float
    interval: float
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="retention-sweep", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            try:
                report = sweep(
                    self.layout, upload_retention=self.upload_retention, rendition_retention=self.rendition_retention
                )
                if any(report.as_dict().values()):
                    log.info("retention sweep removed files", extra={"removed": report.as_dict()})
            except Exception:  # a sweep that failed must not end the timer
                log.exception("retention sweep failed")
            if self._stop.wait(self.interval):
                return
