"""``lib/cpuuse.py``: the CPU section 2 reads per request is the CPU the server really spent.

A server in a child process burns a known amount of CPU on each request; wrk drives it, and the
meter must find the server by its port and read about that amount per request, the generator's
own share apart. ``sections.cpu_bound`` is checked on figures whose bound is known.
"""

from __future__ import annotations

import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from panorama.testing import free_port, running

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lib import cpuuse, sections, wrk

BURN_MS = 2.0
SERVER = textwrap.dedent(
    """
    import sys, time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Burn(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # else each answer waits out the client's delayed ACK

        def do_GET(self):
            end = time.thread_time() + {burn} / 1000
            while time.thread_time() < end:
                pass
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{{}}")

        def log_message(self, *args):
            pass

    ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Burn).serve_forever()
    """
).format(burn=BURN_MS)


@pytest.fixture
def burn(tmp_path: Path) -> Iterator[tuple[str, int]]:
    """The burning server on a free port, answering; its URL and pid."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with running([sys.executable, "-c", SERVER, str(port)], {}, tmp_path / "burn.log", url=url, ready="/") as server:
        assert server.proc is not None
        yield url, server.proc.pid


@pytest.mark.skipif(not wrk.available(), reason="wrk is not installed (apt install wrk)")
def test_the_meter_reads_the_cpu_a_server_spends_per_request(burn: tuple[str, int]) -> None:
    url, pid = burn
    meter = cpuuse.CpuMeter({"burn": url})
    assert [p.pid for p in meter.procs["burn"]] == [pid]
    start = meter.start()
    one = wrk.run(f"{url}/x", concurrency=2, seconds=2)
    figures = meter.per_request(start, one["requests"])
    assert one["errors"] == 0
    assert one["requests"] > 50
    # The burn, plus the server's own HTTP handling (a thread per connection, parsing, writing).
    assert BURN_MS * 1000 <= figures["cpu_us_burn"] <= BURN_MS * 1000 * 2, figures
    assert 0 < figures["cpu_us_generator"] < figures["cpu_us_burn"] / 4, figures
    # The server's one GIL-bound process keeps about one core busy; the host counts everything.
    assert figures["host_cores_busy"] >= 0.7, figures


def test_an_unknown_port_is_refused() -> None:
    with pytest.raises(LookupError, match="no process listens"):
        cpuuse.listeners(f"http://127.0.0.1:{free_port()}")


def test_the_ceiling_is_what_the_cores_allow_against_one_direct_worker() -> None:
    direct = {"rps": 1000.0, "cpu_us_io": 500.0, "cpu_us_generator": 50.0, "host_cores_busy": 0.6}
    # Via: 500 + 500 + 50 µs a request on 2 cores is at most 1905 req/s; direct at most 2000.
    via = {"cpu_us_gateway": 500.0, "cpu_us_io": 500.0, "cpu_us_generator": 50.0, "host_cores_busy": 1.9}
    bound = sections.cpu_bound(via, direct, cores=2)
    assert bound["share_ceiling"] == 0.95
    assert bound["via_cpu_us_per_request"] == 1050.0
    assert bound["direct_io_worker_cores_busy"] == 0.5
    # A gateway twice io's cost, Redis counted: (1000 + 500 + 100 + 50) µs on 2 cores against 2000 req/s.
    heavier = via | {"cpu_us_gateway": 1000.0, "cpu_us_redis": 100.0}
    assert sections.cpu_bound(heavier, direct, cores=2)["share_ceiling"] == 0.61
    # Enough cores: the direct worker's own core is the bound on both paths.
    assert sections.cpu_bound(via, direct, cores=8)["share_ceiling"] == 1.0


def test_own_counts_this_process_as_the_client(burn: tuple[str, int]) -> None:
    meter = cpuuse.CpuMeter({"burn": burn[0]}, own=True)
    start = meter.start()
    end = time.thread_time() + 0.3
    while time.thread_time() < end:  # the client's own work; the server gets no request
        pass
    used = meter.spent(start)
    assert 0.25 <= used["client"] < 0.6, used  # clock ticks: 10 ms steps
    assert used["burn"] < 0.05, used
    assert "generator" not in used
