"""make up's live page in a real browser: headless Chromium (Debian's chromium + chromium-driver, selenium).

Runs when ``PANORAMA_LIVE_PAGE_TEST=1`` and /usr/bin/chromedriver exists (.ci/run installs both).
Starts the suite on free ports (infra/local/suite.py) and the live page's server on a free
loopback port, opens the page, and checks: it renders every service with no console error, the
numbers move once load starts (requests, compute's pool busy/queued/rejected, a video job's
progress), and it saves a screenshot to docs/img/live-page.png.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from infra.local import live
from infra.local.suite import running_suite

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("PANORAMA_LIVE_PAGE_TEST") != "1", reason="PANORAMA_LIVE_PAGE_TEST=1 runs it"),
    pytest.mark.skipif(shutil.which("chromedriver") is None, reason="needs chromedriver (apt install chromium-driver)"),
    pytest.mark.timeout(400),
]

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "docs/img/live-page.png"
CHROME_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--window-size=1400,1000",
)  # fmt: skip


def browser():  # type: ignore[no-untyped-def]
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    if Path("/usr/bin/chromium").exists():
        options.binary_location = "/usr/bin/chromium"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))


def text(driver, element_id: str) -> str:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.ID, element_id)
    return found[0].text if found else ""


def wait_for(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    raise AssertionError(f"not within {timeout}s: {what}")


def test_the_live_page_loads_clean_and_its_numbers_move_under_load(
    tmp_path: Path, database_url: str, redis_url: str
) -> None:
    extra = {"compute": {"PANORAMA_MAX_IN_FLIGHT": "3"}}
    with running_suite(tmp_path / "suite", database_url, redis_url, extra) as suite:
        sources = live.Sources(
            suite.urls,
            api_key=suite.api_key,
            internal_token=suite.internal_token,
            metrics_urls=suite.metrics_urls,
            storage_dir=tmp_path / "suite" / "storage",
        )
        server = live.serve(sources, 0)
        host, port = server.server_address[:2]
        assert host == "127.0.0.1"
        page = f"http://127.0.0.1:{port}/"
        assert httpx.post(page + "api/snapshot").status_code == 501  # read-only: no method but GET
        driver = browser()
        stop = threading.Event()
        threads: list[threading.Thread] = []
        try:
            driver.get(page)
            wait_for(lambda: text(driver, "compute-requests") != "", 30, "the compute card rendered")
            for service in ("gateway", "io", "compute", "video-worker"):
                assert f"{service}\nup" in driver.find_element("id", "grid").text, driver.find_element(
                    "id", "grid"
                ).text
            # The process pool's label (pool="cpu" today) as compute exports it: not the thread pool's.
            pools = sources.snapshot()["services"]["compute"]["process_pools"]
            (process,) = [p for p in pools if p not in ("medium", "thread")]
            rejected, busy = f"compute-rejected-{process}", f"compute-pool-{process}"
            before = {i: text(driver, i) for i in ("gateway-requests", "compute-requests", rejected)}
            busy_before = text(driver, busy)

            clip = tmp_path / "clip.mp4"
            subprocess.run(
                [
                    "ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc=size=640x480:rate=30", "-t", "20",
                    "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(clip),
                ],
                check=True,
            )  # fmt: skip

            def hammer() -> None:
                with httpx.Client(
                    base_url=suite.urls["gateway"], headers={"X-API-Key": suite.api_key}, timeout=60
                ) as c:
                    while not stop.is_set():
                        with contextlib.suppress(httpx.HTTPError):
                            c.post("/compute", json={"n": 8_000_000})

            threads += [threading.Thread(target=hammer, daemon=True) for _ in range(6)]
            for thread in threads:
                thread.start()
            gateway = httpx.Client(base_url=suite.urls["gateway"], headers={"X-API-Key": suite.api_key})
            with gateway as client, clip.open("rb") as f:
                assert (
                    client.post("/upload-video", files={"file": ("c.mp4", f, "video/mp4")}, timeout=60).status_code
                    == 202
                )
            # First, while the job runs: on a fast machine it was done (and off the page, which lists
            # running jobs) before the waits below had passed.
            wait_for(lambda: int(text(driver, "jobs-count") or 0) >= 1, 30, "the video job shows")

            wait_for(
                lambda: text(driver, "gateway-requests") != before["gateway-requests"], 20, "gateway requests moved"
            )
            wait_for(
                lambda: text(driver, "compute-requests") != before["compute-requests"], 20, "compute requests moved"
            )
            wait_for(
                lambda: text(driver, rejected) not in ("", before[rejected], "0"),
                30,
                "503s counted",
            )
            wait_for(lambda: text(driver, busy) != busy_before, 20, "pool busy/queued moved")
            time.sleep(3)  # a few seconds of sparklines for the picture
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(SCREENSHOT))
            errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
            assert errors == [], errors
        finally:
            stop.set()
            for thread in threads:
                thread.join(70)  # each ends its request (timeout 60 s) and closes its client
            driver.quit()
            server.shutdown()
            server.server_close()
            sources.close()
