"""Where the app, its noisy neighbour and the load generator run.

The neighbour gets as many CPUs as the app, taken from the CPUs the app does not use (a CPU set
disjoint from the app's): the question is what reaches across that boundary (caches, memory
bandwidth, the shared disk, the host kernel), not two tenants fighting for one core.

The load generator (vegeta) goes on CPUs neither uses when there are any. On 2 cores there are
none, and it shares the app's core: there it is in the baseline and in the stressed runs alike,
whereas on the neighbour's core the stressor would slow the generator and that would be counted
as the neighbour slowing the app. Its own CPU is recorded in every sample.
"""

from __future__ import annotations

from dataclasses import dataclass

from components.errors import TwinlabError
from scripts.checks.load.pinning import format_cpu_list


class PlacementError(TwinlabError):
    """No disjoint CPU set is left for the neighbour; the message says what to change."""


@dataclass(frozen=True)
class Placement:
    app: frozenset[int]
    neighbour: frozenset[int]
    generator: frozenset[int]

    @property
    def generator_shares(self) -> str:
        """Whose CPUs the generator shares: "app", "nobody" (or "neighbour" for a control)."""
        if self.generator & self.neighbour:
            return "neighbour"
        return "app" if self.generator & self.app else "nobody"

    def metadata(self) -> dict[str, str]:
        return {
            "app_cpus": format_cpu_list(self.app),
            "neighbour_cpus": format_cpu_list(self.neighbour),
            "generator_cpus": format_cpu_list(self.generator),
            "generator_shares_cpus_with": self.generator_shares,
            "neighbour_disjoint": str(not self.app & self.neighbour).lower(),
        }


def disjoint(host: frozenset[int], app: frozenset[int]) -> Placement:
    """The neighbour on the lowest free CPUs (as many as the app has), the generator on the rest
    or, when none is left, on the app's CPUs."""
    if not app or not app <= host:
        raise PlacementError(
            f"the app's CPUs {format_cpu_list(app) or '(none)'} are not a subset of the host's "
            f"{format_cpu_list(host)}"
        )
    free = sorted(host - app)
    if not free:
        raise PlacementError(
            f"the app may run on every CPU ({format_cpu_list(host)}): no CPU set disjoint from "
            "it is left for a neighbour; deploy with fewer vCPUs (stack config vcpus)"
        )
    neighbour = frozenset(free[: len(app)])
    rest = frozenset(free) - neighbour
    return Placement(app, neighbour, rest or app)


def same_cpus(host: frozenset[int], app: frozenset[int]) -> Placement:
    """The negative control: the neighbour on the app's own CPUs (the generator as in
    `disjoint`, so only the neighbour moves)."""
    return Placement(app, app, disjoint(host, app).generator)
