"""The CPU limit this process really has: cgroup v2 ``cpu.max``, then v1 CFS quota, then affinity.

``os.cpu_count()`` reports the host's cores, not the pod's quota: a pod limited to 1.5 CPUs on a
64-core node would otherwise start 64 workers and be throttled all day.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
CPU_LIMIT_ENV = "PANORAMA_CPU_LIMIT"


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cgroup_v2_limit(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs allowed by a cgroup v2 ``cpu.max`` (``"150000 100000"`` -> 1.5, ``"max ..."`` -> None)."""
    text = _read(root / "cpu.max")
    if not text:
        return None
    quota, _, period = text.partition(" ")
    if quota == "max":
        return None
    return int(quota) / int(period or "100000")


def cgroup_v1_limit(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs allowed by cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (-1 means none)."""
    for cpu_dir in (root / "cpu", root / "cpu,cpuacct", root):
        quota = _read(cpu_dir / "cpu.cfs_quota_us")
        period = _read(cpu_dir / "cpu.cfs_period_us")
        if quota is not None and period is not None:
            if int(quota) <= 0:
                return None
            return int(quota) / int(period)
    return None


def affinity_cpus() -> int:
    """CPUs this process may be scheduled on (respects taskset and cpusets)."""
    return len(os.sched_getaffinity(0))


def cpu_limit(environ: Mapping[str, str] | None = None, root: Path = CGROUP_ROOT) -> float:
    """The effective CPU limit: ``PANORAMA_CPU_LIMIT``, else cgroups, capped by affinity."""
    env = os.environ if environ is None else environ
    override = env.get(CPU_LIMIT_ENV)
    if override:
        try:
            value = float(override)
        except ValueError:
            raise ValueError(f"{CPU_LIMIT_ENV}={override!r} is not a number of CPUs") from None
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"{CPU_LIMIT_ENV}={override!r} must be a positive number of CPUs")
        return value
    cpus = float(affinity_cpus())
    limit = cgroup_v2_limit(root)
    if limit is None:
        limit = cgroup_v1_limit(root)
    return cpus if limit is None else min(limit, cpus)
