"""Resource checks R1-R4 on the real deployed variants (fixture `deployed_stack`: the stack
outputs), each read by the meter of its kind.

These check the measurements themselves: every value present and plausible, clones made from
the deployed definition and always removed. Whether the claims hold is tests/claims' business.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from components import outputs, snapshot_restore
from components.naming import clone_prefix
from scripts.checks.parsers.docker_inspect import parse_container
from scripts.checks.resources import restored_start
from scripts.checks.resources.clones import ContainerCloner, VmCloner, remove_clones
from scripts.checks.resources.errors import InstanceNotFoundError
from scripts.checks.resources.meters import ContainerMeter, DomainMeter, Instance, Meter, meter_for
from scripts.checks.resources.sizes import measure_sizes
from scripts.checks.resources.start_time import (
    measure_start_times,
    measure_start_times_interleaved,
)
from scripts.checks.resources.start_watch import CONTAINER_STAGES, VM_STAGES
from scripts.checks.resources.usage import measure_footprint
from scripts.checks.results.run_tags import RunTags, run_tags
from scripts.checks.results.samples import Sample, VariantLabel
from scripts.checks.targets.docker_engine import DockerEngine
from scripts.checks.targets.libvirt_domains import Virsh

pytestmark = pytest.mark.integration

Stack = dict[str, Any]


@pytest.fixture(scope="module")
def meters(deployed_stack: Stack) -> dict[str, Meter]:
    """A meter per deployed variant, chosen by its kind, keyed by variant name."""
    engine, virsh = DockerEngine(), Virsh()
    found = {}
    for name, item in deployed_stack[outputs.VARIANTS].items():
        label = VariantLabel(name, item[outputs.KIND])
        instance = Instance(label, item[outputs.INSTANCE_NAME], item[outputs.TARGET])
        found[name] = meter_for(instance, engine, virsh)
    return found


@pytest.fixture(scope="module")
def container(meters: dict[str, Meter]) -> ContainerMeter:
    meter = meters["container"]
    assert isinstance(meter, ContainerMeter)
    return meter


@pytest.fixture(scope="module")
def vm(meters: dict[str, Meter]) -> DomainMeter:
    meter = meters["vm"]
    assert isinstance(meter, DomainMeter)
    return meter


@pytest.fixture(scope="module")
def tags(vm: DomainMeter) -> RunTags:
    return run_tags(vm.facts.virt_mode)


@pytest.fixture
def stack(deployed_stack: Stack) -> Iterator[str]:
    """The stack's name; every clone left behind by a test is swept afterwards."""
    name = str(deployed_stack["stack"])
    yield name
    remove_clones(name)


def clone_names(stack: str) -> list[str]:
    prefix = clone_prefix(stack)
    engine, virsh = DockerEngine(), Virsh()
    names = engine.container_names(prefix) + engine.volume_names(prefix)
    names += virsh.domain_names(prefix)
    for pool in virsh.pool_names():
        names += [volume for volume in virsh.volumes(pool) if volume.startswith(prefix)]
    return names


def test_sizes(meters: dict[str, Meter], tags: RunTags) -> None:
    samples = {s.variant: s for s in measure_sizes(list(meters.values()), tags)}
    assert set(samples) == set(meters)
    assert {s.kind for s in samples.values()} >= {"container", "vm"}
    assert all(s.metric == "image_size_mib" and s.unit == "MiB" for s in samples.values())
    assert float(samples["container"].value) > 10  # a Debian userland with Python
    vm = samples["vm"].metadata
    assert float(vm["base_actual_mib"]) > 10 and float(vm["kernel_mib"]) > 1
    assert float(vm["base_virtual_mib"]) >= float(vm["base_actual_mib"])
    assert samples["vm"].value == pytest.approx(
        float(vm["base_actual_mib"]) + float(vm["kernel_mib"]) + float(vm["initrd_mib"]), abs=0.01
    )


def test_footprint(meters: dict[str, Meter], tags: RunTags) -> None:
    measured = measure_footprint(list(meters.values()), tags, window_s=3.0, settle_s=1.0)
    samples = [s for s in measured if s.metric != "memory_part_mib"]
    readings = {(s.variant, s.metric, s.metadata["reading"]) for s in samples}
    assert readings == {
        (variant, metric, reading)
        for variant in meters
        for metric in ("memory_charged_mib", "idle_cpu_percent")
        for reading in range(5)
    }
    assert len(samples) == len(readings)
    # The VM's PSS breakdown: three parts per reading; a container is one piece (no parts).
    parts = {
        (s.variant, s.metadata["part"], s.metadata["reading"])
        for s in measured
        if s.metric == "memory_part_mib"
    }
    assert parts == {
        ("vm", part, reading)
        for part in ("guest_ram", "tcg_cache", "qemu_other")
        for reading in range(5)
    }
    by_key = {(s.variant, s.metric): s for s in samples}
    container = by_key["container", "memory_charged_mib"]
    assert 1 < float(container.value) <= float(container.metadata["limit_mib"])
    assert float(container.metadata["raw_usage_mib"]) >= float(container.value)
    assert float(by_key["vm", "memory_charged_mib"].value) > 10
    for variant in meters:
        idle = by_key[variant, "idle_cpu_percent"]
        assert 0 <= float(idle.value) < 100 and float(idle.metadata["window_s"]) >= 3.0 / 5
        assert idle.metadata["virt_mode"] == tags.virt_mode
    assert by_key["vm", "idle_cpu_percent"].metadata["method"] == "QEMU utime+stime"


def test_container_start_time_on_a_clone(
    container: ContainerMeter, tags: RunTags, stack: str
) -> None:
    cloner = container.cloner(stack)
    measured = measure_start_times(cloner, container.instance.target, tags, repeats=2)
    samples = [s for s in measured if s.metric == "time_to_first_response_s"]
    assert [s.metadata["repeat"] for s in samples] == [1, 2]
    assert all(0 < float(s.value) < cloner.ready_timeout_s for s in samples)
    assert {(s.variant, s.kind) for s in measured} == {("container", "container")}
    assert all(s.metadata["poll_started_at"] == "the app's listening mark" for s in samples)
    _assert_stages(measured, CONTAINER_STAGES)
    assert clone_names(stack) == []


def _assert_stages(measured: list[Sample], stages: tuple[str, ...]) -> None:
    """Every stage of the kind, for every repeat, in order, none after the first 200."""
    for first in (s for s in measured if s.metric == "time_to_first_response_s"):
        seen = [
            s
            for s in measured
            if s.metric == "start_stage_s" and s.metadata["repeat"] == first.metadata["repeat"]
        ]
        assert [s.metadata["stage"] for s in seen] == list(stages)
        assert all(0 < float(s.value) <= float(first.value) for s in seen)
        assert seen[-1].value == first.value


def test_vm_start_time_on_a_clone(vm: DomainMeter, tags: RunTags, stack: str) -> None:
    cloner = vm.cloner(stack)
    measured = measure_start_times(cloner, vm.instance.target, tags, repeats=1)
    (sample,) = [s for s in measured if s.metric == "time_to_first_response_s"]
    assert 0 < float(sample.value) < cloner.ready_timeout_s
    _assert_stages(measured, VM_STAGES)
    assert sample.target == vm.instance.target and (sample.variant, sample.kind) == ("vm", "vm")
    assert clone_names(stack) == []


def test_r1_restores_clones_of_the_deployed_vm_from_its_snapshot(
    meters: dict[str, Meter], tags: RunTags, stack: str
) -> None:
    """R1's third figure: with no restored variant deployed, clones restored from the deployed
    VM's snapshot are filed under the registry's restoring variant, each removed after."""
    cloners, unavailable = restored_start.r1_cloners(list(meters.values()), stack, Virsh())
    assert unavailable is None
    restoring = [(c, t) for c, t in cloners if c.start_method == "restore"]
    assert len(restoring) == 1 and restoring[0][0].variant in restored_start.restoring_names()
    try:
        measured = measure_start_times_interleaved(restoring, tags, repeats=2)
    finally:
        snapshot_restore.sweep(clone_prefix(stack))
    samples = [s for s in measured if s.metric == "time_to_first_response_s"]  # not the stages
    assert {s.metadata["start_method"] for s in measured} == {"restore"}
    assert [s.metadata["start_method"] for s in samples] == ["restore", "restore"]
    assert all(0 < float(s.value) < restoring[0][0].ready_timeout_s for s in samples)
    assert {s.kind for s in samples} == {"vm"}
    assert clone_names(stack) == [] and snapshot_restore.overlays_named(clone_prefix(stack)) == []


def test_a_clone_has_the_deployed_definition(container: ContainerMeter, stack: str) -> None:
    cloner = ContainerCloner(container.instance.name, stack)
    clone = cloner.start(cloner.next_name())
    try:
        source = parse_container(cloner.inspect)
        copy = DockerEngine().inspect_container(clone.name)
        facts = parse_container(copy)
        assert facts.image_id == source.image_id
        assert facts.memory_limit_bytes == source.memory_limit_bytes
        assert facts.cpuset == source.cpuset
        assert facts.published != source.published
        assert facts.named_volumes != source.named_volumes
        for key in ("CapDrop", "SecurityOpt", "ReadonlyRootfs", "Tmpfs", "MemorySwap"):
            assert copy["HostConfig"][key] == cloner.inspect["HostConfig"][key]
    finally:
        cloner.remove(clone)
    assert clone_names(stack) == []


def test_remove_clones_sweeps_leftovers(container: ContainerMeter, stack: str) -> None:
    cloner = ContainerCloner(container.instance.name, stack)
    clone = cloner.start(cloner.next_name())  # deliberately not removed
    assert clone.name in clone_names(stack)
    swept = remove_clones(stack)
    assert f"container {clone.name}" in swept.removed and not swept.skipped
    assert clone_names(stack) == []


def test_missing_instances_are_named() -> None:
    with pytest.raises(InstanceNotFoundError, match="twinlab-nosuch-app"):
        ContainerCloner("twinlab-nosuch-app")
    with pytest.raises(InstanceNotFoundError, match="twinlab-nosuch-vm"):
        VmCloner("twinlab-nosuch-vm")
    label = VariantLabel("vm", "vm")
    with pytest.raises(InstanceNotFoundError, match="twinlab-nosuch-vm"):
        meter_for(Instance(label, "twinlab-nosuch-vm", "ssh://x"), DockerEngine(), Virsh())
