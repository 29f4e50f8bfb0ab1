"""What a run checks: the subjects (target URL, variant, app URL, instance name), from a
deployed stack's outputs or named by hand (then their kind is guessed from the URL scheme and
labelled as a guess)."""

from __future__ import annotations

from dataclasses import dataclass

from components.errors import TwinlabError
from components.thresholds import Thresholds
from scripts.checks.results.samples import VariantLabel
from scripts.checks.targets.deployed import DeployedStack
from scripts.checks.targets.host import HostHandle, local_host
from scripts.checks.targets.target import Target, parse_target


@dataclass(frozen=True)
class Subject:
    """One thing to check: a target URL, its variant (None: named by hand, kind guessed from
    the URL), its app URL (for load) and, for resource checks, its container or domain name on
    this host."""

    target: str
    url: str | None = None
    instance_name: str | None = None
    label: VariantLabel | None = None
    host: HostHandle | None = None  # from the stack: where it runs (None: named by hand)

    def parsed(self) -> Target:
        return parse_target(self.target, self.label, self.host)


@dataclass(frozen=True)
class Subjects:
    items: tuple[Subject, ...]
    stack: str | None = None
    app_version: str = "?"
    virt_mode: str | None = None
    weakened_targets: tuple[str, ...] = ()
    thresholds: Thresholds | None = None

    @classmethod
    def of_stack(cls, deployed: DeployedStack) -> Subjects:
        return cls(
            tuple(
                Subject(
                    v.target,
                    v.url,
                    v.instance_name,
                    VariantLabel(v.name, v.kind),
                    deployed.host_of(v),
                )
                for v in deployed.variants
            ),
            stack=deployed.stack,
            app_version=deployed.app_version,
            virt_mode=deployed.virt_mode,
            thresholds=deployed.thresholds,
        )

    @property
    def host(self) -> HostHandle:
        """The host the subjects run on (one per run; this machine for targets named by
        hand). Every check reaches it through this handle."""
        hosts = {id(s.host): s.host for s in self.items if s.host is not None}
        if len(hosts) > 1:
            raise TwinlabError("one run checks the variants of one host; run each host apart")
        return next(iter(hosts.values()), None) or local_host()

    def container(self) -> Subject | None:
        """The primary container-kind subject: named like its kind, else the first."""
        containers = [s for s in self.items if s.parsed().kind == "container"]
        named = [s for s in containers if s.label is not None and s.label.name == "container"]
        chosen = named or containers
        return chosen[0] if chosen else None
