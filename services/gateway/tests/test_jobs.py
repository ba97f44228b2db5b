"""Job and video ids: exactly 32 lower-case hex digits, matched over the whole string."""

from __future__ import annotations

import uuid

import pytest

from panorama.core.errors import Problem
from panorama.gateway.jobs import valid_task_id, valid_video_id

GOOD = uuid.uuid4().hex


@pytest.mark.parametrize("check", [valid_task_id, valid_video_id])
async def test_a_well_formed_id_passes(check) -> None:  # type: ignore[no-untyped-def]
    assert await check(GOOD) == GOOD


@pytest.mark.parametrize("check", [valid_task_id, valid_video_id])
@pytest.mark.parametrize("bad", [GOOD + "\n", GOOD + "\r\n", "\n" + GOOD, GOOD.upper(), GOOD[:-1], GOOD + "0", ""])
async def test_anything_else_is_404_including_a_trailing_newline(check, bad: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Problem) as raised:
        await check(bad)
    assert raised.value.status == 404
