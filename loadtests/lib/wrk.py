"""wrk as the load generator for the throughput sections, when it is on the PATH (``apt install wrk``).

Why: on a 2-core machine a Python load generator takes a whole core of its own. Driving the
gateway (gateway + io + client: three busy processes) against io alone (io + client: two) then
measures the machine's core count, not the gateway: section 2 read 41 % with aiohttp as the client
and 85 % with wrk, on the same services in the same minute. wrk is C and event-driven; it costs a
tenth of a core at these rates, so the services get the cores they would get in a cluster.

Without wrk the sections fall back to the aiohttp closed loop (``load.closed_loop``) and say so in
their result (``load_generator``): the figures are then a floor, not the services' own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Counts each status and each X-Cache value; prints one JSON line at the end. The latencies are wrk's
# own (microseconds, from its HdrHistogram-like record), so p50/p99 cost the client nothing.
SCRIPT = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {}; cache = {} end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local c = headers["x-cache"] or headers["X-Cache"] or "-"
  cache[c] = (cache[c] or 0) + 1
end
function done(summary, latency, requests)
  local s, c = {}, {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("statuses")) do s[tostring(k)] = (s[tostring(k)] or 0) + v end
    for k, v in pairs(t:get("cache")) do c[k] = (c[k] or 0) + v end
  end
  local parts = {}
  for k, v in pairs(s) do table.insert(parts, string.format('"%s":%d', k, v)) end
  local cparts = {}
  for k, v in pairs(c) do table.insert(cparts, string.format('"%s":%d', k, v)) end
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"socket_errors":%d,'
    .. '"statuses":{%s},"x_cache":{%s}}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, table.concat(parts, ","), table.concat(cparts, ",")))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def version() -> str:
    out = subprocess.run(["wrk", "--version"], capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).split("Copyright")[0].strip()


def run(
    url: str, *, concurrency: int, seconds: float, headers: Mapping[str, str] | None = None, threads: int = 1
) -> dict[str, Any]:
    """A closed loop of ``concurrency`` connections on ``url`` for ``seconds``: the summary the
    aiohttp loop gives (rps of 200s, p50/p99 ms, requests, errors) plus statuses and X-Cache counts."""
    with tempfile.TemporaryDirectory(prefix="panorama-wrk-") as tmp:
        script = Path(tmp) / "count.lua"
        script.write_text(SCRIPT)
        cmd = ["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{max(1, round(seconds))}s", "--timeout", "30s"]
        cmd += ["-s", str(script)]
        for name, value in (headers or {}).items():
            cmd += ["-H", f"{name}: {value}"]
        done = subprocess.run([*cmd, url], capture_output=True, text=True, timeout=seconds + 60, check=True)
    line = next(x for x in done.stdout.splitlines() if x.startswith("WRK_JSON "))
    raw = json.loads(line.removeprefix("WRK_JSON "))
    ok = int(raw["statuses"].get("200", 0))
    elapsed = raw["duration_us"] / 1e6
    return {
        "rps": round(ok / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(raw["p50_us"] / 1000, 2),
        "p99_ms": round(raw["p99_us"] / 1000, 2),
        "requests": raw["requests"],
        "errors": raw["requests"] - ok + raw["socket_errors"],
        "statuses": raw["statuses"],
        "x_cache": raw["x_cache"],
    }
