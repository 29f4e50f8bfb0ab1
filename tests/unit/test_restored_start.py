"""R1's restored figure and G1's runtime record, wired without live daemons: which cloners
R1 gets for which deployed variants, why a run has no restored figure, and what the sandbox's
gVisor configuration gives up."""

from __future__ import annotations

from typing import Any

import pytest

from components.gvisor_platform import CANDIDATES
from components.registry import VARIANTS
from components.thresholds import thresholds_for
from scripts.checks.claims import BY_ID
from scripts.checks.resources import restored_start
from scripts.checks.resources.clones import Cloner
from scripts.checks.resources.meters import ContainerMeter, DomainMeter, Instance, Meter
from scripts.checks.resources.sandbox_runtime import gives_up, runtime_samples
from scripts.checks.results.run_tags import run_tags
from scripts.checks.results.samples import VariantLabel
from scripts.checks.results.verdicts import Samples
from scripts.checks.targets.docker_engine import DockerEngine
from scripts.checks.targets.libvirt_domains import Virsh

pytestmark = pytest.mark.unit
TAGS = run_tags("tcg", "run-1")


class FakeCloner:
    def __init__(self, name: str) -> None:
        self.name = name


def fake_meter(cls: type[Meter], variant: str) -> Meter:
    """A meter of the registered `variant` that reads nothing (no daemon is asked)."""
    (registered,) = [v for v in VARIANTS if v.name == variant]
    meter = cls.__new__(cls)
    meter.instance = Instance(
        VariantLabel(registered.name, registered.kind), f"twinlab-t-{variant}", f"t://{variant}"
    )
    meter.cloner = lambda stack: FakeCloner(variant)  # type: ignore[method-assign,assignment,return-value]
    return meter


def names(cloners: list[tuple[Cloner, str]]) -> list[str]:
    return [getattr(cloner, "name", type(cloner).__name__) for cloner, _ in cloners]


@pytest.fixture
def restores(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """snapshot_cloners replaced: records its calls, returns one fake per label."""
    calls: list[Any] = []

    def fake(
        source: DomainMeter, labels: Any, stack: str | None, virsh: Virsh
    ) -> list[tuple[Any, str]]:
        calls.append((source.instance.label.name, [label.name for label, _ in labels]))
        return [(FakeCloner(f"restore:{label.name}"), target or "snap") for label, target in labels]

    monkeypatch.setattr(restored_start, "snapshot_cloners", fake)
    return calls


def test_without_a_vm_there_is_no_restored_figure_and_no_complaint(restores: list[Any]) -> None:
    meters = [fake_meter(ContainerMeter, "container"), fake_meter(ContainerMeter, "gvisor")]
    cloners, unavailable = restored_start.r1_cloners(meters, "s", Virsh())
    assert names(cloners) == ["container", "gvisor"] and unavailable is None and restores == []


def test_a_booted_vm_gets_restored_clones_filed_under_the_restoring_variant(
    restores: list[Any],
) -> None:
    meters = [fake_meter(ContainerMeter, "container"), fake_meter(DomainMeter, "vm")]
    cloners, unavailable = restored_start.r1_cloners(meters, "s", Virsh())
    restoring = [v.name for v in VARIANTS if v.starts_from_snapshot]
    assert names(cloners) == ["container", "vm", *(f"restore:{n}" for n in restoring)]
    assert unavailable is None and restores == [("vm", restoring)]


def test_a_deployed_restored_vm_is_cloned_by_restoring_not_by_booting(
    restores: list[Any],
) -> None:
    meters = [fake_meter(DomainMeter, "vm"), fake_meter(DomainMeter, "vm-restored")]
    cloners, _ = restored_start.r1_cloners(meters, "s", Virsh())
    assert names(cloners) == ["vm", "restore:vm-restored"]
    assert [target for _, target in cloners] == ["t://vm", "t://vm-restored"]


def test_remote_libvirt_gives_no_restore_and_says_why() -> None:
    meters = [fake_meter(DomainMeter, "vm")]
    cloners, unavailable = restored_start.r1_cloners(meters, "s", Virsh("qemu+ssh://h/system"))
    assert names(cloners) == ["vm"]
    assert unavailable is not None and "restored through qemu:///system only" in unavailable.reason
    sample = restored_start.unavailable_sample(unavailable, TAGS)
    result = BY_ID["S1"].judge(Samples([sample]), thresholds_for("tcg"))
    assert result.verdict == "inconclusive" and unavailable.reason in result.summary


class FakeEngine(DockerEngine):
    def __init__(self, runtime: str) -> None:
        self.runtime = runtime

    def running_container(self, name: str) -> dict[str, Any]:
        return {"State": {"Running": True}, "HostConfig": {"Runtime": self.runtime}}


def test_the_sandbox_runtime_names_platform_network_and_what_they_give_up() -> None:
    meters = [fake_meter(ContainerMeter, "container"), fake_meter(ContainerMeter, "gvisor")]
    (sample,) = runtime_samples(meters, FakeEngine("runsc-ptrace-hostnet"), TAGS)
    assert (sample.variant, sample.value, sample.claims) == (
        "gvisor",
        "runsc-ptrace-hostnet",
        ("G1",),
    )
    assert sample.metadata["platform"] == "ptrace" and sample.metadata["network"] == "host"
    assert "host kernel's TCP/IP stack" in str(sample.metadata["gives_up"])
    (other,) = runtime_samples(meters, FakeEngine("runsc"), TAGS)
    assert "none of twinlab's gVisor configurations" in str(other.metadata["gives_up"])


def test_only_the_most_isolating_configuration_gives_up_nothing() -> None:
    texts = {c.runtime: gives_up(c) for c in CANDIDATES}
    assert texts[CANDIDATES[0].runtime].startswith("nothing")
    assert all(not text.startswith("nothing") for text in list(texts.values())[1:])
