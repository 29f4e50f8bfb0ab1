"""U1: a VM can run a different OS or kernel than the host; a container cannot."""

from __future__ import annotations

from components.thresholds import Thresholds
from scripts.checks.claims.claim import Claim
from scripts.checks.results.samples import HOST
from scripts.checks.results.verdicts import ClaimResult, Samples, need, need_primary


def judge(samples: Samples, _t: Thresholds) -> ClaimResult:
    container, vm = need_primary(samples, "container"), need_primary(samples, "vm")
    host = need(samples.one("kernel_release", variant=HOST), "host kernel")
    c_kernel = need(samples.one("kernel_release", variant=container), "container kernel")
    v_kernel = need(samples.one("kernel_release", variant=vm), "VM kernel")
    holds = c_kernel == host and v_kernel != host
    cells = {
        label.name: str(samples.shown("kernel_release", variant=label.name))
        for label in samples.variants()
    }
    return ClaimResult("U1", "holds" if holds else "does not hold", f"host kernel {host}", cells)


CLAIM = Claim(
    id="U1",
    statement="A VM can run a different OS or kernel than the host; a container cannot",
    measured="kernel release inside vs host; the VM image's kernel is chosen by the project, "
    "not the host",
    expected="VM kernel differs from the host's, container's cannot",
    reference="Textbook: a VM can run another kernel or OS; a container cannot.",
    judge=judge,
)
