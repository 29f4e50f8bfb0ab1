"""R1's third figure: clones restored from the deployed VM's memory snapshot, started beside the
container and booted-VM clones whenever a VM is deployed (claim S1 compares them).

The restored cloner works from the snapshot cache (components/snapshot.py), not from a deployed
restored VM: the snapshot for the deployed VM's memory and vCPUs is made once (one boot) if it
is not cached yet. When the registry's snapshot-restoring variant is deployed too, its own R1
clones are these restores, filed under it; otherwise they are filed under that variant's name
with the snapshot as their target. When no restore can be made, `unavailable_sample` says why,
and S1 is inconclusive with that reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from components import libvirt_cli
from components.errors import TwinlabError
from components.registry import VARIANTS
from components.snapshot import ensure_snapshot, recipe_for_defaults, vm_images
from scripts.checks.claims.s1 import UNAVAILABLE_METRIC
from scripts.checks.resources.clones import Cloner, stack_of
from scripts.checks.resources.meters import DomainMeter, Meter
from scripts.checks.resources.restored_clones import RestoredVmCloner
from scripts.checks.resources.restored_on_host import HostRestoredVmCloner, host_snapshot
from scripts.checks.results.run_tags import RunTags
from scripts.checks.results.samples import Sample, VariantLabel
from scripts.checks.targets.libvirt_domains import Virsh
from workloads.images import ImagesNotBuiltError


def restoring_names() -> set[str]:
    """The registry's variants that start from a snapshot instead of booting."""
    return {v.name for v in VARIANTS if v.starts_from_snapshot}


@dataclass(frozen=True)
class Unavailable:
    reason: str


def r1_cloners(
    meters: Sequence[Meter], stack: str | None, virsh: Virsh
) -> tuple[list[tuple[Cloner, str]], Unavailable | None]:
    """(cloner, target) for R1 over every deployed instance, a deployed snapshot-restoring VM's
    clones restored from its snapshot, plus restored clones of the deployed VM when no restoring
    variant is deployed; and why there is no restored figure, if there is none."""
    restoring = restoring_names()
    domains = [m for m in meters if isinstance(m, DomainMeter)]
    booted = [m for m in domains if m.instance.label.name not in restoring]
    cloners: list[tuple[Cloner, str]] = [
        (meter.cloner(stack), meter.instance.target)
        for meter in meters
        if meter.instance.label.name not in restoring
    ]
    if not domains:
        return cloners, None  # no VM deployed: no start to compare a restore with
    source = (booted or domains)[0]
    deployed = [m for m in domains if m.instance.label.name in restoring]
    labels = (
        [(m.instance.label, m.instance.target) for m in deployed]
        if deployed
        else [(restored_label(), "")]
    )
    try:
        found = snapshot_cloners(source, labels, stack, virsh)
    except (TwinlabError, ImagesNotBuiltError) as error:
        return cloners, Unavailable(f"no snapshot to restore {source.instance.name} from: {error}")
    return cloners + found, None


def restored_label() -> VariantLabel:
    (variant,) = [v for v in VARIANTS if v.starts_from_snapshot]
    return VariantLabel(variant.name, variant.kind)


def snapshot_cloners(
    source: DomainMeter,
    labels: Sequence[tuple[VariantLabel, str]],
    stack: str | None,
    virsh: Virsh,
) -> list[tuple[Cloner, str]]:
    """One restored cloner per label, from the snapshot of `source`'s memory and vCPUs (made
    now if not cached), pinned like `source`."""
    remote = not virsh.host.is_local
    if not remote and virsh.uri != libvirt_cli.LOCAL_URI:
        raise TwinlabError(
            f"libvirt is at {virsh.uri}: the snapshot and the clones' overlays are files on "
            f"this machine, restored through {libvirt_cli.LOCAL_URI} only"
        )
    facts = source.facts
    images = vm_images()
    recipe = recipe_for_defaults(images, int(facts.memory_mib), facts.vcpus)
    # On a remote host the snapshot is the host's own, restored there (restored_on_host.py).
    if remote:
        snapshot = host_snapshot(virsh.host, recipe)
    else:
        snapshot = ensure_snapshot(recipe, images, libvirt_cli.LOCAL_URI)
    cloner = HostRestoredVmCloner if remote else RestoredVmCloner
    return [
        (
            cloner(
                snapshot,
                stack or stack_of(source.instance.name),  # clones named like the VM's own
                virsh,
                label,
                cpuset=facts.cpuset,
            ),
            target or f"snapshot://{snapshot.key}",
        )
        for label, target in labels
    ]


def unavailable_sample(unavailable: Unavailable, tags: RunTags) -> Sample:
    """What S1 reads when a run has no restored figure: the reason, filed under the variant."""
    label = restored_label()
    return Sample(
        UNAVAILABLE_METRIC,
        unavailable.reason,
        "",
        "snapshot://",
        label.name,
        ("R1", "S1"),
        tags.metadata(**label.metadata()),
        kind=label.kind,
    )
