import asyncio

import pytest

from panorama.core.errors import Problem
from panorama.gateway import ratelimit
from panorama.gateway.ratelimit import RateLimiter
from panorama.testing import free_port

KEY = "rate-limit-test-key-0123456789"


async def test_a_key_over_its_budget_gets_429_with_retry_after() -> None:
    limiter = RateLimiter("3/minute", None)
    for _ in range(3):
        await limiter.check(KEY)
    with pytest.raises(Problem) as info:
        await limiter.check(KEY)
    assert info.value.status == 429
    assert 1 <= int(info.value.headers["Retry-After"]) <= 60


async def test_each_key_has_its_own_budget() -> None:
    limiter = RateLimiter("1/minute", None)
    await limiter.check(KEY)
    await limiter.check(KEY[::-1])
    with pytest.raises(Problem):
        await limiter.check(KEY)


async def test_workers_share_one_budget_through_redis(redis_url: str) -> None:
    first, second = RateLimiter("2/minute", redis_url), RateLimiter("2/minute", redis_url)
    key = KEY + "-shared"
    await first.check(key)
    await second.check(key)
    with pytest.raises(Problem):
        await first.check(key)
    await first.aclose()
    await second.aclose()


async def test_an_unreachable_limiter_store_fails_open() -> None:
    limiter = RateLimiter("1/minute", f"redis://127.0.0.1:{free_port()}/0")
    for _ in range(3):
        await limiter.check(KEY)
    await limiter.aclose()


async def test_off_means_no_limit() -> None:
    limiter = RateLimiter(None, None)
    for _ in range(50):
        await limiter.check(KEY)


def test_keys_are_hashed_before_they_are_stored() -> None:
    assert KEY not in RateLimiter.bucket(KEY)
    assert RateLimiter.bucket(KEY) == RateLimiter.bucket(KEY)


async def test_wrong_key_failures_are_counted_per_client_across_workers(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimit, "STANDING_TTL", 0.3)
    first = RateLimiter(None, redis_url, auth_failures=2)
    second = RateLimiter(None, redis_url, auth_failures=2)
    client = f"192.0.2.{free_port() % 250}-{KEY}"
    # A valid key's request: the client's standing is read from the store once, then reused.
    for _ in range(50):
        await first.refuse_failing_client(client)
    assert first.standing_reads == 1
    # Wrong keys on either worker count in the one store; past the budget the answer is 429.
    await first.record_auth_failure(client)
    await second.record_auth_failure(client)
    with pytest.raises(Problem) as info:
        await first.record_auth_failure(client)
    assert info.value.status == 429
    assert "Retry-After" in info.value.headers
    # Its valid key is refused at once where the budget ran out, and by the other worker once that
    # worker's reading is older than STANDING_TTL.
    with pytest.raises(Problem):
        await first.refuse_failing_client(client)
    await asyncio.sleep(0.35)
    with pytest.raises(Problem) as info:
        await second.refuse_failing_client(client)
    assert info.value.status == 429
    await first.refuse_failing_client(client + "-other")
    await first.aclose()
    await second.aclose()
