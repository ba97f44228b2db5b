"""Helpers for the services' tests: free ports and real service processes.

Imported by tests only; nothing at run time depends on it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gunicorn_command(app: str, port: int, *, workers: int | None = 1) -> list[str]:
    cmd = [
        sys.executable, "-m", "gunicorn", "-c", "python:panorama.core.gunicorn_conf",
        "--bind", f"127.0.0.1:{port}", app,
    ]  # fmt: skip
    if workers is not None:
        cmd[5:5] = ["--workers", str(workers)]
    return cmd


class ServiceProcess:
    """A real process (gunicorn, celery) started for a test, with its output kept in a file."""

    def __init__(self, cmd: Sequence[str], env: Mapping[str, str], log_path: Path, *, url: str | None = None) -> None:
        self.cmd = list(cmd)
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.url = url
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return self

    @property
    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_ready(self, path: str = "/readyz", timeout: float = 30.0) -> None:
        assert self.url, "wait_ready needs a url"
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.cmd[:4]} exited with {self.proc.returncode}:\n{self.output[-4000:]}")
            try:
                response = httpx.get(self.url + path, timeout=2.0)
                if response.status_code == 200:
                    return
                last = f"{response.status_code} {response.text[:500]}"
            except httpx.HTTPError as exc:
                last = repr(exc)
            time.sleep(0.2)
        raise TimeoutError(f"{self.url}{path} not ready after {timeout}s: {last}\n{self.output[-4000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(10)

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(
    cmd: Sequence[str],
    env: Mapping[str, str],
    log_path: Path,
    *,
    url: str | None = None,
    ready: str | None = "/readyz",
    timeout: float = 30.0,
) -> Iterator[ServiceProcess]:
    """Start a process, wait for ``url + ready`` to answer 200, stop it on exit (SIGTERM, then SIGKILL)."""
    service = ServiceProcess(cmd, env, log_path, url=url).start()
    try:
        if url and ready:
            service.wait_ready(ready, timeout)
        yield service
    finally:
        service.stop()
