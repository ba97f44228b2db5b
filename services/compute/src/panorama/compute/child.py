"""What runs in the pool: the child initializer and the tasks, all plain picklable functions.

Tasks are referenced by module path (forkserver and spawn pickle functions by name), take plain
arguments, and return plain values. Each task gets an absolute wall-clock ``deadline`` (seconds
since the epoch, comparable across processes): a task that starts late, or runs past it, stops
itself, because a started task cannot be cancelled from the parent short of killing the child.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from panorama.compute import tracing

if TYPE_CHECKING:
    from panorama.compute.model import Mlp

# The deadline is checked between chunks: about 2-3 ms of the Python loop each.
CHUNK = 1 << 16
# numpy's BLAS would start one thread per host core in every child: N children x M threads
# oversubscribe the pod's CPU limit. Set before numpy is first imported in the child.
BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
CHILD_TITLE = "panorama-cpu"


class DeadlineExceeded(Exception):
    """The task's deadline passed before or while it ran; its result would be thrown away."""


@dataclass(frozen=True)
class ChildConfig:
    """What the initializer needs, pickled once per child."""

    log_level: str
    log_json: bool
    model_seed: int
    nice: int = 0
    span_file: str | None = None


# Set by init_child in each child process (never at import time); the thread path never uses it.
_model: Mlp | None = None


def init_child(config: ChildConfig) -> None:
    """Per-child set-up: signals, priority, title, logging, tracing, BLAS threads, then the model."""
    global _model
    # Ctrl-C reaches the whole process group; the parent shuts the pool down in order instead of
    # every child dying mid-task with a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if config.nice:
        # CPU work yields to the event loop of the worker that owns this child (see settings).
        os.nice(config.nice)
    with contextlib.suppress(OSError):
        # What `ps`/`top` show (15 bytes at most on Linux): tells children from workers at a glance.
        Path("/proc/self/comm").write_text(CHILD_TITLE)
    for name in BLAS_THREAD_VARS:
        os.environ[name] = "1"
    from panorama.core.logging import configure_logging

    configure_logging("compute", config.log_level, json=config.log_json)
    from panorama.core.telemetry import setup_telemetry

    # OTLP when configured (the request's trace continues in this child); else the debug file, if any.
    if not setup_telemetry("compute") and config.span_file:
        tracing.export_to_file(Path(config.span_file), "compute")
    from panorama.compute.model import build_model

    _model = build_model(config.model_seed)


def _check(deadline: float | None) -> None:
    if deadline is not None and time.time() > deadline:
        raise DeadlineExceeded("the task's deadline passed; it stopped without a result")


def sum_below(n: int, deadline: float | None = None) -> int:
    """``sum(range(n))`` the slow way: the seed's Python loop, checking the deadline per chunk."""
    total = 0
    for start in range(0, n, CHUNK):
        for i in range(start, min(start + CHUNK, n)):
            total += i
        _check(deadline)
    return total


def compute_task(n: int, deadline: float, carrier: Mapping[str, str]) -> int:
    """The /compute task; runs in a child (process pool) or a worker thread (thread pool)."""
    _check(deadline)
    with tracing.child_span("compute.sum_below", carrier, {"compute.n": n}):
        return sum_below(n, deadline)


def inference_task(rows: Sequence[Sequence[float]], deadline: float, carrier: Mapping[str, str]) -> list[list[float]]:
    """The /ml-inference task; needs the model that init_child built in this child."""
    _check(deadline)
    if _model is None:
        raise RuntimeError("inference_task ran in a process that init_child did not set up")
    with tracing.child_span("compute.inference", carrier, {"compute.rows": len(rows)}):
        return _model.predict(rows)


def ping(hold: float = 0.0) -> int:
    """Warm-up task: returns this child's pid after ``hold`` seconds (so a sibling takes the next one)."""
    time.sleep(hold)
    return os.getpid()
