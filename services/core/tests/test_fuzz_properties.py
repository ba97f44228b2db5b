"""Property tests (hypothesis) of the parsers and the sizing rules every pool is built from."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from panorama.core.cpu import cgroup_v2_limit
from panorama.core.sizing import (
    DEFAULT_REDIS_CONNECTIONS,
    DEFAULT_REDIS_MAX_CLIENTS,
    DEFAULT_RESERVED_CONNECTIONS,
    PlanError,
    plan,
)

PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPS
@given(quota=st.integers(1, 10**8), period=st.integers(1000, 10**6))
def test_cpu_max_quota_over_period_is_the_limit(tmp_path: Path, quota: int, period: int) -> None:
    (tmp_path / "cpu.max").write_text(f"{quota} {period}\n")
    assert cgroup_v2_limit(tmp_path) == quota / period


@PROPS
@given(period=st.integers(1000, 10**6))
def test_cpu_max_without_a_quota_is_no_limit(tmp_path: Path, period: int) -> None:
    (tmp_path / "cpu.max").write_text(f"max {period}\n")
    assert cgroup_v2_limit(tmp_path) is None


@PROPS
@given(text=st.text(max_size=40))
def test_cpu_max_garbage_is_refused_as_a_value_error_or_read_as_a_number(tmp_path: Path, text: str) -> None:
    (tmp_path / "cpu.max").write_text(text)
    try:
        limit = cgroup_v2_limit(tmp_path)
    except (ValueError, ZeroDivisionError):
        return
    assert limit is None or limit >= 0


@PROPS
@given(
    cpu=st.floats(0.01, 64, allow_nan=False),
    replicas=st.integers(1, 8),
    workers=st.none() | st.integers(1, 16),
    pool=st.integers(1, 20),
    overflow=st.integers(0, 20),
    sync=st.integers(0, 20),
    max_connections=st.integers(10, 2000),
    database=st.booleans(),
)
def test_plan_invariants(
    cpu: float, replicas: int, workers: int | None, pool: int, overflow: int, sync: int, max_connections: int,
    database: bool,
) -> None:  # fmt: skip
    try:
        p = plan(
            cpu, max_connections=max_connections, replicas=replicas, workers=workers, pool_size=pool,
            max_overflow=overflow, sync_pool_size=sync, database=database,
        )  # fmt: skip
    except PlanError as exc:
        refused = str(exc)
    else:
        refused = ""
    cores = max(1, int(cpu + 0.5))
    processes = replicas * (workers or cores)
    db_over = processes * (pool + overflow + sync) > max_connections - DEFAULT_RESERVED_CONNECTIONS
    redis_over = processes * DEFAULT_REDIS_CONNECTIONS > DEFAULT_REDIS_MAX_CLIENTS - DEFAULT_RESERVED_CONNECTIONS
    if refused:
        # Refused only for a database plan over its Postgres or Redis budget, naming the one it is over.
        assert database
        assert db_over or redis_over
        assert ("max_connections" if db_over else "PANORAMA_REDIS_CONNECTIONS") in refused, refused
        return
    assert not (database and (db_over or redis_over))
    assert p.workers == (workers or cores) >= 1
    assert p.process_pool_size >= 1
    # Processes never oversubscribe the cores (beyond the one-per-worker floor).
    assert p.workers * p.process_pool_size <= max(cores, p.workers)
    assert p.celery_concurrency == cores
    assert p.thread_tokens == max(1, sync)
    if database:
        assert p.sync_pool_size == sync
        assert p.connections_total == replicas * p.workers * (pool + overflow + sync)
        assert p.connections_total <= p.connection_budget
    else:
        assert p.connections_total == p.db_pool_size == p.sync_pool_size == 0
    assert len(p.explanation) >= 4


@pytest.mark.parametrize("cpu", [0.0, -1.0, float("nan"), float("inf")])
def test_plan_refuses_impossible_cpu_limits(cpu: float) -> None:
    with pytest.raises(PlanError):
        plan(cpu)
