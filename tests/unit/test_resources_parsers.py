"""Parsers of what an instance costs, on text captured from a real container and QEMU process
(tests/unit/data/resources/, captured on the dev machine: cgroup v1, Docker 20.10, QEMU 7.2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.checks.parsers.proc_resources import (
    CgroupMemory,
    cgroup_v1_cpu_ns,
    cgroup_v1_memory,
    cgroup_v2_cpu_ns,
    cgroup_v2_memory,
    cpu_percent,
    meminfo_available_mib,
    parse_proc_cgroup,
    parse_qemu_img_chain,
    parse_smaps_rollup,
    proc_stat_cpu_ticks,
)
from scripts.checks.parsers.virsh import parse_name_list, parse_vol_list
from scripts.checks.targets.libvirt_domains import kvm_device_problem

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data" / "resources"
CONTAINER_ID = "5e585c24db0e42175f11b268ffdad2dbd9d33391d4ff2b5e65f0c95c302e4499"
POOL = "/var/lib/twinlab/pools/twinlab-rtest"


def read(name: str) -> str:
    return (DATA / name).read_text()


def test_proc_cgroup_of_a_container_on_cgroup_v1_hybrid() -> None:
    paths = parse_proc_cgroup(read("container.proc_cgroup"))
    assert paths.v1_path("memory") == f"/docker/{CONTAINER_ID}"
    assert paths.v1_path("cpuacct") == f"/docker/{CONTAINER_ID}"
    assert paths.v1_path("name=systemd") == f"/docker/{CONTAINER_ID}"
    assert paths.unified == f"/docker/{CONTAINER_ID}"


def test_proc_cgroup_pure_v2_and_comounted_controllers() -> None:
    v2 = parse_proc_cgroup("0::/system.slice/docker-abc.scope\n")
    assert v2.v1 == {} and v2.unified == "/system.slice/docker-abc.scope"
    comounted = parse_proc_cgroup("3:cpu,cpuacct:/docker/x\n")
    assert comounted.v1_path("cpu") == comounted.v1_path("cpuacct") == "/docker/x"


def test_v1_memory_matches_docker_stats() -> None:
    # docker stats showed 26.7MiB for this container when these files were read.
    memory = cgroup_v1_memory(
        read("container.memory.usage_in_bytes"), read("container.memory.stat")
    )
    assert memory.usage_bytes == 27992064
    assert memory.inactive_file_bytes == 0
    assert round(memory.charged_bytes / 2**20, 1) == 26.7


def test_inactive_file_cache_is_not_charged_unless_it_exceeds_usage() -> None:
    stat = "cache 4096\ntotal_inactive_file 1048576\ninactive_file 1048576\n"
    assert cgroup_v1_memory("3145728\n", stat).charged_bytes == 2097152
    assert CgroupMemory(usage_bytes=100, inactive_file_bytes=500).charged_bytes == 100


def test_v2_memory_and_cpu() -> None:
    # Shape of cgroup v2 memory.stat / cpu.stat (kernel docs, cgroup-v2.rst).
    stat = "anon 20971520\nfile 8388608\ninactive_file 4194304\nactive_file 4194304\n"
    memory = cgroup_v2_memory("31457280\n", stat)
    assert memory.charged_bytes == 31457280 - 4194304
    cpu_stat = "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\n"
    assert cgroup_v2_cpu_ns(cpu_stat) == 1_500_000_000
    with pytest.raises(ValueError, match="usage_usec"):
        cgroup_v2_cpu_ns("nr_periods 0\n")


def test_cpuacct_usage() -> None:
    assert cgroup_v1_cpu_ns(read("container.cpuacct.usage")) > 0


def test_smaps_rollup_of_qemu() -> None:
    rollup = parse_smaps_rollup(read("qemu.smaps_rollup"))
    assert rollup["Pss"] == 572374
    assert rollup["Rss"] == 581972
    assert rollup["Pss_Anon"] + rollup["Pss_File"] + rollup["Pss_Shmem"] == rollup["Pss"]
    with pytest.raises(ValueError, match="Pss"):
        parse_smaps_rollup("Rss: 10 kB\n")


def test_proc_stat_cpu_ticks() -> None:
    captured = read("qemu.stat")
    fields = captured.rpartition(")")[2].split()
    assert proc_stat_cpu_ticks(captured) == int(fields[11]) + int(fields[12])
    # comm may hold spaces and parentheses: fields count from the last ')'.
    odd = "42 (a (b) c) S 1 42 42 0 -1 0 0 0 0 0 7 5 0 0 20 0 1 0 100"
    assert proc_stat_cpu_ticks(odd) == 12


def test_cpu_percent() -> None:
    assert cpu_percent(0.5, 10.0) == pytest.approx(5.0)
    assert cpu_percent(20.0, 10.0) == pytest.approx(200.0)
    with pytest.raises(ValueError):
        cpu_percent(1.0, 0.0)


def test_qemu_img_backing_chain() -> None:
    chain = parse_qemu_img_chain(read("root.qemu-img-chain.json"))
    assert [image.filename for image in chain] == [
        f"{POOL}/twinlab-rtest-root.qcow2",
        f"{POOL}/twinlab-rtest-base.qcow2",
    ]
    overlay, base = chain
    assert overlay.backing_filename == f"{POOL}/twinlab-rtest-base.qcow2"
    assert base.backing_filename is None
    assert overlay.virtual_size_bytes == base.virtual_size_bytes == 3 * 2**30
    assert base.actual_size_bytes > 100 * 2**20 > overlay.actual_size_bytes


def test_qemu_img_single_image() -> None:
    (base,) = parse_qemu_img_chain(read("base.qemu-img.json"))
    assert base.format == "qcow2" and base.backing_filename is None


def test_meminfo_available() -> None:
    text = "MemTotal:       24731648 kB\nMemFree:  1 kB\nMemAvailable:   23881728 kB\n"
    assert meminfo_available_mib(text) == pytest.approx(23322.0)
    with pytest.raises(ValueError):
        meminfo_available_mib("MemTotal: 1 kB\n")


def test_virsh_tables() -> None:
    volumes = parse_vol_list(read("vol-list.header.txt"))
    assert volumes["twinlab-rtest-base.qcow2"] == f"{POOL}/twinlab-rtest-base.qcow2"
    assert len(volumes) == 4
    assert parse_name_list("twinlab-a-vm\n\ntwinlab-b-vm\n") == ["twinlab-a-vm", "twinlab-b-vm"]


def test_kvm_device_problem(tmp_path: Path) -> None:
    device = tmp_path / "kvm"
    assert kvm_device_problem(str(device)) is None  # no /dev/kvm: nothing to re-probe
    device.write_text("")
    device.chmod(0o600)
    problem = kvm_device_problem(str(device))
    assert problem is not None and "chmod 660" in problem
    device.chmod(0o666)
    assert kvm_device_problem(str(device)) is None
