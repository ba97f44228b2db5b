import time
from pathlib import Path

from fastapi.testclient import TestClient

from panorama.compute.child import CHILD_TITLE


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
