"""Hand-made samples of the registry's sandbox and VM variants for claims G1 and S1: each
variant labelled with its registered name and kind, so the claim tests follow the registry."""

from __future__ import annotations

from components.registry import VARIANTS
from components.variant import Variant
from scripts.checks.results.samples import Sample, Value

CONTAINERS = [v for v in VARIANTS if v.kind == "container"]
SANDBOXES = [v for v in VARIANTS if v.kind == "sandbox"]
BOOTED_VMS = [v for v in VARIANTS if v.kind == "vm" and not v.starts_from_snapshot]
RESTORED_VMS = [v for v in VARIANTS if v.kind == "vm" and v.starts_from_snapshot]
START = "time_to_first_response_s"


def spread(median: float, relative: float = 0.04) -> list[float]:
    """Five repeats around `median`, +-`relative` at the extremes."""
    return [median * (1 + relative * step / 2) for step in (-2, -1, 0, 1, 2)]


def sample(variant: Variant, metric: str, value: Value, **meta: Value) -> Sample:
    target = f"test://{variant.name}"
    return Sample(metric, value, "", target, variant.name, (), dict(meta), kind=variant.kind)


def start_method(variant: Variant) -> str:
    """What a clone of `variant` does to start (the cloners' start_method)."""
    if variant.kind == "vm":
        return "restore" if variant.starts_from_snapshot else "boot"
    return "create"


def starts(variant: Variant, values: list[float]) -> list[Sample]:
    return [sample(variant, START, v, start_method=start_method(variant)) for v in values]


def throughput(variant: Variant, endpoint: str, values: list[float]) -> list[Sample]:
    return [sample(variant, "requests_per_s", v, endpoint=endpoint) for v in values]


def sandbox_run(
    sandbox: Variant,
    container: Variant,
    *,
    io: tuple[float, float] = (400.0, 40.0),
    static: tuple[float, float] = (900.0, 300.0),
    start_s: tuple[float, float] = (0.6, 1.2),
) -> list[Sample]:
    """G1's figures for (container, sandbox): io and static req/s, start seconds; the cpu
    endpoint alike on both (gVisor does not slow user-space work)."""
    return [
        *throughput(container, "io", spread(io[0])),
        *throughput(sandbox, "io", spread(io[1])),
        *throughput(container, "static", spread(static[0])),
        *throughput(sandbox, "static", spread(static[1])),
        *throughput(container, "cpu", spread(50.0)),
        *throughput(sandbox, "cpu", spread(48.0)),
        *starts(container, spread(start_s[0])),
        *starts(sandbox, spread(start_s[1])),
        sample(
            sandbox,
            "sandbox_runtime",
            "runsc-ptrace-hostnet",
            platform="ptrace",
            network="host",
            gives_up="host network: socket calls reach the host kernel's TCP/IP stack",
        ),
    ]


def restore_run(
    booted: Variant, restored: Variant, *, cold_s: float = 19.5, restored_s: float = 1.24
) -> list[Sample]:
    """S1's figures: starts of the booted VM and of clones restored from its snapshot."""
    return [*starts(booted, spread(cold_s)), *starts(restored, spread(restored_s))]


def new_variants_run() -> list[Sample]:
    """G1 and S1 holding: every registered sandbox against the first container, every restored
    VM against the first booted VM (added to a run where the other claims hold)."""
    # P1 judges every endpoint measured: the booted VM's figures on G1's endpoints too.
    run = [
        *throughput(BOOTED_VMS[0], "io", spread(20.0)),
        *throughput(BOOTED_VMS[0], "cpu", spread(5.0)),
    ]
    for sandbox in SANDBOXES:
        run += sandbox_run(sandbox, CONTAINERS[0])
    for restored in RESTORED_VMS:
        run += restore_run(BOOTED_VMS[0], restored)
    return run
