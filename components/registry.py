"""Every deployment variant twinlab knows, in one place: the stack program, config validation
(ports, `twinlab:variants`) and the README's config table loop over this tuple.

Adding a variant: one module in components/ that exports `VARIANT` (components/variant.py),
plus one line here.
"""

from __future__ import annotations

from components import container, gvisor, vm, vm_restored
from components.variant import Variant

VARIANTS: tuple[Variant, ...] = (
    container.VARIANT,
    gvisor.VARIANT,
    vm.VARIANT,
    vm_restored.VARIANT,
)


def by_name(name: str) -> Variant:
    for variant in VARIANTS:
        if variant.name == name:
            return variant
    raise KeyError(f"no registered variant {name!r}; registered: {[v.name for v in VARIANTS]}")
