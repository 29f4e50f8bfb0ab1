"""R2's memory breakdown: QEMU's smaps split into guest RAM, TCG cache and the rest (on smaps
captured from real VMs), the parts as samples, and the stacked bar and table in the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from scripts.checks.parsers.proc_resources import MemoryMapping, parse_smaps, parse_smaps_rollup
from scripts.checks.parsers.qemu_memory import QemuMemoryMapError, qemu_memory_parts
from scripts.checks.resources.footprint import MemoryReading
from scripts.checks.resources.meters import Instance
from scripts.checks.resources.usage import measure_footprint
from scripts.checks.results import memory_breakdown
from scripts.checks.results.memory_breakdown import PARTS
from scripts.checks.results.report import write_run
from scripts.checks.results.run_tags import run_tags
from scripts.checks.results.samples import Sample, VariantLabel
from scripts.checks.results.verdicts import Samples

pytestmark = pytest.mark.unit
DATA = Path(__file__).parent / "data" / "resources"


def smaps(name: str) -> list[MemoryMapping]:
    return parse_smaps((DATA / name).read_text())


def test_a_tcg_guest_with_qemus_default_cache() -> None:
    # qemu.smaps: /proc/PID/smaps of a 512 MiB TCG guest, kept to the Size/Rss/Pss lines.
    mappings = smaps("qemu.smaps")
    assert len(mappings) == 476
    parts = qemu_memory_parts(mappings, guest_memory_mib=512)
    assert parts.total_mib == pytest.approx(sum(m.pss_kb for m in mappings) / 1024)
    assert parts.guest_ram_mib == 180.0 and parts.guest_ram_mapped_mib == 512.0
    # QEMU's default code buffer: 1 GiB less a guard page, 288 MiB of it written.
    assert parts.tcg_cache_mib == 288.0
    assert parts.tcg_cache_mapped_mib == pytest.approx(1024 - 4 / 1024)
    assert 0 < parts.qemu_other_mib < 200
    assert list(parts.parts()) == ["guest_ram", "tcg_cache", "qemu_other"]


def test_a_tcg_guest_with_a_64_mib_cache_set_by_the_stack() -> None:
    # vm-tcg64.smaps: the same 512 MiB guest deployed with twinlab:tcgCacheMiB=64 (QEMU ran
    # with -accel tcg,tb-size=64), captured 20 s after `pulumi up` returned.
    mappings = smaps("vm-tcg64.smaps")
    parts = qemu_memory_parts(mappings, guest_memory_mib=512)
    assert parts.tcg_cache_mapped_mib == pytest.approx(64 - 4 / 1024)
    assert parts.tcg_cache_mib == pytest.approx(64 - 4 / 1024)  # full: the size is a cap
    assert parts.guest_ram_mib == 164.0
    rollup = parse_smaps_rollup((DATA / "vm-tcg64.smaps_rollup").read_text())
    assert parts.total_mib == pytest.approx(rollup["Pss"] / 1024, abs=0.5)


def test_no_cache_without_an_executable_mapping_as_under_kvm() -> None:
    mappings = [m for m in smaps("qemu.smaps") if not m.perms.startswith("rwx")]
    parts = qemu_memory_parts(mappings, guest_memory_mib=512)
    assert parts.tcg_cache_mib == 0 and parts.tcg_cache_mapped_mib == 0
    assert parts.guest_ram_mib == 180.0


def test_the_largest_executable_mapping_is_the_cache() -> None:
    small = MemoryMapping("rwxp", "", 64, 64, 64)  # a trampoline page, not the code buffer
    big = MemoryMapping("rwxp", "", 65532, 8192, 8192)
    ram = MemoryMapping("rw-p", "", 524288, 1024, 1024)
    parts = qemu_memory_parts([small, big, ram], guest_memory_mib=512)
    assert parts.tcg_cache_mib == 8.0 and parts.qemu_other_mib == pytest.approx(64 / 1024)


def test_smaps_of_another_guest_size_is_a_clear_error() -> None:
    with pytest.raises(QemuMemoryMapError, match="no anonymous read-write mapping of 786432 kB"):
        qemu_memory_parts(smaps("qemu.smaps"), guest_memory_mib=768)


VM = VariantLabel("vm", "vm")
BOX = VariantLabel("container", "container")


def reading(label: VariantLabel, metric: str, value: float, **meta: str | int) -> Sample:
    target = f"{label.kind}://x"
    return Sample(metric, value, "MiB", target, label.name, ("R2",), meta, kind=label.kind)


def run() -> list[Sample]:
    samples = []
    for index in range(5):
        samples.append(reading(BOX, "memory_charged_mib", 40.0 + index, reading=index))
        samples.append(reading(VM, "memory_charged_mib", 560.0 + index, reading=index))
        for part, mib in (("guest_ram", 180.0), ("tcg_cache", 288.0), ("qemu_other", 92.0)):
            samples.append(
                reading(VM, memory_breakdown.PART_METRIC, mib + index, part=part, reading=index)
            )
    return samples


def test_one_bar_per_variant_vm_in_parts_container_whole() -> None:
    bars = {bar.variant: bar for bar in memory_breakdown.breakdown(Samples(run()))}
    assert list(bars["vm"].segments) == ["guest_ram", "qemu_other", "tcg_cache"]
    assert bars["vm"].segments["tcg_cache"].n == 5
    assert bars["vm"].segments["tcg_cache"].median == 290.0
    assert list(bars["container"].segments) == [memory_breakdown.WHOLE]
    assert bars["container"].total_mib == 42.0


def test_the_report_shows_the_bar_the_table_and_what_the_cache_costs(tmp_path: Path) -> None:
    out = write_run(tmp_path / "run", run(), [], {"virt_mode": "tcg"})
    assert (out / memory_breakdown.FILE_NAME).stat().st_size > 1000
    markdown = (out / "report.md").read_text()
    assert "## Memory breakdown (R2)" in markdown
    assert "| vm | TCG translation cache | 5 | 290.0 |" in markdown
    assert "| container | whole (cgroup) | 5 | 42.0 |" in markdown
    assert "290.0 MiB, 51 % of its 566.0 MiB" in markdown and "about 276.0 MiB" in markdown
    page = (out / "report.html").read_text()
    assert "<h2>Memory breakdown (R2)</h2>" in page and memory_breakdown.FILE_NAME in page


def test_no_memory_readings_no_breakdown(tmp_path: Path) -> None:
    assert memory_breakdown.breakdown(Samples([])) == []
    out = write_run(tmp_path / "run", [], [], {"virt_mode": "tcg"})
    assert "Memory breakdown" not in (out / "report.md").read_text()
    assert not (out / memory_breakdown.FILE_NAME).exists()


class FakeMeter:
    """What measure_footprint reads of a meter, with a fixed reading."""

    cpu_method = "fake"
    health_check_interval_s = 0.0
    limit_mib = 512.0

    def __init__(self, label: VariantLabel, reading: MemoryReading) -> None:
        self.instance = Instance(label, f"twinlab-test-{label.name}", f"{label.kind}://x")
        self.reading = reading

    def cpu_ns(self) -> int:
        return 0

    def memory(self) -> MemoryReading:
        return self.reading


def test_each_reading_of_a_vm_gives_one_sample_per_part() -> None:
    vm = FakeMeter(
        VM, MemoryReading(560.0, {}, {"guest_ram": 180.0, "tcg_cache": 288.0, "qemu_other": 92.0})
    )
    box = FakeMeter(BOX, MemoryReading(40.0))
    samples = measure_footprint([box, vm], run_tags("tcg"), window_s=0.05, settle_s=0.0)  # type: ignore[list-item]
    parts = [s for s in samples if s.metric == memory_breakdown.PART_METRIC]
    assert {(s.variant, s.metadata["part"], s.metadata["reading"]) for s in parts} == {
        ("vm", part, reading) for part in PARTS for reading in range(5)
    }
    assert all(s.claims == ("R2",) and s.unit == "MiB" for s in parts)
    assert all(s.metadata["readings_of"] == "one instance" for s in samples)
    bars = {bar.variant: bar for bar in memory_breakdown.breakdown(Samples(samples))}
    assert bars["vm"].segments["tcg_cache"].median == 288.0 and bars["vm"].total_mib == 560.0
    assert bars["container"].total_mib == 40.0
