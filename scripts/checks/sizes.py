"""R3: what each variant stores: the container image vs the VM's base disk + kernel + initrd."""

from __future__ import annotations

import os

from scripts.checks.docker_engine import DockerEngine
from scripts.checks.instance_pair import Deployed
from scripts.checks.libvirt_domains import Virsh, disk_chain
from scripts.checks.parsers.docker_inspect import parse_container
from scripts.checks.parsers.domain_xml import DomainFacts, parse_domain
from scripts.checks.parsers.proc_resources import MIB
from scripts.checks.resource_errors import ResourceCheckError
from scripts.checks.run_tags import RunTags
from scripts.checks.samples import Sample


def vm_disk_sizes(facts: DomainFacts, virsh: Virsh) -> dict[str, float]:
    """MiB of the VM's base image (actual allocation and virtual size), kernel and initrd, and
    the instance's own overlay. The base is the bottom of the root disk's backing chain."""
    if not facts.disks:
        raise ResourceCheckError(f"domain {facts.name!r} has no disk")
    chain = disk_chain(virsh.disk_path(facts.disks[0]))
    base, overlay = chain[-1], chain[0]
    files = {"kernel": facts.kernel, "initrd": facts.initrd}
    sizes = {
        "base_actual_mib": base.actual_size_bytes / MIB,
        "base_virtual_mib": base.virtual_size_bytes / MIB,
        "overlay_actual_mib": overlay.actual_size_bytes / MIB if len(chain) > 1 else 0.0,
    }
    for key, path in files.items():
        sizes[f"{key}_mib"] = os.stat(path).st_size / MIB if path else 0.0
    return sizes


def measure_sizes(
    pair: Deployed,
    tags: RunTags,
    engine: DockerEngine | None = None,
    virsh: Virsh | None = None,
) -> list[Sample]:
    engine = engine or DockerEngine()
    virsh = virsh or Virsh()
    container = parse_container(engine.inspect_container(pair.container_name))
    image = engine.inspect_image(container.image_id)
    vm = parse_domain(virsh.running_domain_xml(pair.vm_name))
    disk = vm_disk_sizes(vm, virsh)
    vm_total = disk["base_actual_mib"] + disk["kernel_mib"] + disk["initrd_mib"]
    return [
        tags.sample(
            "image_size_mib",
            round(int(image["Size"]) / MIB, 3),
            "MiB",
            pair.container_target,
            "container",
            "R3",
            what="container image (docker image inspect .Size)",
            image=",".join(image.get("RepoTags") or [container.image_id]),
            layers=len((image.get("RootFS") or {}).get("Layers") or []),
        ),
        tags.sample(
            "image_size_mib",
            round(vm_total, 3),
            "MiB",
            pair.vm_target,
            "vm",
            "R3",
            what="VM base disk (qcow2 actual allocation) + kernel + initrd",
            **{key: round(value, 3) for key, value in disk.items()},
        ),
    ]
