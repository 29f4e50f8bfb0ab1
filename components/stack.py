"""The twinlab stack: config -> one spec -> one deployment per chosen variant -> outputs."""

from __future__ import annotations

import subprocess

import pulumi

from components import outputs
from components.daemons import require_docker, require_libvirt
from components.errors import TwinlabError
from components.host import probe_host
from components.hosts import SINGLE_HOST, host_output
from components.naming import resource_name
from components.registry import VARIANTS
from components.spec import NAMESPACE, AppSpec, parse_spec
from components.virt_mode import load_record
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
    from the containers of this stack that exist.
    """
    markers = [f"guest={resource_name(stack, 'vm')},"]
    try:
        listed = subprocess.run(
            ["docker", "ps", "-q", "--filter", f"label=twinlab.stack={stack}"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.split()
        ips = (
            subprocess.run(
                ["docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", *listed],
                capture_output=True,
                text=True,
                timeout=10,
            ).stdout.split()
            if listed
            else []
        )
    except (OSError, subprocess.TimeoutExpired):
        ips = []
    markers += [f"-container-ip {ip} " for ip in ips]
    return tuple(markers)


def load_spec(stack: str, raw: dict[str, str], images: ImageSet | None) -> AppSpec:
    record = load_record()
    host = probe_host(
        detected_virt_mode=record.mode if record else None,
        built_app_version=images.app_version if images else None,
    )
    return parse_spec(
        raw, stack=stack, host=host, registered=VARIANTS, owned_names=own_port_markers(stack)
    )


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

    for name, why in spec.skipped_variants.items():
        pulumi.log.warn(f"variant {name} left out: {why}")

    deployed: dict[str, dict[str, object]] = {}
    ssh_keys: dict[str, pulumi.Output[str]] = {}
    for variant in spec.variants:
        deployment = variant.declare(variant.name, spec, images)
        deployed[variant.name] = {
            outputs.NAME: variant.name,
            outputs.KIND: variant.kind,
            outputs.HOST: SINGLE_HOST,
            **deployment.outputs(),
        }
        if deployment.ssh_private_key is not None:
            ssh_keys[variant.name] = deployment.ssh_private_key

    pulumi.export(outputs.VARIANTS, deployed)
    pulumi.export(outputs.SKIPPED_VARIANTS, dict(spec.skipped_variants))
    # Apart from the variants' outputs: a secret anywhere in an output hides all of it.
    pulumi.export(outputs.SSH_PRIVATE_KEYS, pulumi.Output.secret(ssh_keys))
    pulumi.export(outputs.VIRT_MODE, spec.placement.virt_mode)
    pulumi.export(outputs.APP_VERSION, spec.app_version)
    pulumi.export(
        outputs.LIMITS,
        {"vcpus": spec.vcpus, "memoryMib": spec.memory_mib, "cpuSet": spec.cpu_set},
    )
    pulumi.export(outputs.DOCKER_HOST, spec.placement.docker_host)
    pulumi.export(outputs.LIBVIRT_URI, spec.placement.libvirt_uri)
    placement = spec.placement
    host = host_output(
        placement.docker_host,
        placement.libvirt_uri,
        placement.remote_ssh_key_path,
        placement.virt_mode,
    )
    pulumi.export(outputs.HOSTS, {SINGLE_HOST: host})
    pulumi.export(outputs.RECIPE_HASH, images.recipe_hash)
    pulumi.export(outputs.THRESHOLDS, spec.thresholds.as_dict())
