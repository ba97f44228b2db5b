"""The test helpers reap what they start: a Popen left to the garbage collector warns in another test."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import redis

from panorama.testing import ThrowawayRedis


def test_throwaway_redis_is_reaped_when_the_body_raises(tmp_path: Path) -> None:
    server = ThrowawayRedis(tmp_path)

    def failing_test() -> None:
        with server:
            client = redis.Redis.from_url(server.url)
            assert client.ping()
            client.close()
            raise LookupError("the test body failed")

    with pytest.raises(LookupError):
        failing_test()
    assert server.proc is not None
    assert server.proc.returncode is not None, "redis-server left unreaped"


def test_throwaway_redis_is_reaped_when_it_cannot_start(tmp_path: Path) -> None:
    server = ThrowawayRedis(tmp_path)
    with socket.socket() as taken:
        # The port is held by a socket that never answers PING: redis-server exits (address in use)
        # and start() must reap it.
        taken.bind(("127.0.0.1", server.port))
        taken.listen()
        with pytest.raises(RuntimeError, match="exited"):
            server.start()
    assert server.proc is not None
    assert server.proc.returncode is not None, "redis-server left unreaped"
