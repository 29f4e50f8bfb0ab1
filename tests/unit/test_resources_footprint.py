"""Footprint readers on a fake /proc and /sys/fs/cgroup tree holding the captured files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from scripts.checks.resources import footprint
from scripts.checks.resources.errors import InstanceNotRunningError

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data" / "resources"
CONTAINER_ID = "5e585c24db0e42175f11b268ffdad2dbd9d33391d4ff2b5e65f0c95c302e4499"
PID = 4242


@pytest.fixture
def host(tmp_path: Path) -> tuple[Path, Path]:
    """(proc, cgroup root) laid out like this host: cgroup v1 with a separate cpuacct mount."""
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    (proc / str(PID)).mkdir(parents=True)
    shutil.copy(DATA / "container.proc_cgroup", proc / str(PID) / "cgroup")
    shutil.copy(DATA / "qemu.smaps_rollup", proc / str(PID) / "smaps_rollup")
    shutil.copy(DATA / "qemu.stat", proc / str(PID) / "stat")
    shutil.copy(DATA / "qemu.smaps", proc / str(PID) / "smaps")
    memory = root / "memory" / "docker" / CONTAINER_ID
    cpuacct = root / "cpuacct" / "docker" / CONTAINER_ID
    memory.mkdir(parents=True)
    cpuacct.mkdir(parents=True)
    (root / "unified").mkdir()
    shutil.copy(DATA / "container.memory.stat", memory / "memory.stat")
    shutil.copy(DATA / "container.memory.usage_in_bytes", memory / "memory.usage_in_bytes")
    shutil.copy(DATA / "container.cpuacct.usage", cpuacct / "cpuacct.usage")
    return proc, root


def test_container_memory_and_cpu(host: tuple[Path, Path]) -> None:
    proc, root = host
    reading = footprint.container_memory(PID, proc, root)
    assert reading.charged_mib == pytest.approx(27992064 / 2**20)
    assert reading.metadata["cgroup_version"] == "v1"
    assert reading.metadata["raw_usage_mib"] == pytest.approx(26.695, abs=1e-3)
    cpu = int((DATA / "container.cpuacct.usage").read_text())
    assert footprint.container_cpu_ns(PID, proc, root) == cpu


def test_comounted_cpu_cpuacct(host: tuple[Path, Path]) -> None:
    proc, root = host
    (root / "cpuacct").rename(root / "cpu,cpuacct")
    assert footprint.container_cpu_ns(PID, proc, root) > 0


def test_cgroup_v2(tmp_path: Path) -> None:
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "7").mkdir(parents=True)
    (proc / "7" / "cgroup").write_text("0::/system.slice/docker-abc.scope\n")
    scope = root / "system.slice" / "docker-abc.scope"
    scope.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory\n")
    (scope / "memory.current").write_text("10485760\n")
    (scope / "memory.stat").write_text("anon 8388608\nfile 2097152\ninactive_file 1048576\n")
    (scope / "cpu.stat").write_text("usage_usec 2500\n")
    reading = footprint.container_memory(7, proc, root)
    assert reading.charged_mib == pytest.approx(9.0)
    assert reading.metadata["cgroup_version"] == "v2"
    assert footprint.container_cpu_ns(7, proc, root) == 2_500_000


def test_qemu_process(host: tuple[Path, Path]) -> None:
    proc, _ = host
    reading = footprint.qemu_memory(PID, proc)
    assert reading.charged_mib == pytest.approx(572374 / 1024)
    assert reading.metadata["rss_mib"] == pytest.approx(581972 / 1024, abs=1e-3)
    assert footprint.qemu_cpu_ns(PID, proc) >= 0
    assert "guest_ram_pss_mib" not in reading.metadata
    split = footprint.qemu_memory(PID, proc, guest_memory_mib=512)
    assert split.metadata["guest_ram_pss_mib"] == 180.0
    assert split.metadata["tcg_cache_pss_mib"] == 288.0
    assert split.parts_mib["guest_ram"] == 180.0 and split.parts_mib["tcg_cache"] == 288.0


def test_a_gone_process_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InstanceNotRunningError, match="QEMU memory"):
        footprint.qemu_memory(99, tmp_path)
