"""The process model: gunicorn's worker count follows cgroup limits and WEB_CONCURRENCY."""

import contextlib
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from panorama.core.gunicorn_conf import service_name
from panorama.testing import free_port, gunicorn_command, running

HERE = Path(__file__).parent


def configured_workers(env: dict[str, str]) -> int:
    code = "import panorama.core.gunicorn_conf as c; print(c.workers)"
    clean = {k: v for k, v in os.environ.items() if k not in ("WEB_CONCURRENCY", "PANORAMA_CPU_LIMIT")}
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True, check=True)
    return int(out.stdout.strip())


def fake_cgroup(tmp_path: Path, cpu_max: str) -> str:
    (tmp_path / "cpu.max").write_text(cpu_max + "\n")
    return str(tmp_path)


def test_one_and_a_half_cpus_give_two_workers(tmp_path: Path) -> None:
    assert configured_workers({"PANORAMA_CGROUP_ROOT": fake_cgroup(tmp_path, "150000 100000")}) == 2


def test_one_cpu_gives_one_worker(tmp_path: Path) -> None:
    assert configured_workers({"PANORAMA_CGROUP_ROOT": fake_cgroup(tmp_path, "100000 100000")}) == 1


def test_unlimited_cpu_max_uses_the_cpus_we_may_run_on(tmp_path: Path) -> None:
    expected = len(os.sched_getaffinity(0))
    assert configured_workers({"PANORAMA_CGROUP_ROOT": fake_cgroup(tmp_path, "max 100000")}) == expected


def test_web_concurrency_overrides_the_cgroup(tmp_path: Path) -> None:
    env = {"PANORAMA_CGROUP_ROOT": fake_cgroup(tmp_path, "100000 100000"), "WEB_CONCURRENCY": "3"}
    assert configured_workers(env) == 3


def test_service_name_comes_from_the_app_spec() -> None:
    assert service_name("panorama.io.app:create_app()") == "io"
    assert service_name("elsewhere:app") == "panorama"


def children(pid: int) -> list[int]:
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(p) for p in text.split()]


def test_no_control_socket_is_opened(tmp_path: Path) -> None:
    port = free_port()
    cmd = gunicorn_command("sample_app:create_app()", port)
    cmd[3:3] = ["--pythonpath", str(HERE)]
    env = {"HOME": str(tmp_path / "home"), "XDG_RUNTIME_DIR": str(tmp_path / "run"), "PANORAMA_LOG_JSON": "false"}
    with running(cmd, env, tmp_path / "gunicorn.log", url=f"http://127.0.0.1:{port}"):
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    assert list(tmp_path.rglob("*.ctl")) == []
    assert "Control socket" not in (tmp_path / "gunicorn.log").read_text()


@pytest.mark.slow
def test_real_gunicorn_starts_as_many_workers_as_the_cgroup_allows(tmp_path: Path) -> None:
    port = free_port()
    cmd = gunicorn_command("sample_app:create_app()", port, workers=None)
    cmd[3:3] = ["--pythonpath", str(HERE)]
    env = {"PANORAMA_CGROUP_ROOT": fake_cgroup(tmp_path, "150000 100000"), "PANORAMA_LOG_JSON": "false"}
    with running(cmd, env, tmp_path / "gunicorn.log", url=f"http://127.0.0.1:{port}") as service:
        assert service.proc is not None
        deadline = time.monotonic() + 10
        while len(children(service.proc.pid)) != 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(children(service.proc.pid)) == 2
        plan = httpx.get(f"http://127.0.0.1:{port}/debug/plan").json()
        assert plan["cpu_limit"] == 1.5
        assert plan["workers"] == 2


@pytest.mark.slow
def test_a_bad_setting_stops_start_up_with_a_message_naming_it(tmp_path: Path) -> None:
    port = free_port()
    cmd = gunicorn_command("sample_app:create_app()", port)
    cmd[3:3] = ["--pythonpath", str(HERE)]
    env = {**os.environ, "PANORAMA_DB_POOL_SIZE": "-3"}
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode != 0
    assert "PANORAMA_DB_POOL_SIZE" in result.stdout + result.stderr


def access_lines(log: Path, path: str) -> int:
    return sum(1 for line in log.read_text(errors="replace").splitlines() if f"GET {path}" in line)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, 1),  # on by default, once (not twice: gunicorn's and uvicorn's handlers)
        ({"PANORAMA_LOG_LEVEL": "WARNING"}, 0),  # the level governs uvicorn's access logger too
        ({"PANORAMA_ACCESS_LOG": "false"}, 0),  # its own switch
    ],
    ids=["default", "warning", "off"],
)
def test_access_log_follows_the_level_and_its_own_switch(tmp_path: Path, env: dict[str, str], expected: int) -> None:
    port = free_port()
    cmd = gunicorn_command("sample_app:create_app()", port)
    cmd[3:3] = ["--pythonpath", str(HERE)]
    log = tmp_path / "gunicorn.log"
    with running(cmd, {"PANORAMA_LOG_JSON": "false", **env}, log, url=f"http://127.0.0.1:{port}"):
        for _ in range(3):
            assert httpx.get(f"http://127.0.0.1:{port}/debug/plan").status_code == 200
        time.sleep(0.5)
    assert access_lines(log, "/debug/plan") == 3 * expected


def test_workers_are_recycled_rarely_and_staggered() -> None:
    code = "import panorama.core.gunicorn_conf as c; print(c.max_requests, c.max_requests_jitter)"
    clean = {k: v for k, v in os.environ.items() if k != "PANORAMA_MAX_REQUESTS"}
    out = subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, check=True)
    max_requests, jitter = map(int, out.stdout.split())
    assert max_requests >= 1_000_000  # ~11 min per worker at 1,500 req/s, not 30 s
    assert jitter == max_requests // 2  # workers reach their limit far apart


def test_the_soft_open_file_limit_is_raised_towards_the_hard_one() -> None:
    code = (
        "import resource; hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1];"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard));"
        "import panorama.core.gunicorn_conf as c; print(*resource.getrlimit(resource.RLIMIT_NOFILE), 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    soft, hard, _ = (int(v) for v in out.stdout.split())
    assert soft > 512
    assert soft == min(hard, 3 * 1024 + 256)


def test_worker_limits_are_staggered_across_the_jitter_range() -> None:
    from panorama.core.gunicorn_conf import staggered_limit

    # Two workers started together land in different halves of [base, base + jitter).
    for _ in range(50):
        first, second = staggered_limit(1, 2, 1000, 500), staggered_limit(2, 2, 1000, 500)
        assert 1250 <= first < 1500
        assert 1000 <= second < 1250
    assert staggered_limit(3, 4, 0, 0) == 0  # 0: never recycle


@pytest.mark.slow
def test_running_workers_get_staggered_limits(tmp_path: Path) -> None:
    port = free_port()
    cmd = gunicorn_command("sample_app:create_app()", port, workers=2)
    cmd[3:3] = ["--pythonpath", str(HERE)]
    log = tmp_path / "gunicorn.log"
    env = {"PANORAMA_LOG_JSON": "false", "PANORAMA_MAX_REQUESTS": "20"}
    with running(cmd, env, log, url=f"http://127.0.0.1:{port}"):
        for _ in range(120):  # a new connection each: the kernel spreads them over both workers
            # A worker exiting at its limit can reset a connection it had just accepted (bench
            # section 10 measures that loss); this test is about where the limits fall, not that.
            with contextlib.suppress(httpx.TransportError):
                httpx.get(f"http://127.0.0.1:{port}/debug/plan", timeout=10)
        time.sleep(1)
    limits = sorted({int(n) for n in re.findall(r"Maximum request limit of (\d+) exceeded", log.read_text())})
    assert limits, "no worker recycled"
    assert all(20 <= n < 30 for n in limits)
