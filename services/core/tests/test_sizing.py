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
