"""Retention on real files: old uploads, renditions, job records and temp leftovers go; recent ones stay."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

from panorama.core.queue import StorageLayout
from panorama.video_worker.retention import DAY, RetentionTimer, sweep


def make_job(layout: StorageLayout, age: float, *, upload: bool, rendition: bool) -> str:
    job_id = uuid.uuid4().hex
    files = [layout.record(job_id), layout.events(job_id)]
    if upload:
        files.append(layout.source(job_id))
    if rendition:
        files += [layout.output(job_id), layout.completion(job_id)]
    then = time.time() - age
    for path in files:
        path.write_bytes(b"x" * 100)
        os.utime(path, (then, then))
    return job_id


def names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def test_sweep_keeps_what_the_policy_keeps_and_deletes_the_rest(tmp_path: Path) -> None:
    layout = StorageLayout(tmp_path)
    layout.ensure()
    fresh = make_job(layout, 3600, upload=True, rendition=True)
    failed_recently = make_job(layout, 1 * DAY, upload=True, rendition=False)
    failed_long_ago = make_job(layout, 3 * DAY, upload=True, rendition=False)
    served = make_job(layout, 6 * DAY, upload=False, rendition=True)
    expired = make_job(layout, 8 * DAY, upload=False, rendition=True)
    forgotten_failure = make_job(layout, 8 * DAY, upload=True, rendition=False)
    leftover = layout.tmp / f"{uuid.uuid4().hex}.upload.part"
    leftover.write_bytes(b"half")
    os.utime(leftover, (time.time() - 3 * DAY,) * 2)
    in_progress = layout.tmp / f"{uuid.uuid4().hex}.upload.part"
    in_progress.write_bytes(b"half")

    report = sweep(layout, upload_retention=2 * DAY, rendition_retention=7 * DAY)

    # jobs: the expired rendition's record, events and completion; the old failure's record and events.
    assert report.as_dict() == {"uploads": 2, "renditions": 1, "jobs": 5, "tmp": 1}
    assert names(layout.uploads) == {f"{fresh}.src", f"{failed_recently}.src"}
    assert names(layout.outputs) == {f"{fresh}.mp4", f"{served}.mp4"}
    assert names(layout.tmp) == {in_progress.name}
    for gone in (expired, forgotten_failure):
        assert not any(p.name.startswith(gone) for p in layout.jobs.iterdir())
    for kept in (fresh, failed_recently, failed_long_ago, served):
        assert layout.record(kept).exists()
    # A second sweep finds nothing more to do.
    assert not any(sweep(layout, upload_retention=2 * DAY, rendition_retention=7 * DAY).as_dict().values())


def test_the_timer_sweeps_every_interval_until_stopped(tmp_path: Path) -> None:
    layout = StorageLayout(tmp_path)
    layout.ensure()
    timer = RetentionTimer(layout, upload_retention=1.0, rendition_retention=7 * DAY, interval=0.2)
    timer.start()
    try:
        upload = layout.source(uuid.uuid4().hex)
        upload.write_bytes(b"video")
        deadline = time.monotonic() + 5
        while upload.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not upload.exists()
    finally:
        timer.stop()
    assert timer._thread is not None
    assert not timer._thread.is_alive()
