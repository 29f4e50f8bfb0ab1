"""The twinlab stack: config -> one spec -> two deployments -> shared outputs."""

from __future__ import annotations

import subprocess

import pulumi

from components import outputs
from components.container import ContainerDeployment
from components.daemons import require_docker, require_libvirt
from components.errors import TwinlabError
from components.host import probe_host
from components.spec import NAMESPACE, AppSpec, parse_spec
from components.virt_mode import load_record
from components.vm import VmDeployment
from workloads.images import BuildError, ImageSet, ImagesNotBuiltError, find_images


def raw_config() -> dict[str, str]:
    """Every `twinlab:*` config value of the stack, as given (strings)."""
    everything = pulumi.runtime.get_config_env()  # type: ignore[attr-defined]
    prefix = f"{NAMESPACE}:"
    return {
        key[len(prefix) :]: value for key, value in everything.items() if key.startswith(prefix)
    }


def own_port_markers(stack: str) -> tuple[str, ...]:
    """Command-line fragments by which this stack's own running instances hold their ports.

    QEMU names its domain (guest=NAME); docker-proxy names the container's IP, which is looked up
    from the container of this stack, if it exists.
    """
    prefix = f"twinlab-{stack}"
    markers = [f"guest={prefix}-vm,"]
    try:
        ip = subprocess.run(
            ["docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", f"{prefix}-app"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        ip = ""
    if ip:
        markers.append(f"-container-ip {ip} ")
    return tuple(markers)


def load_spec(stack: str, raw: dict[str, str], images: ImageSet | None) -> AppSpec:
    record = load_record()
    host = probe_host(
        detected_virt_mode=record.mode if record else None,
        built_app_version=images.app_version if images else None,
    )
    return parse_spec(raw, stack=stack, host=host, owned_names=own_port_markers(stack))


def declare() -> None:
    """The Pulumi program. Every check runs before the first resource is declared."""
    stack = pulumi.get_stack()
    try:
        images = find_images()
        spec = load_spec(stack, raw_config(), images)
        # Over SSH the checks take the providers' path, with the same key (components/daemons.py).
        key_path = spec.placement.remote_ssh_key_path
        require_docker(spec.placement.docker_host, key_path)
        require_libvirt(spec.placement.libvirt_uri, key_path)
    except (TwinlabError, ImagesNotBuiltError, BuildError) as error:
        # RunError: Pulumi prints the message alone, without a Python stack trace.
        raise pulumi.RunError(str(error)) from None

    container = ContainerDeployment(outputs.CONTAINER, spec, images)
    vm = VmDeployment(outputs.VM, spec, images)

    pulumi.export(outputs.CONTAINER, container.outputs())
    pulumi.export(outputs.VM, vm.outputs())
    pulumi.export(outputs.VM_SSH_PRIVATE_KEY, pulumi.Output.secret(vm.ssh_private_key))
    pulumi.export(outputs.VIRT_MODE, spec.placement.virt_mode)
    pulumi.export(outputs.APP_VERSION, spec.app_version)
    pulumi.export(
        outputs.LIMITS,
        {"vcpus": spec.vcpus, "memoryMib": spec.memory_mib, "cpuSet": spec.cpu_set},
    )
    pulumi.export(outputs.DOCKER_HOST, spec.placement.docker_host)
    pulumi.export(outputs.LIBVIRT_URI, spec.placement.libvirt_uri)
    pulumi.export(outputs.RECIPE_HASH, images.recipe_hash)
    pulumi.export(outputs.THRESHOLDS, spec.thresholds_json)
