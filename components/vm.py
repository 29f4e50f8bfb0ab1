"""The VM deployment of the app, declared with pulumi-libvirt."""

from __future__ import annotations

from typing import TYPE_CHECKING
from xml.sax.saxutils import quoteattr

import pulumi
import pulumi_libvirt as libvirt

from components.deployment import Deployment
from components.host import HostFacts
from components.remote_ssh import libvirt_provider_uri
from components.ssh_key import SshKeyPair
from components.tcg_cache import tb_cache_feature
from components.variant import PortNeed, Variant
from workloads.images import cmdline_with_ssh_key

if TYPE_CHECKING:
    from components.spec import AppSpec
    from workloads.images import ImageSet

HTTP_PORT_KEY = "vmHttpPort"
SSH_PORT_KEY = "vmSshPort"

# Under software emulation a full guest boot takes seconds to tens of seconds.
READY_TIMEOUT_S = 180.0
# A PCI slot libvirt leaves free on the 'pc' machine (its disk sits at slot 2 or later).
NIC_PCI_SLOT = "0x9"


def libvirt_domain_type(virt_mode: str) -> str:
    """libvirt's name for the accelerator: 'kvm', or 'qemu' for software emulation (TCG)."""
    return "kvm" if virt_mode == "kvm" else "qemu"


def cpu_mode(virt_mode: str) -> str | None:
    """The guest CPU under KVM: the host's own (host-passthrough); under TCG libvirt's default
    emulated model (None)."""
    return "host-passthrough" if virt_mode == "kvm" else None


def kernel_cmdline(base: str, ssh_public_key: str, app_env: dict[str, str]) -> list[dict[str, str]]:
    """The guest kernel command line (workloads/images/cmdline.py builds it: the SSH key and the
    app environment in base64, so spaces and quotes survive) in the shape pulumi-libvirt reads
    back from a domain: one map of every key=value word, then one map whose "_" holds the bare
    words, sorted. Any other shape differs from what is read back, and every `up` would replace
    the VM."""
    line = cmdline_with_ssh_key(base, ssh_public_key, environment_file(app_env))
    keyed: dict[str, str] = {}
    bare: list[str] = []
    for word in line.split():
        key, sep, value = word.partition("=")
        if sep:
            keyed[key] = value
        else:
            bare.append(key)
    return [keyed, {"_": " ".join(sorted(bare))}] if bare else [keyed]


def environment_file(env: dict[str, str]) -> str:
    """The app environment as a systemd EnvironmentFile (values double-quoted and escaped)."""
    lines = []
    for name, value in sorted(env.items()):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'{name}="{escaped}"')
    return "\n".join(lines) + "\n"


def port_forward_xslt(spec: AppSpec, guest_http_port: int, guest_ssh_port: int) -> str:
    """XSLT adding what pulumi-libvirt cannot declare: a user-mode NIC whose forwards listen on
    127.0.0.1 only, the same CPU pinning the container gets, and the TCG cache size if set."""
    forwards = ",".join(
        [
            f"hostfwd=tcp:127.0.0.1:{spec.port(HTTP_PORT_KEY)}-:{guest_http_port}",
            f"hostfwd=tcp:127.0.0.1:{spec.port(SSH_PORT_KEY)}-:{guest_ssh_port}",
        ]
    )
    args = [
        "-netdev",
        f"user,id=twinnet,{forwards}",
        "-device",
        f"virtio-net-pci,netdev=twinnet,bus=pci.0,addr={NIC_PCI_SLOT}",
    ]
    arg_elements = "".join(f"<qemu:arg value={quoteattr(arg)}/>" for arg in args)
    return f"""<?xml version="1.0"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:qemu="http://libvirt.org/schemas/domain/qemu/1.0">
  <xsl:output method="xml" indent="yes"/>
  <xsl:template match="@*|node()">
    <xsl:copy><xsl:apply-templates select="@*|node()"/></xsl:copy>
  </xsl:template>
  <!-- A headless server: no display, sound, USB or balloon. Fewer devices to emulate at boot
       and no SPICE port. -->
  <xsl:template match="/domain/devices/graphics|/domain/devices/audio|/domain/devices/video"/>
  <xsl:template match="/domain/devices/memballoon|/domain/devices/controller[@type='usb']"/>
  <xsl:template match="/domain/devices">
    <xsl:copy>
      <xsl:apply-templates select="@*|node()"/>
      <controller type="usb" model="none"/>
      <memballoon model="none"/>
    </xsl:copy>
  </xsl:template>
  <!-- pulumi-libvirt writes <console> without its type; libvirt takes pty, libvirt's schema
       (virt-xml-validate) wants it said. -->
  <xsl:template match="/domain/devices/console[not(@type)]">
    <console type="pty"><xsl:apply-templates select="@*|node()"/></console>
  </xsl:template>
{_features_template(spec)}  <xsl:template match="/domain/vcpu">
    <vcpu placement="static" cpuset="{spec.cpu_set}"><xsl:value-of select="."/></vcpu>
  </xsl:template>
  <xsl:template match="/domain">
    <xsl:copy>
      <xsl:apply-templates select="@*|node()"/>
      <qemu:commandline>{arg_elements}</qemu:commandline>
    </xsl:copy>
  </xsl:template>
</xsl:stylesheet>
"""


def _features_template(spec: AppSpec) -> str:
    """Appends the TCG cache size to the provider's <features> (it always writes acpi, apic,
    pae there); nothing when QEMU's default is kept."""
    feature = tb_cache_feature(spec.tcg_cache_mib)
    if not feature:
        return ""
    return f"""  <xsl:template match="/domain/features">
    <xsl:copy><xsl:apply-templates select="@*|node()"/>{feature}</xsl:copy>
  </xsl:template>
"""


class VmDeployment(Deployment):
    """The app's VM: same userland and limits as the container, plus its own kernel and init."""

    ssh_private_key: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        spec: AppSpec,
        images: ImageSet,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("twinlab:deploy:VmDeployment", name, None, opts)
        provider = libvirt.Provider(
            f"{name}-libvirt",
            # qemu+ssh://: the provider's own SSH client gets the key and known_hosts in the URI.
            uri=libvirt_provider_uri(
                spec.placement.libvirt_uri, spec.placement.remote_ssh_key_path
            ),
            opts=pulumi.ResourceOptions(parent=self),
        )
        # Every child has a fixed name, so a replacement must delete the old one first.
        child = pulumi.ResourceOptions(parent=self, provider=provider, delete_before_replace=True)
        prefix = spec.name_prefix

        pool = libvirt.Pool(
            f"{name}-pool",
            name=f"{prefix}-pool",
            type="dir",
            path=f"{spec.placement.pool_dir}/{prefix}",
            opts=child,
        )

        def volume(
            suffix: str,
            fmt: str,
            source: str | None = None,
            base_volume_id: pulumi.Output[str] | None = None,
        ) -> libvirt.Volume:
            return libvirt.Volume(
                f"{name}-{suffix}",
                name=f"{prefix}-{suffix}",
                pool=pool.name,
                format=fmt,
                source=source,
                base_volume_id=base_volume_id,
                opts=child,
            )

        # The base disk, kernel and initrd are uploaded into the pool (so a remote libvirt host
        # works too); the VM writes to a copy-on-write overlay of the base.
        base = volume("base.qcow2", "qcow2", source=str(images.vm_disk_qcow2))
        root = volume("root.qcow2", "qcow2", base_volume_id=base.id)
        kernel = volume("vmlinuz", "raw", source=str(images.vm_kernel))
        initrd = volume("initrd.img", "raw", source=str(images.vm_initrd))

        domain_name = spec.resource_name("vm")
        key = SshKeyPair(
            f"{name}-ssh-key", comment=domain_name, opts=pulumi.ResourceOptions(parent=self)
        )
        domain = libvirt.Domain(
            f"{name}-domain",
            name=domain_name,
            type=libvirt_domain_type(spec.placement.virt_mode),
            vcpu=spec.vcpus,
            memory=spec.memory_mib,
            cpu=libvirt.DomainCpuArgs(mode=mode)
            if (mode := cpu_mode(spec.placement.virt_mode))
            else None,
            kernel=kernel.id,
            initrd=initrd.id,
            cmdlines=key.public_key_openssh.apply(
                lambda public: kernel_cmdline(images.vm_cmdline, public, spec.app_environment())
            ),
            disks=[libvirt.DomainDiskArgs(volume_id=root.id)],
            consoles=[libvirt.DomainConsoleArgs(type="pty", target_port="0", target_type="serial")],
            xml=libvirt.DomainXmlArgs(
                xslt=port_forward_xslt(spec, images.guest_http_port, images.guest_ssh_port)
            ),
            autostart=False,
            running=True,
            opts=child,
        )
        self.ssh_private_key = pulumi.Output.secret(key.private_key_openssh)
        self._publish(
            name,
            http_port=spec.port(HTTP_PORT_KEY),
            target=f"ssh://{images.ssh_user}@127.0.0.1:{spec.port(SSH_PORT_KEY)}",
            instance=domain,
            instance_name=domain.name,
            ready_timeout_s=READY_TIMEOUT_S,
            via=spec.placement.ssh,
        )


def _needs_qemu(host: HostFacts) -> str | None:
    if not host.has_command("qemu-system-x86_64"):
        return "qemu-system-x86_64 is not installed; run scripts/setup.sh"
    return None


VARIANT = Variant(
    name="vm",
    kind="vm",
    ports=(
        PortNeed(HTTP_PORT_KEY, 18081, "http", "127.0.0.1 port of the VM's app"),
        PortNeed(SSH_PORT_KEY, 12222, "ssh", "127.0.0.1 port of the VM's SSH"),
    ),
    unavailable=_needs_qemu,
    declare=VmDeployment,
    summary="libvirt/QEMU VM booted from the image's kernel, pulumi-libvirt",
)
