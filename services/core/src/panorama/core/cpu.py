"""The CPU limit this process really has: its own cgroup's CFS quota (v2 ``cpu.max`` or v1
``cpu.cfs_quota_us``), the smallest one up the tree, capped by the CPU affinity.

``os.cpu_count()`` reports the host's cores, not the pod's quota: a pod limited to 1.5 CPUs on a
64-core node would otherwise start 64 workers and be throttled all day.

Which file holds the quota depends on the host. On cgroup v2 it is ``cpu.max`` in the unified
tree; on a hybrid host (v1 controllers plus an empty unified tree, e.g. Debian with podman and
runc) the cpu controller is v1, and a container sees ``/sys/fs/cgroup/cpu/cpu.cfs_quota_us`` while
``/sys/fs/cgroup/unified`` has no ``cpu.max``. So the controller's mount points are read from
``/proc/self/mountinfo`` and this process's place in each hierarchy from ``/proc/self/cgroup``;
every level from the process's own cgroup up to the mount point is read (a pod-level quota limits
its containers too) and the smallest quota wins.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF = Path("/proc/self")
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


def _cfs_limit(cpu_dir: Path) -> float | None:
    quota = _read(cpu_dir / "cpu.cfs_quota_us")
    period = _read(cpu_dir / "cpu.cfs_period_us")
    if quota is None or period is None or int(quota) <= 0:
        return None
    return int(quota) / int(period)


def cgroup_v1_limit(root: Path = CGROUP_ROOT) -> float | None:
    """CPUs allowed by cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (-1 means none)."""
    for cpu_dir in (root / "cpu", root / "cpu,cpuacct", root):
        if (cpu_dir / "cpu.cfs_quota_us").exists():
            return _cfs_limit(cpu_dir)
    return None


@dataclass(frozen=True)
class CgroupMount:
    version: int  # 1 or 2
    root: PurePosixPath  # the hierarchy's path mounted there
    mount_point: Path


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (``\\040``)."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def cpu_mounts(proc: Path = PROC_SELF) -> list[CgroupMount]:
    """The cgroup mounts that carry the cpu controller (v1 ``cpu``) or may (v2), per mountinfo."""
    text = _read(proc / "mountinfo") or ""
    mounts = []
    for line in text.splitlines():
        before, sep, after = line.partition(" - ")
        if not sep:
            continue
        fields, tail = before.split(), after.split()
        if len(fields) < 5 or len(tail) < 3:
            continue
        fstype, super_options = tail[0], tail[2].split(",")
        root, mount_point = PurePosixPath(_unescape(fields[3])), Path(_unescape(fields[4]))
        if fstype == "cgroup" and "cpu" in super_options:
            mounts.append(CgroupMount(1, root, mount_point))
        elif fstype == "cgroup2":
            mounts.append(CgroupMount(2, root, mount_point))
    return mounts


def process_cgroups(proc: Path = PROC_SELF) -> dict[str, PurePosixPath]:
    """This process's cgroup per v1 controller, and ``""`` for the v2 (unified) one."""
    paths: dict[str, PurePosixPath] = {}
    for line in (_read(proc / "cgroup") or "").splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and controllers == "":
            paths[""] = PurePosixPath(path)
        for controller in controllers.split(","):
            if controller:
                paths[controller] = PurePosixPath(path)
    return paths


def _levels(mount: CgroupMount, path: PurePosixPath) -> Iterator[Path]:
    """The process's cgroup directory under a mount, then each parent up to the mount point."""
    try:
        relative = path.relative_to(mount.root)
    except ValueError:
        relative = PurePosixPath()  # a cgroup namespace hides the path: the mount is this cgroup
    directory = mount.mount_point / relative
    while True:
        yield directory
        if directory == mount.mount_point or mount.mount_point not in directory.parents:
            return
        directory = directory.parent


def process_cgroup_limit(proc: Path = PROC_SELF, within: Path = CGROUP_ROOT) -> tuple[float | None, int]:
    """(the smallest CFS quota on this process's cgroup path, in CPUs; how many cpu mounts were found).

    Only mounts under ``within`` count, so a test can point both at a fake tree.
    """
    cgroups = process_cgroups(proc)
    limits: list[float] = []
    found = 0
    for mount in cpu_mounts(proc):
        if mount.mount_point != within and within not in mount.mount_point.parents:
            continue
        path = cgroups.get("cpu" if mount.version == 1 else "")
        if path is None:
            continue
        found += 1
        for directory in _levels(mount, path):
            limit = _cfs_limit(directory) if mount.version == 1 else cgroup_v2_limit(directory)
            if limit is not None:
                limits.append(limit)
    return (min(limits) if limits else None), found


def affinity_cpus() -> int:
    """CPUs this process may be scheduled on (respects taskset and cpusets)."""
    return len(os.sched_getaffinity(0))


def cgroup_limit(root: Path = CGROUP_ROOT, proc: Path = PROC_SELF) -> float | None:
    """This process's cgroup quota in CPUs, or None. Without a cgroup mount under ``root`` in
    ``proc``'s mountinfo (a bare copied tree), ``root`` itself is read, v2 then v1."""
    limit, mounts = process_cgroup_limit(proc, within=root)
    if mounts:
        return limit
    limit = cgroup_v2_limit(root)
    return cgroup_v1_limit(root) if limit is None else limit


def cpu_limit(environ: Mapping[str, str] | None = None, root: Path = CGROUP_ROOT, proc: Path = PROC_SELF) -> float:
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
    limit = cgroup_limit(root, proc)
    return cpus if limit is None else min(limit, cpus)
