"""Readings of the misconfiguration probes: each a finding tied to one CIS item and a scope.

Every misconfiguration probe reads the target's boot id too: a target on the host's kernel
(same boot id) exposes the host when weakened; a target on a kernel of its own (a VM) only
exposes that guest kernel, so its findings are marked "guest-only".
"""

from __future__ import annotations

from scripts.checks.parsers.sections import Sections
from scripts.checks.probes import findings
from scripts.checks.probes.baseline import HostBaseline
from scripts.checks.probes.catalog import Reading
from scripts.checks.probes.cis import CisItem
from scripts.checks.results.samples import Value


def on_host_kernel(sections: Sections, baseline: HostBaseline) -> bool:
    return sections["boot_id"].value == baseline.boot_id


def scope(sections: Sections, baseline: HostBaseline) -> str:
    return findings.HOST_SCOPE if on_host_kernel(sections, baseline) else findings.GUEST_ONLY


def finding(
    metric: str, weak: bool, item: CisItem, what: str, where: str, **extra: Value
) -> Reading:
    """`what` says what was seen (the weakness when `weak`); `where` is the scope."""
    metadata: dict[str, Value] = {
        findings.CIS_KEY: item.number,
        findings.CIS_TITLE_KEY: item.title,
        findings.FINDING_KEY: what,
        findings.SCOPE_KEY: where,
        **extra,
    }
    return Reading(metric, weak, metadata)


def not_measurable(metric: str, item: CisItem, reason: str, where: str, **extra: Value) -> Reading:
    metadata: dict[str, Value] = {
        findings.CIS_KEY: item.number,
        findings.CIS_TITLE_KEY: item.title,
        findings.SCOPE_KEY: where,
        findings.REASON_KEY: reason,
        "inconclusive": True,
        **extra,
    }
    return Reading(metric, findings.INCONCLUSIVE, metadata)
