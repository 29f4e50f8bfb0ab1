"""The restored-VM variant: the same VM, started from a saved memory snapshot instead of booted.

The snapshot is made once per image recipe, memory, vCPUs, virtualization mode, app environment
and QEMU version, and cached (components/snapshot.py); each `up` restores a clone of it with its
own overlay disk, name, UUID, ports, SSH host keys and login key (components/restored_domain.py).
What clones still share with their siblings (boot id, machine-id, MAC and guest IP behind
their own user-mode network) is listed in the README. Deployed only when named in
`twinlab:variants`: its first `up` for a new recipe boots a VM to make the snapshot.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pulumi

from components import vm
from components.deployment import Deployment
from components.naming import resource_name
from components.restored_domain import RestoredDomain
from components.snapshot import SnapshotRecipe
from components.ssh_key import SshKeyPair
from components.variant import PortNeed, Variant
from components.virt_mode import probe_environment

if TYPE_CHECKING:
    from components.spec import AppSpec
    from workloads.images import ImageSet

HTTP_PORT_KEY = "vmRestoredHttpPort"
SSH_PORT_KEY = "vmRestoredSshPort"
LOCAL_LIBVIRT = "qemu:///system"
# Restoring takes about a second; a first `up` for a new recipe also boots the VM to save it.
READY_TIMEOUT_S = 600.0


class RestoredVmDeployment(Deployment):
    """The app's VM restored from its snapshot: same disk, kernel, limits as the booted VM."""

    ssh_private_key: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        spec: AppSpec,
        images: ImageSet,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("twinlab:deploy:RestoredVmDeployment", name, None, opts)
        domain_name = resource_name(spec.stack, "vm-restored")
        key = SshKeyPair(
            f"{name}-ssh-key", comment=domain_name, opts=pulumi.ResourceOptions(parent=self)
        )
        domain = RestoredDomain(
            f"{name}-domain",
            domain_name=domain_name,
            recipe=SnapshotRecipe.of(
                images,
                memory_mib=spec.memory_mib,
                vcpus=spec.vcpus,
                virt_mode=spec.placement.virt_mode,
                app_environment=spec.app_environment(),
                qemu_version=probe_environment().qemu_version,
                tcg_cache_mib=spec.tcg_cache_mib,
            ),
            images_dir=str(images.directory),
            http_port=spec.port(HTTP_PORT_KEY),
            ssh_port=spec.port(SSH_PORT_KEY),
            authorized_key=key.public_key_openssh,
            uri=spec.placement.libvirt_uri,
            cpuset=spec.cpu_set,
            timeout_s=READY_TIMEOUT_S,
            opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True),
        )
        self.ssh_private_key = pulumi.Output.secret(key.private_key_openssh)
        self._publish(
            name,
            http_port=spec.port(HTTP_PORT_KEY),
            target=f"ssh://{images.ssh_user}@127.0.0.1:{spec.port(SSH_PORT_KEY)}",
            instance=domain,
            instance_name=pulumi.Output.from_input(domain_name),
            ready_timeout_s=READY_TIMEOUT_S,
        )


def declare(
    name: str, spec: AppSpec, images: ImageSet, opts: pulumi.ResourceOptions | None = None
) -> RestoredVmDeployment:
    if spec.placement.libvirt_uri != LOCAL_LIBVIRT:
        # The snapshot and the clones' overlays are files on this machine (components/snapshot.py).
        raise pulumi.RunError(
            f"vm-restored needs the local libvirt ({LOCAL_LIBVIRT}), not "
            f"{spec.placement.libvirt_uri}; leave it out of twinlab:variants for this stack"
        )
    return RestoredVmDeployment(name, spec, images, opts)


VARIANT = Variant(
    name="vm-restored",
    kind="vm",
    ports=(
        PortNeed(HTTP_PORT_KEY, 18083, "http", "127.0.0.1 port of the restored VM's app"),
        PortNeed(SSH_PORT_KEY, 12223, "ssh", "127.0.0.1 port of the restored VM's SSH"),
    ),
    unavailable=vm.VARIANT.unavailable,  # what the booted VM needs
    declare=declare,
    summary="libvirt/QEMU VM restored from a cached memory snapshot (virsh restore)",
    by_default=False,
    starts_from_snapshot=True,
)
