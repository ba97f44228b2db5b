from pathlib import Path

import pytest

from panorama.core.cpu import affinity_cpus, cgroup_v1_limit, cgroup_v2_limit, cpu_limit, process_cgroup_limit


def write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")


def test_cgroup_v2_quota_of_one_and_a_half_cpus(tmp_path: Path) -> None:
    write(tmp_path, "cpu.max", "150000 100000")
    assert cgroup_v2_limit(tmp_path) == 1.5
    assert cpu_limit({}, tmp_path) == min(1.5, affinity_cpus())


def test_cgroup_v2_max_means_no_limit_so_affinity_counts(tmp_path: Path) -> None:
    write(tmp_path, "cpu.max", "max 100000")
    assert cgroup_v2_limit(tmp_path) is None
    assert cpu_limit({}, tmp_path) == affinity_cpus()


def test_cgroup_v1_quota_is_used_when_v2_is_absent(tmp_path: Path) -> None:
    write(tmp_path, "cpu/cpu.cfs_quota_us", "50000")
    write(tmp_path, "cpu/cpu.cfs_period_us", "100000")
    assert cgroup_v1_limit(tmp_path) == 0.5
    assert cpu_limit({}, tmp_path) == 0.5


def test_cgroup_v1_unlimited_quota_falls_back_to_affinity(tmp_path: Path) -> None:
    write(tmp_path, "cpu/cpu.cfs_quota_us", "-1")
    write(tmp_path, "cpu/cpu.cfs_period_us", "100000")
    assert cpu_limit({}, tmp_path) == affinity_cpus()


def test_quota_above_the_cpus_we_may_run_on_is_capped_by_affinity(tmp_path: Path) -> None:
    write(tmp_path, "cpu.max", f"{(affinity_cpus() + 8) * 100000} 100000")
    assert cpu_limit({}, tmp_path) == affinity_cpus()


def test_env_override_wins_over_cgroups(tmp_path: Path) -> None:
    write(tmp_path, "cpu.max", "150000 100000")
    assert cpu_limit({"PANORAMA_CPU_LIMIT": "3"}, tmp_path) == 3.0


@pytest.mark.parametrize("bad", ["zero", "0", "-1", "nan", "inf"])
def test_bad_env_override_names_the_variable(bad: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="PANORAMA_CPU_LIMIT"):
        cpu_limit({"PANORAMA_CPU_LIMIT": bad}, tmp_path)


# Fake /proc/self trees: mountinfo + cgroup as the kernel writes them, the cgroup files under tmp_path.
def fake_proc(tmp_path: Path, mounts: list[tuple[str, str, str, str]], cgroup: str) -> Path:
    """mounts: (root, mount point under tmp_path, fstype, super options)."""
    lines = ["31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755"]
    for i, (root, point, fstype, options) in enumerate(mounts):
        escaped = str(tmp_path / point).replace(" ", "\\040")
        lines.append(f"{40 + i} 31 0:{29 + i} {root} {escaped} ro,nosuid,relatime - {fstype} cgroup rw,{options}")
    proc = tmp_path / "proc"
    write(proc, "mountinfo", "\n".join(lines))
    write(proc, "cgroup", cgroup)
    return proc


CONTAINER = "/libpod_parent/libpod-df4ab769ae90"
HYBRID_CGROUP = "\n".join(
    [f"9:name=systemd:{CONTAINER}", f"4:memory:{CONTAINER}", f"2:cpuacct:{CONTAINER}", f"1:cpu:{CONTAINER}",
     f"0::{CONTAINER}"]
)  # fmt: skip


def test_hybrid_host_container_reads_the_v1_cpu_controller(tmp_path: Path) -> None:
    """What a podman (runc) container sees on this kind of host: v1 cpu mounted at its own cgroup,
    no unified tree with cpu.max."""
    proc = fake_proc(
        tmp_path,
        [(CONTAINER, "sys/cpu", "cgroup", "cpu"), (CONTAINER, "sys/cpuacct", "cgroup", "cpuacct")],
        HYBRID_CGROUP,
    )
    write(tmp_path / "sys/cpu", "cpu.cfs_quota_us", "150000")
    write(tmp_path / "sys/cpu", "cpu.cfs_period_us", "100000")
    assert process_cgroup_limit(proc, within=tmp_path) == (1.5, 1)
    assert cpu_limit({}, tmp_path, proc) == min(1.5, affinity_cpus())


def test_hybrid_host_with_an_empty_unified_tree_still_reads_v1(tmp_path: Path) -> None:
    proc = fake_proc(
        tmp_path, [(CONTAINER, "sys/cpu", "cgroup", "cpu"), (CONTAINER, "sys/unified", "cgroup2", "")], HYBRID_CGROUP
    )
    write(tmp_path / "sys/cpu", "cpu.cfs_quota_us", "50000")
    write(tmp_path / "sys/cpu", "cpu.cfs_period_us", "100000")
    (tmp_path / "sys/unified").mkdir(parents=True)
    assert process_cgroup_limit(proc, within=tmp_path) == (0.5, 2)


def test_the_smallest_quota_up_the_tree_wins(tmp_path: Path) -> None:
    """The host's view: the hierarchy mounted at /, the process nested in pod and container cgroups."""
    proc = fake_proc(tmp_path, [("/", "sys/cpu,cpuacct", "cgroup", "cpu,cpuacct")], "2:cpu,cpuacct:/kubepods/pod1/ctr")
    base = tmp_path / "sys/cpu,cpuacct"
    for level, quota in (("", "-1"), ("kubepods", "-1"), ("kubepods/pod1", "100000"), ("kubepods/pod1/ctr", "200000")):
        write(base / level, "cpu.cfs_quota_us", quota)
        write(base / level, "cpu.cfs_period_us", "100000")
    assert process_cgroup_limit(proc, within=tmp_path) == (1.0, 1)


def test_cgroup_v2_nested_limit_on_the_parent(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, [("/", "sys", "cgroup2", "nsdelegate")], "0::/pod/ctr")
    write(tmp_path / "sys/pod/ctr", "cpu.max", "max 100000")
    write(tmp_path / "sys/pod", "cpu.max", "75000 100000")
    write(tmp_path / "sys", "cgroup.controllers", "cpu memory")
    assert process_cgroup_limit(proc, within=tmp_path) == (0.75, 1)


def test_a_cgroup_namespace_makes_the_mount_the_process_cgroup(tmp_path: Path) -> None:
    """/proc/self/cgroup says / inside a namespace while the mount's root is the container's path."""
    proc = fake_proc(tmp_path, [(CONTAINER, "sys/cpu", "cgroup", "cpu")], "1:cpu:/")
    write(tmp_path / "sys/cpu", "cpu.cfs_quota_us", "100000")
    write(tmp_path / "sys/cpu", "cpu.cfs_period_us", "100000")
    assert process_cgroup_limit(proc, within=tmp_path) == (1.0, 1)


def test_a_mount_point_with_a_space_is_unescaped(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, [("/", "cgroup root/cpu", "cgroup", "cpu")], "1:cpu:/")
    write(tmp_path / "cgroup root/cpu", "cpu.cfs_quota_us", "250000")
    write(tmp_path / "cgroup root/cpu", "cpu.cfs_period_us", "100000")
    assert process_cgroup_limit(proc, within=tmp_path) == (2.5, 1)


def test_no_quota_anywhere_means_affinity(tmp_path: Path) -> None:
    proc = fake_proc(tmp_path, [("/", "sys/cpu", "cgroup", "cpu")], "1:cpu:/a")
    for level in ("", "a"):
        write(tmp_path / "sys/cpu" / level, "cpu.cfs_quota_us", "-1")
        write(tmp_path / "sys/cpu" / level, "cpu.cfs_period_us", "100000")
    assert process_cgroup_limit(proc, within=tmp_path) == (None, 1)
    assert cpu_limit({}, tmp_path, proc) == affinity_cpus()


def test_this_process_is_read_through_the_real_proc() -> None:
    """On this machine: the controller found in /proc/self/mountinfo, whatever its layout."""
    limit, mounts = process_cgroup_limit()
    assert mounts >= 1
    assert limit is None or limit > 0
