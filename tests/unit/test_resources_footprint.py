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


def test_a_vm_is_read_from_its_machine_cgroup_like_a_container_with_its_pss_beside(
    host: tuple[Path, Path],
) -> None:
    """R2 like for like: the same cgroup formula as a container's, from the libvirt machine
    scope QEMU's /proc/PID/cgroup names; its PSS and the PSS's parts in the reading too."""
    proc, root = host
    scope = "/machine/qemu-3-twinlab-dev-vm.libvirt-qemu"
    (proc / str(PID) / "cgroup").write_text(
        f"4:memory:{scope}\n2:cpuacct:/\n1:cpu:{scope}/emulator\n0::{scope}/emulator\n"
    )
    memory = root / "memory" / scope.lstrip("/")
    memory.mkdir(parents=True)
    (memory / "memory.usage_in_bytes").write_text(f"{500 * 2**20}\n")
    (memory / "memory.stat").write_text(f"total_inactive_file {20 * 2**20}\ntotal_rss 1\n")
    reading = footprint.vm_memory(PID, proc, root, guest_memory_mib=512)
    assert reading.charged_mib == pytest.approx(480.0)
    assert str(reading.metadata["method"]).startswith("libvirt machine cgroup")
    assert reading.metadata["pss_mib"] == pytest.approx(572374 / 1024, abs=1e-3)
    # smaps and smaps_rollup were captured moments apart: the parts agree within 1 %
    assert sum(reading.parts_mib.values()) == pytest.approx(572374 / 1024, rel=0.01)


def test_a_threaded_v2_leaf_is_accounted_at_its_machine_scope(tmp_path: Path) -> None:
    """cgroup v2: QEMU sits in the threaded child `emulator`; memory is the scope's."""
    proc, root = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "9").mkdir(parents=True)
    (proc / "9" / "cgroup").write_text("0::/machine.slice/machine-qemu-vm.scope/libvirt/emulator\n")
    scope = root / "machine.slice" / "machine-qemu-vm.scope" / "libvirt"
    (scope / "emulator").mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory\n")
    (scope / "emulator" / "cgroup.type").write_text("threaded\n")
    (scope / "cgroup.type").write_text("domain threaded\n")
    (scope / "memory.current").write_text(f"{300 * 2**20}\n")
    (scope / "memory.stat").write_text("anon 1\nfile 1\ninactive_file 0\n")
    assert footprint.container_memory(9, proc, root).charged_mib == pytest.approx(300.0)
