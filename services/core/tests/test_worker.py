"""Worker recycling on real gunicorn processes: a worker at ``max_requests`` is replaced before it stops,
and no request sent on a keep-alive connection is lost to it."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import aiohttp
import pytest

from panorama.testing import free_port, gunicorn_command, running

HERE = Path(__file__).parent
WORKER_CLASS: list[str] = []  # gunicorn_conf's; ["-k", "uvicorn_worker.UvicornWorker"] shows what it fixes


async def keep_alive_load(url: str, connections: int, until: float, log: Path, recycles: int) -> tuple[int, list[str]]:
    """``connections`` keep-alive clients back to back, no retries, until ``recycles`` replacements
    are logged and have stopped (or ``until``): requests answered 200, and every other outcome."""
    ok, failures, done = 0, [], asyncio.Event()

    async def watch() -> None:
        while time.monotonic() < until:
            text = await asyncio.to_thread(log.read_text, errors="replace")
            if text.count("Maximum request limit") >= recycles and text.count("Finished server process") >= recycles:
                break
            await asyncio.sleep(0.2)
        done.set()

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as client:

        async def one_client() -> None:
            nonlocal ok
            while not done.is_set():
                try:
                    async with client.get(url) as resp:
                        await resp.read()
                        if resp.status == 200:
                            ok += 1
                        else:
                            failures.append(str(resp.status))
                except aiohttp.ClientError as exc:
                    failures.append(type(exc).__name__)

        await asyncio.gather(watch(), *(one_client() for _ in range(connections)))
    return ok, failures


@pytest.mark.slow
def test_a_worker_at_its_request_limit_is_replaced_before_it_stops_and_loses_no_request(tmp_path: Path) -> None:
    port = free_port()
    cmd = gunicorn_command("sample_app:create_app()", port, workers=1)
    cmd[3:3] = ["--pythonpath", str(HERE), *WORKER_CLASS]
    log = tmp_path / "gunicorn.log"
    # One worker: with uvicorn's own recycling the pod would have none while the replacement boots,
    # and the keep-alive connections it closed on the way out would reset the requests sent on them.
    env = {"PANORAMA_LOG_JSON": "false", "PANORAMA_MAX_REQUESTS": "60"}
    base = f"http://127.0.0.1:{port}"
    url = f"{base}/healthz"
    with running(cmd, env, log, url=base):
        ok, failures = asyncio.run(keep_alive_load(url, 8, time.monotonic() + 90, log, recycles=2))
    # What happened before the test stopped the master (then every worker stops, replaced or not).
    text = log.read_text(errors="replace").split("Handling signal: term")[0]
    assert failures == []
    assert text.count("replacing worker") >= 2, text[-3000:]
    assert ok > 120
    # Each old worker stopped only after its replacement had started serving (those the run saw out).
    asked = re.findall(r"replacing worker (\d+)", text)
    replaced = [pid for pid in asked if f"Finished server process [{pid}]" in text]
    assert len(replaced) >= 2
    for old in replaced:
        new = re.search(r"Booting worker with pid: (\d+)", text[text.index(f"replacing worker {old}") :])
        assert new is not None
        served = text.index("Application startup complete", text.index(f"Started server process [{new[1]}]"))
        assert served < text.index(f"Finished server process [{old}]")
