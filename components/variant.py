"""The contract of a deployment variant: what the registry (components/registry.py) lists.

A variant is one way to deploy the app: a container (runc), a sandboxed container, a VM. Its
module in components/ declares the Pulumi component and exports one `VARIANT`; the stack
program, config validation and the checks only ever loop over the registry. Its `kind` is what
the checks compare by (the textbook claims are "kind container vs kind vm") and what picks the
cloner and meter of the resource checks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    import pulumi

    from components.deployment import Deployment
    from components.host import HostFacts
    from components.spec import AppSpec
    from workloads.images import ImageSet

VariantKind = Literal["container", "sandbox", "vm"]
KINDS: tuple[VariantKind, ...] = ("container", "sandbox", "vm")
PortRole = Literal["http", "ssh"]


@dataclass(frozen=True)
class PortNeed:
    """A 127.0.0.1 port the variant publishes: its stack config key and default."""

    config_key: str  # e.g. "containerHttpPort"
    default: int
    role: PortRole
    doc: str  # the README config table's "meaning" column


class Declare(Protocol):
    def __call__(
        self,
        name: str,
        spec: AppSpec,
        images: ImageSet,
        opts: pulumi.ResourceOptions | None = None,
    ) -> Deployment: ...


@dataclass(frozen=True)
class Variant:
    name: str  # "container", "vm"; also the Pulumi component's name and its output key
    kind: VariantKind
    ports: tuple[PortNeed, ...]
    # Why this host cannot run it (e.g. "runsc is not a registered Docker runtime"), or None.
    unavailable: Callable[[HostFacts], str | None]
    declare: Declare
    summary: str  # one line for `--help`, warnings and the report
    # Deployed when `twinlab:variants` is unset (and the host can run it); False: only when
    # named there (e.g. the restored VM, whose first `up` makes a snapshot).
    by_default: bool = True
    # Starts from a saved memory snapshot instead of booting (the restored VM): its R1 figure
    # is restored clones, and claim S1 compares it with the booted VMs.
    starts_from_snapshot: bool = False

    def port_key(self, role: PortRole) -> str:
        """The config key of this variant's port for `role`."""
        for need in self.ports:
            if need.role == role:
                return need.config_key
        raise KeyError(f"variant {self.name} publishes no {role} port")
