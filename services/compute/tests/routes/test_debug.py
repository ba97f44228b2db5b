import os
import time
from pathlib import Path

from fastapi.testclient import TestClient

from panorama.compute.app import create_app
from panorama.compute.child import CHILD_TITLE
from panorama.compute.settings import ComputeSettings


def test_pool_report_is_sized_from_the_plan(client: TestClient) -> None:
    report = client.get("/debug/pool").json()
    plan = client.get("/debug/plan").json()
    assert report["size"] == plan["process_pool_size"] == 2
    assert report["capacity"] == 2 * report["size"]
    assert report["thread"]["size"] == 2
    assert report["start_method"] == "forkserver"
    assert {"busy", "queued", "in_flight"} <= report.keys()


def test_pool_children_ran_the_initializer(client: TestClient) -> None:
    pids = client.get("/debug/pool").json()["pids"]
    assert len(pids) == 2
    for pid in pids:
        assert Path(f"/proc/{pid}/comm").read_text().strip() == CHILD_TITLE


def test_loop_reset_discards_the_samples(client: TestClient) -> None:
    time.sleep(0.2)
    assert client.get("/debug/loop").json()["samples"] >= 1
    assert client.post("/debug/loop/reset").json()["discarded_samples"] >= 1
    assert client.get("/debug/loop").json()["samples"] <= 1


def test_children_run_at_the_configured_niceness() -> None:
    settings = ComputeSettings(cpu_limit=1, web_concurrency=1, child_nice=3, log_level="WARNING")
    with TestClient(create_app(settings)) as client:
        pid = client.get("/debug/pool").json()["pids"][0]
        # Field 19 of /proc/<pid>/stat is the nice value (after the parenthesised command name).
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        assert int(fields[16]) == os.nice(0) + 3
