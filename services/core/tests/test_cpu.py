from pathlib import Path

import pytest

from panorama.core.cpu import affinity_cpus, cgroup_v1_limit, cgroup_v2_limit, cpu_limit


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
