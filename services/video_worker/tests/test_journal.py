"""Completion is recorded exactly once however many attempts finish; attempts are counted."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from panorama.core.queue import StorageLayout
from panorama.video_worker.journal import Journal

JOB = "0123456789abcdef0123456789abcdef"


def _complete(root: str, attempt: int) -> bool:
    journal = Journal(StorageLayout(Path(root)), JOB)
    return journal.complete({"video_id": JOB, "attempt": attempt})


def test_only_one_of_many_concurrent_attempts_completes_the_job(tmp_path: Path) -> None:
    layout = StorageLayout(tmp_path)
    layout.ensure()
    with ProcessPoolExecutor(max_workers=4) as pool:
        won = list(pool.map(_complete, [str(tmp_path)] * 16, range(16)))
    assert won.count(True) == 1
    record = Journal(layout, JOB).completion()
    assert record == {"video_id": JOB, "attempt": won.index(True)}
    assert list(layout.tmp.iterdir()) == []


def test_attempts_count_started_events_only(tmp_path: Path) -> None:
    layout = StorageLayout(tmp_path)
    layout.ensure()
    journal = Journal(layout, JOB)
    assert journal.attempts() == 0
    journal.append("started", attempt=1)
    journal.append("retrying", reason="storage error")
    journal.append("started", attempt=2)
    assert journal.attempts() == 2
    assert [e["event"] for e in journal.events()] == ["started", "retrying", "started"]
