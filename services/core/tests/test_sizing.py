import pytest

from panorama.core.sizing import PlanError, plan


@pytest.mark.parametrize(
    ("cpu", "workers", "process_pool", "celery"),
    [(0.25, 1, 1, 1), (0.5, 1, 1, 1), (1, 1, 1, 1), (1.4, 1, 1, 1), (1.5, 2, 1, 2), (2, 2, 1, 2), (4, 4, 1, 4)],
)
def test_workers_and_pools_follow_the_cpu_limit(cpu: float, workers: int, process_pool: int, celery: int) -> None:
    result = plan(cpu)
    assert (result.workers, result.process_pool_size, result.celery_concurrency) == (workers, process_pool, celery)


def test_one_worker_gets_every_core_for_its_process_pool() -> None:
    result = plan(4, workers=1)
    assert result.workers == 1
    assert result.process_pool_size == 4


def test_thread_tokens_match_the_sync_pool() -> None:
    assert plan(2, sync_pool_size=7).thread_tokens == 7


def test_connections_count_every_replica_worker_and_pool() -> None:
    result = plan(2, replicas=3, pool_size=4, max_overflow=2, sync_pool_size=3, max_connections=200)
    assert result.connections_per_worker == 9
    assert result.connections_total == 3 * 2 * 9


def test_plan_over_the_connection_budget_is_refused_saying_by_how_much() -> None:
    # 4 replicas x 2 workers x (5 + 5 + 10) = 160 > 100 - 10 = 90: over by 70.
    with pytest.raises(PlanError, match=r"needs 160 database connections but the budget is 90.*over by 70"):
        plan(2, replicas=4, max_connections=100, reserved_connections=10)


def test_plan_exactly_at_the_budget_is_accepted() -> None:
    result = plan(1, replicas=3, pool_size=5, max_overflow=5, sync_pool_size=10, max_connections=70)
    assert result.connections_total == result.connection_budget == 60


@pytest.mark.parametrize("kwargs", [{"cpu_limit": 0}, {"cpu_limit": -1}, {"cpu_limit": float("nan")}])
def test_nonsense_cpu_limits_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(PlanError, match="cpu_limit"):
        plan(**kwargs)


def test_plan_explains_every_number() -> None:
    text = "\n".join(plan(1.5).explanation)
    for word in ("workers = 2", "process pool = 1", "celery concurrency = 2", "thread tokens = 10", "connections"):
        assert word in text


def test_a_service_without_a_database_has_no_connection_budget_to_fit() -> None:
    result = plan(8, replicas=10, max_connections=20, database=False)
    assert result.workers == 8
    assert (result.db_pool_size, result.sync_pool_size, result.connections_total) == (0, 0, 0)
    assert result.thread_tokens == 10


def test_the_same_pod_with_a_database_is_refused() -> None:
    with pytest.raises(PlanError, match="over by"):
        plan(8, replicas=10, max_connections=20, database=True)


def test_io_pools_wait_three_seconds_and_redis_is_sized_in_the_plan() -> None:
    result = plan(2)
    assert result.pool_timeout == 3.0
    assert result.redis_connections == 100
    assert "pool wait = 3s" in "\n".join(result.explanation)
    with pytest.raises(PlanError, match="PANORAMA_REDIS_CONNECTIONS"):
        plan(2, replicas=10, redis_connections=600, max_connections=1000)  # 10 x 2 x 600 > 10,000 - 10


def test_gateway_upstream_sockets_are_planned_and_explained() -> None:
    result = plan(2, database=False, upstream_connections=1024, nofile_limit=1_048_576)
    assert result.upstream_connections == 1024
    assert result.fds_needed == 3 * 1024 + 256
    text = "\n".join(result.explanation)
    assert "upstream sockets = 1024 per downstream per worker" in text
    assert "3328 open files" in text
    assert "10 MB" in text
    # A service without upstream pools plans none and needs no descriptors for them.
    assert plan(2, database=False).upstream_connections == 0


@pytest.mark.parametrize("connections", [0, 10_001])
def test_upstream_sockets_out_of_range_are_refused_naming_the_variable(connections: int) -> None:
    with pytest.raises(PlanError, match=r"PANORAMA_UPSTREAM_CONNECTIONS must be between 1 and 10000"):
        plan(1, database=False, upstream_connections=connections, nofile_limit=1_048_576)


def test_upstream_sockets_beyond_the_open_file_limit_are_refused_with_the_most_that_fits() -> None:
    with pytest.raises(PlanError, match=r"PANORAMA_UPSTREAM_CONNECTIONS=1024 needs 3328 open files.*at most 256"):
        plan(1, database=False, upstream_connections=1024, nofile_limit=1024)
    assert plan(1, database=False, upstream_connections=256, nofile_limit=1024).fds_needed == 1024
