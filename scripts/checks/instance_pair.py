"""The deployed pair the resource checks measure: instance names, and the target URLs their
samples are filed under (the stack outputs' `target`, so the report lines them up with the
probes' samples)."""

from __future__ import annotations

from dataclasses import dataclass

from scripts.checks.libvirt_domains import Virsh
from scripts.checks.parsers.domain_xml import parse_domain


@dataclass(frozen=True)
class Deployed:
    """The deployed pair, by instance name, and the target URLs their samples are filed under
    (the stack outputs' `target`)."""

    container_name: str
    vm_name: str
    container_target: str
    vm_target: str


def deployed(
    container_name: str,
    vm_name: str,
    container_target: str | None = None,
    vm_target: str | None = None,
    virsh: Virsh | None = None,
    ssh_user: str = "twin",
    guest_ssh_port: int = 22,
) -> Deployed:
    """Fill in default targets: docker://NAME, and ssh://USER@127.0.0.1:PORT read from the
    domain's SSH forward (what the stack outputs as `target`)."""
    if vm_target is None:
        facts = parse_domain((virsh or Virsh()).running_domain_xml(vm_name))
        port = facts.host_port_for(guest_ssh_port)
        vm_target = f"ssh://{ssh_user}@127.0.0.1:{port}" if port else f"libvirt://{vm_name}"
    return Deployed(
        container_name, vm_name, container_target or f"docker://{container_name}", vm_target
    )
