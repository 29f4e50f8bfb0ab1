"""The noisy neighbour: a sibling instance of the same variant, on CPUs of its own.

The sibling is a clone of the deployed instance made by that kind's cloner
(scripts/checks/resources/clones.py through meters.METERS: same image or base disk, limits,
runtime and security settings; its own volume or disk overlay and ports), pinned to the
neighbour's CPU set, and named twinlab-STACK-clone-neighbour-N, so the clone sweep and the
stack's leftover sweep (scripts/leftovers.py) find whatever an interrupted run left.

Its stressors run inside it through a target of the same transport as the deployed variant's:
`docker exec` into the sibling container or sandbox (its cgroup and namespaces; gVisor's
application kernel), SSH into the sibling VM's guest.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from components.http_wait import wait_for_http_200
from components.naming import resource_name
from scripts.checks.load.pinning import format_cpu_list
from scripts.checks.parsers.domain_xml import HostForward, parse_domain
from scripts.checks.resources.clones import Clone, Cloner, VmCloner
from scripts.checks.resources.errors import ReadinessTimeoutError
from scripts.checks.resources.meters import Instance, meter_for
from scripts.checks.targets.docker_engine import DockerEngine
from scripts.checks.targets.host import HostHandle
from scripts.checks.targets.libvirt_domains import Virsh
from scripts.checks.targets.target import Target, parse_target

# A VM's sshd starts after its app answers: give it this long once the app does.
SSH_WAIT_S = 60


def neighbour_prefix(stack: str) -> str:
    """Clones named so the clone sweep (clones.remove_clones) removes them too."""
    return resource_name(stack, "clone-neighbour-")


@dataclass(frozen=True)
class Neighbour:
    clone: Clone
    target: Target  # where its stressors run
    cpus: frozenset[int]
    ready_s: float  # create call to its first HTTP 200


def sibling_target_url(
    source_target: str,
    clone_name: str,
    source_forwards: Sequence[HostForward] = (),
    clone_forwards: Sequence[HostForward] = (),
) -> str:
    """The sibling's target URL: the deployed variant's, pointed at the clone (a container by
    its name; a VM at the clone's host port for the guest port the source's URL reaches)."""
    parts = urlsplit(source_target)
    if parts.scheme == "docker":
        return urlunsplit(parts._replace(netloc=clone_name))
    guest = next((f.guest_port for f in source_forwards if f.host_port == parts.port), None)
    port = next((f.host_port for f in clone_forwards if f.guest_port == guest), None)
    if parts.scheme != "ssh" or port is None:
        raise ReadinessTimeoutError(
            f"no way into the neighbour {clone_name}: {source_target.split('?')[0]} reaches no "
            "port the clone forwards"
        )
    kept = [(key, value) for key, value in parse_qsl(parts.query) if key != "wait"]
    query = urlencode([*kept, ("wait", str(SSH_WAIT_S))], safe="/")
    return urlunsplit(
        parts._replace(netloc=f"{parts.username}@{parts.hostname}:{port}", query=query)
    )


def _target_url(source_target: str, clone: Clone, cloner: Cloner) -> str:
    if not isinstance(cloner, VmCloner):
        return sibling_target_url(source_target, clone.name)
    clone_facts = parse_domain(cloner.virsh.running_domain_xml(clone.name))
    return sibling_target_url(
        source_target, clone.name, cloner.facts.forwards, clone_facts.forwards
    )


@contextmanager
def running_neighbour(
    instance: Instance,
    stack: str,
    cpus: frozenset[int],
    host: HostHandle,
    cpu_shares: int | None = None,
) -> Iterator[Neighbour]:
    """A sibling of `instance` on `host` (docker and virsh there, its app and SSH reached
    through the host), pinned to `cpus` (and, a container, with `cpu_shares` as its CPU
    weight), answering HTTP 200, for the block; removed afterwards whatever happens."""
    cloner = meter_for(instance, DockerEngine(host), Virsh(host)).cloner(stack)
    if cpu_shares is not None and isinstance(cloner, VmCloner):
        raise ReadinessTimeoutError("a neighbour's CPU weight is set for containers only")
    cloner.cpu_set = format_cpu_list(cpus)
    cloner.cpu_shares = cpu_shares
    used = set(cloner.existing_names())
    index = next(i for i in range(1, 1000) if f"{neighbour_prefix(stack)}{i}" not in used)
    clone = cloner.start(f"{neighbour_prefix(stack)}{index}")
    target: Target | None = None
    try:
        with host.reach(clone.url) as url:
            waited = wait_for_http_200(url, clone.created_at, cloner.ready_timeout_s)
        if waited.seconds is None:
            raise ReadinessTimeoutError(
                f"neighbour {clone.name} of {instance.name} gave no HTTP 200 within "
                f"{cloner.ready_timeout_s:g} s (last: {waited.last_error})"
            )
        target = parse_target(_target_url(instance.target, clone, cloner), instance.label, host)
        yield Neighbour(clone, target, cpus, waited.seconds)
    finally:
        if target is not None:
            target.close()
        cloner.remove(clone)
