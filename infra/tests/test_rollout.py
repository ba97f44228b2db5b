"""The rollout wait of `make deploy`: kubectl's rule against the previous one, on status sequences.

infra/tests/data/rollouts.json holds, per rolling update, each status the workload goes through and
whether it has truly rolled out at that point. A rule may never say "done" early, must say it at
the end, and must report a Deployment that exceeded its progress deadline as failed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.deploy import rollout

CASES = json.loads((Path(__file__).parent / "data" / "rollouts.json").read_text())["cases"]


def snapshots(case: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(API object, step) for every step of a recorded rollout."""
    return [
        (
            {
                "kind": case["kind"],
                "metadata": {"name": case["object"], "generation": step["generation"]},
                "spec": case["spec"],
                "status": step["status"],
            },
            step,
        )
        for step in case["steps"]
    ]


def previous_rule(obj: dict[str, Any]) -> bool:
    """The rule rollout.py had: updated >= desired and ready >= desired (generation checked for Deployments)."""
    status, desired = obj["status"], obj["spec"].get("replicas") or 0
    updated = status.get("updatedReplicas") or 0
    if obj["kind"] == "Deployment" and status.get("observedGeneration") != obj["metadata"]["generation"]:
        updated = 0
    return updated >= desired and (status.get("readyReplicas") or 0) >= desired


def kubectl_rule(obj: dict[str, Any]) -> bool:
    return rollout.rollout_status(obj).done


def wrong_steps(rule: Any, case: dict[str, Any]) -> list[str]:
    return [step["note"] for obj, step in snapshots(case) if rule(obj) != step["rolled_out"]]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_kubectl_rule_says_done_exactly_when_rolled_out(case: dict[str, Any]) -> None:
    assert wrong_steps(kubectl_rule, case) == []
    for obj, step in snapshots(case):
        assert rollout.rollout_status(obj).failed == step.get("failed", False), step["note"]


def test_the_previous_rule_is_fooled_by_the_surge_rollouts() -> None:
    fooled = {case["name"]: wrong_steps(previous_rule, case) for case in CASES}
    fooled = {name: steps for name, steps in fooled.items() if steps}
    assert fooled, "the recorded rollouts no longer show the previous rule's flaw"
    # The case the issue names: maxSurge 1 / maxUnavailable 0, readyReplicas still counting the old pod.
    assert fooled["one replica, maxSurge 1 / maxUnavailable 0 (the chart's strategy)"] == [
        "new ReplicaSet scaled to 1: new pod starting, the old pod still serves (readyReplicas counts it)",
        "new pod ready; the old one not yet scaled down",
    ]


def test_messages_follow_kubectl() -> None:
    case = next(c for c in CASES if c["object"] == "panorama-io")
    messages = [rollout.rollout_status(obj).message for obj, _ in snapshots(case)]
    assert messages == [
        "waiting for the deployment spec update to be observed",
        "1 out of 2 new replicas have been updated",
        "1 out of 2 new replicas have been updated",
        "1 old replicas are pending termination",
        "1 old replicas are pending termination",
        "successfully rolled out",
    ]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def replay(*cases: dict[str, Any]) -> Any:
    """A fetch function returning, call after call, each case's next snapshot (the last one repeats)."""
    sequences = [[obj for obj, _ in snapshots(c)] for c in cases]
    calls = {"n": 0}

    def fetch() -> list[dict[str, Any]]:
        n = calls["n"]
        calls["n"] += 1
        return [seq[min(n, len(seq) - 1)] for seq in sequences]

    fetch.calls = calls  # type: ignore[attr-defined]
    return fetch


def test_wait_prints_progress_and_returns_when_every_workload_is_out() -> None:
    by_object = {c["object"]: c for c in CASES}
    fetch = replay(by_object["panorama-io"], by_object["panorama-postgresql"])
    clock, lines = FakeClock(), []
    assert rollout.wait(fetch, timeout=60, interval=3, echo=lines.append, clock=clock, sleep=clock.sleep)
    assert fetch.calls["n"] == 6  # the io rollout's six states
    assert any("Deployment/panorama-io: 1 out of 2 new replicas have been updated" in line for line in lines)
    assert any("Deployment/panorama-io: 1 old replicas are pending termination" in line for line in lines)
    assert lines[-1].endswith("Deployment/panorama-io: successfully rolled out")
    assert len(lines) == len(set(lines)), "a message is printed only when it changes"


def test_wait_gives_up_at_the_progress_deadline() -> None:
    case = next(c for c in CASES if c["object"] == "panorama-video-worker")
    clock, lines = FakeClock(), []
    assert not rollout.wait(replay(case), timeout=600, interval=3, echo=lines.append, clock=clock, sleep=clock.sleep)
    assert lines[-1].endswith("exceeded its progress deadline")
    assert clock.now < 10


def test_wait_times_out_and_names_what_is_pending() -> None:
    case = next(c for c in CASES if c["object"] == "panorama-io")
    stuck = {**case, "steps": case["steps"][:2]}
    clock, lines = FakeClock(), []
    assert not rollout.wait(replay(stuck), timeout=30, interval=3, echo=lines.append, clock=clock, sleep=clock.sleep)
    assert lines[-1] == "  not rolled out: Deployment/panorama-io: 1 out of 2 new replicas have been updated"
