"""The twinlab stack: config -> one spec -> one deployment per chosen variant -> outputs."""

from __future__ import annotations

import dataclasses
import functools
import os
import subprocess

import pulumi

from components import outputs
from components.daemons import require_docker, require_libvirt
from components.errors import ConfigError, DaemonUnavailableError, TwinlabError
from components.fleet import resolve_virt_mode
from components.host import HostFacts, docker_runtimes, probe_host
from components.hosts import SINGLE_HOST, host_output
from components.naming import stack_prefix
from components.registry import VARIANTS
from components.spec import DEFAULT_DOCKER_HOST, NAMESPACE, AppSpec, parse_spec
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
    # Every domain of the stack (twinlab-STACK-vm, or twinlab-STACK-HOST-vm on several hosts).
    markers = [f"guest={stack_prefix(stack)}-"]
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


def load_facts(raw: dict[str, str], images: ImageSet | None) -> HostFacts:
    """The facts config validation judges by. A Docker runtime a variant needs (gVisor's runsc)
    is looked up in the stack's Docker daemon, wherever it is."""
    record = load_record()
    return probe_host(
        detected_virt_mode=record.mode if record else None,
        built_app_version=images.app_version if images else None,
        docker_host=(raw.get("dockerHost") or DEFAULT_DOCKER_HOST).strip(),
        key_path=os.path.expanduser((raw.get("remoteSshKeyPath") or "").strip()) or None,
    )


def load_spec(stack: str, raw: dict[str, str], images: ImageSet | None) -> AppSpec:
    host = load_facts(raw, images)
    return parse_spec(
        raw, stack=stack, host=host, registered=VARIANTS, owned_names=own_port_markers(stack)
    )


def host_specs(spec: AppSpec) -> dict[str, AppSpec]:
    """The spec of each host's deployments: the one host "local", or each host of
    `twinlab:hosts` with its daemons, key, virtualization mode, ports and names."""
    if not spec.fleet:
        return {SINGLE_HOST: spec}
    return {host.name: spec.on_host(host, resolve_virt_mode(host)) for host in spec.fleet}


def require_daemons(specs: dict[str, AppSpec]) -> None:
    """Every host's daemons answer, the way its providers reach them (components/daemons.py)."""
    for name, host_spec in specs.items():
        placement = host_spec.placement
        try:
            require_docker(placement.docker_host, placement.remote_ssh_key_path)
            require_libvirt(placement.libvirt_uri, placement.remote_ssh_key_path)
        except ConfigError as error:
            if len(specs) == 1:
                raise
            raise ConfigError([f"host {name}: {problem}" for problem in error.problems]) from None
        except DaemonUnavailableError as error:
            if len(specs) == 1:
                raise
            raise DaemonUnavailableError(f"host {name}: {error}") from None


def require_runnable(specs: dict[str, AppSpec], facts: HostFacts) -> None:
    """Each host of a fleet can run its variants: what a variant needs of a Docker daemon
    (gVisor's runtime) is asked of that host's own daemon."""
    problems = []
    for name, host_spec in specs.items():
        placement = host_spec.placement
        runtimes = functools.partial(
            docker_runtimes, placement.docker_host, placement.remote_ssh_key_path
        )
        on_host = dataclasses.replace(facts, docker_runtimes=runtimes)
        for variant in host_spec.variants:
            why = variant.unavailable(on_host)
            if why is not None:
                problems.append(f"host {name}: variant {variant.name} cannot run there: {why}")
    if problems:
        raise ConfigError(problems)


def declare() -> None:
    """The Pulumi program. Every check runs before the first resource is declared."""
    stack = pulumi.get_stack()
    try:
        images = find_images()
        raw = raw_config()
        spec = load_spec(stack, raw, images)
        specs = host_specs(spec)
        require_daemons(specs)
        if spec.fleet:
            require_runnable(specs, load_facts(raw, images))
    except (TwinlabError, ImagesNotBuiltError, BuildError) as error:
        # RunError: Pulumi prints the message alone, without a Python stack trace.
        raise pulumi.RunError(str(error)) from None

    for name, why in spec.skipped_variants.items():
        pulumi.log.warn(f"variant {name} left out: {why}")

    deployed: dict[str, dict[str, object]] = {}
    ssh_keys: dict[str, pulumi.Output[str]] = {}
    for host_name, host_spec in specs.items():
        for variant in host_spec.variants:
            # One host: keys and Pulumi names as before; several: "vm@a" and "vm-a".
            key = f"{variant.name}@{host_name}" if spec.fleet else variant.name
            logical = f"{variant.name}-{host_name}" if spec.fleet else variant.name
            deployment = variant.declare(logical, host_spec, images)
            deployed[key] = {
                outputs.NAME: variant.name,
                outputs.KIND: variant.kind,
                outputs.HOST: host_name,
                **deployment.outputs(),
            }
            if deployment.ssh_private_key is not None:
                ssh_keys[key] = deployment.ssh_private_key

    # The first host stands for the stack where one value is exported (virtMode, dockerHost,
    # libvirtUri); `hosts` has every host's own.
    first = next(iter(specs.values())).placement
    pulumi.export(outputs.VARIANTS, deployed)
    pulumi.export(outputs.SKIPPED_VARIANTS, dict(spec.skipped_variants))
    # Apart from the variants' outputs: a secret anywhere in an output hides all of it.
    pulumi.export(outputs.SSH_PRIVATE_KEYS, pulumi.Output.secret(ssh_keys))
    pulumi.export(outputs.VIRT_MODE, first.virt_mode)
    pulumi.export(outputs.APP_VERSION, spec.app_version)
    pulumi.export(
        outputs.LIMITS,
        {"vcpus": spec.vcpus, "memoryMib": spec.memory_mib, "cpuSet": spec.cpu_set},
    )
    pulumi.export(outputs.DOCKER_HOST, first.docker_host)
    pulumi.export(outputs.LIBVIRT_URI, first.libvirt_uri)
    hosts = {
        name: host_output(
            placement.docker_host,
            placement.libvirt_uri,
            placement.remote_ssh_key_path,
            placement.virt_mode,
        )
        for name, placement in ((n, s.placement) for n, s in specs.items())
    }
    pulumi.export(outputs.HOSTS, hosts)
    pulumi.export(outputs.LOAD_HOST, spec.load_host or "")
    pulumi.export(outputs.RECIPE_HASH, images.recipe_hash)
    pulumi.export(outputs.THRESHOLDS, spec.thresholds.as_dict())
